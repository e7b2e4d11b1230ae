//! Back-pressure: at most `slots + queue` requests are admitted at once, and one more is
//! answered [`GenerateError::Busy`] at once instead of waiting without limit. A [`Permit`]
//! holds a request's place until the slot that ran it lets go.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Engine, EngineOptions, GenerateError};

/// Counts a request against `slots + queue` until it is dropped.
pub(super) struct Permit(Arc<AtomicUsize>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Engine {
    /// Takes a place for one request, or answers `Busy` when none is free.
    pub(super) fn admit(&self) -> Result<Permit, GenerateError> {
        let EngineOptions { slots, queue, .. } = self.shared.options;
        let limit = slots.saturating_add(queue);
        self.shared
            .in_flight
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < limit).then_some(n + 1)
            })
            .map(|_| Permit(Arc::clone(&self.shared.in_flight)))
            .map_err(|_| GenerateError::Busy { slots, queue })
    }
}
