//! Circuit breakers, one per target (`provider/model`), in this process: a
//! target that keeps failing (server errors, broken connections, timeouts)
//! is skipped for a cool-down instead of being tried, and waited on, by every
//! request; after the cool-down one request probes it (half-open), and its
//! outcome closes the circuit or opens it again. Client errors (4xx) and
//! rate limits do not count: they say nothing about the target's health.
//! Each transition is one log line; the states are a `/metrics` gauge.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::providers::ProviderError;

/// The state of one target's circuit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Tried as usual.
    Closed,
    /// Skipped until the cool-down ends.
    Open,
    /// One probe is allowed (or in flight).
    HalfOpen,
}

impl State {
    /// The gauge value: 0 closed, 1 open, 2 half-open.
    pub fn gauge(self) -> f64 {
        match self {
            State::Closed => 0.0,
            State::Open => 1.0,
            State::HalfOpen => 2.0,
        }
    }
}

#[derive(Debug)]
struct Circuit {
    failures: u32,
    open_until: Option<Instant>,
    /// When the probe in flight started. A probe whose request was dropped
    /// before it ended (the caller went away) is given up after a cool-down,
    /// so the circuit cannot stay half-open for good.
    probing: Option<Instant>,
}

/// Every target's circuit, by `provider/model`.
#[derive(Debug)]
pub struct Breakers {
    /// Consecutive failures that open a circuit (0: never).
    failures: u32,
    cooldown: Duration,
    circuits: Mutex<HashMap<String, Circuit>>,
}

impl Breakers {
    /// Circuits that open after `failures` consecutive failures (0: never)
    /// for `cooldown`.
    pub fn new(failures: u32, cooldown: Duration) -> Breakers {
        Breakers {
            failures,
            cooldown,
            circuits: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Circuit>> {
        self.circuits.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether `target` may be tried now; `Err` says for how long it is
    /// still skipped. After the cool-down, the first caller is the probe.
    pub fn allow(&self, target: &str) -> Result<(), Duration> {
        if self.failures == 0 {
            return Ok(());
        }
        let mut circuits = self.lock();
        let Some(c) = circuits.get_mut(target) else {
            return Ok(());
        };
        match c.open_until {
            None => Ok(()),
            Some(until) => {
                let now = Instant::now();
                if now < until {
                    Err(until - now)
                } else if c
                    .probing
                    .is_some_and(|started| now.duration_since(started) < self.cooldown)
                {
                    // Another request is probing; wait for its outcome.
                    Err(Duration::ZERO)
                } else {
                    c.probing = Some(now);
                    tracing::info!(target, "circuit half-open: one request probes the target");
                    Ok(())
                }
            }
        }
    }

    /// Whether `target`'s circuit is open now (without claiming a probe).
    pub fn is_open(&self, target: &str) -> bool {
        self.lock()
            .get(target)
            .and_then(|c| c.open_until)
            .is_some_and(|until| Instant::now() < until)
    }

    /// Records how a try of `target` went.
    pub fn record(&self, target: &str, outcome: Result<(), &ProviderError>) {
        if self.failures == 0 {
            return;
        }
        let mut circuits = self.lock();
        match outcome {
            Ok(()) => {
                if let Some(c) = circuits.remove(target)
                    && c.open_until.is_some()
                {
                    tracing::info!(target, "circuit closed: the target answers again");
                }
            }
            Err(e) if counts(e) => {
                let c = circuits.entry(target.to_string()).or_insert(Circuit {
                    failures: 0,
                    open_until: None,
                    probing: None,
                });
                c.failures += 1;
                let reopen = c.probing.is_some();
                if reopen || (c.open_until.is_none() && c.failures >= self.failures) {
                    c.open_until = Some(Instant::now() + self.cooldown);
                    c.probing = None;
                    tracing::warn!(
                        target,
                        failures = c.failures,
                        cooldown_ms = self.cooldown.as_millis() as u64,
                        error = %e,
                        "circuit open: the target is skipped for the cool-down"
                    );
                }
            }
            // A client error says nothing of the target's health; a probe
            // that got one is over all the same.
            Err(_) => {
                if let Some(c) = circuits.get_mut(target) {
                    c.probing = None;
                }
            }
        }
    }

    /// Every target with a circuit that is not closed, and its state.
    pub fn states(&self) -> Vec<(String, State)> {
        let now = Instant::now();
        self.lock()
            .iter()
            .map(|(t, c)| {
                let state = match c.open_until {
                    None => State::Closed,
                    Some(until) if now < until && c.probing.is_none() => State::Open,
                    Some(_) => State::HalfOpen,
                };
                (t.clone(), state)
            })
            .collect()
    }
}

/// Whether a failure says the target is unhealthy.
fn counts(e: &ProviderError) -> bool {
    match e {
        ProviderError::Status { status, .. } => *status >= 500,
        ProviderError::Connect { .. }
        | ProviderError::Timeout { .. }
        | ProviderError::Cut { .. } => true,
        ProviderError::Protocol { retryable, .. } => *retryable,
        ProviderError::Busy { .. } => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn down() -> ProviderError {
        ProviderError::Status {
            provider: "p".into(),
            status: 503,
            message: "down".into(),
            retry_after: None,
        }
    }

    #[test]
    fn consecutive_failures_open_then_one_probe_decides() {
        let b = Breakers::new(2, Duration::from_millis(50));
        assert!(b.allow("p/m").is_ok());
        b.record("p/m", Err(&down()));
        assert!(b.allow("p/m").is_ok(), "one failure is not enough");
        b.record("p/m", Err(&down()));
        assert!(b.allow("p/m").is_err(), "open after two");
        assert_eq!(b.states(), vec![("p/m".to_string(), State::Open)]);
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow("p/m").is_ok(), "the probe");
        assert!(b.allow("p/m").is_err(), "only one probe at a time");
        // A probe whose caller went away (nothing recorded) is given up
        // after a cool-down: another request probes then.
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow("p/m").is_ok(), "a new probe after an abandoned one");
        b.record("p/m", Err(&down()));
        assert!(b.allow("p/m").is_err(), "a failed probe opens it again");
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.allow("p/m").is_ok());
        b.record("p/m", Ok(()));
        assert!(b.allow("p/m").is_ok() && b.allow("p/m").is_ok(), "closed");
        assert!(b.states().is_empty());
        // A client error does not count.
        let bad = ProviderError::Status {
            provider: "p".into(),
            status: 400,
            message: "bad".into(),
            retry_after: None,
        };
        for _ in 0..5 {
            b.record("p/m", Err(&bad));
        }
        assert!(b.allow("p/m").is_ok());
    }
}
