//! Inference ids. Every answer's id is a UUIDv7 (it sorts by time and says
//! when it was made) whose last four bytes are a tag keyed by the
//! deployment's secret, which every replica reads from the shared database.
//! So any replica can tell an id a sibling minted a moment ago from a
//! made-up one without asking the database: a vote on an answer that no
//! replica has written yet is taken when its id is recent and carries the
//! tag, and refused as unknown otherwise.

use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Mints and recognises this deployment's inference ids. Cheap to clone.
#[derive(Clone)]
pub struct InferenceIds {
    key: [u8; 32],
}

impl std::fmt::Debug for InferenceIds {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InferenceIds(…)")
    }
}

impl Default for InferenceIds {
    /// Ids keyed by a secret of this process alone (a pipeline built
    /// without a store): no other process recognises them.
    fn default() -> Self {
        InferenceIds::new(Uuid::new_v4().as_bytes())
    }
}

impl InferenceIds {
    /// Ids keyed by `secret` (the deployment's, shared by its replicas).
    pub fn new(secret: &[u8]) -> InferenceIds {
        InferenceIds {
            key: Sha256::digest(secret).into(),
        }
    }

    /// A new id: a UUIDv7 of now, tagged.
    pub fn mint(&self) -> Uuid {
        let mut bytes = *Uuid::now_v7().as_bytes();
        let tag = self.tag(&bytes);
        // Bytes 12–15 are random bits of a UUIDv7 (its version and variant
        // bits sit in bytes 6 and 8): the tag replaces them.
        bytes[12..].copy_from_slice(&tag);
        Uuid::from_bytes(bytes)
    }

    /// Whether `id` was minted with this deployment's secret.
    pub fn is_ours(&self, id: &Uuid) -> bool {
        id.get_version_num() == 7 && id.as_bytes()[12..] == self.tag(id.as_bytes())
    }

    /// Whether `id` is ours and was minted within `window_ms` before `now_ms`
    /// (a few seconds ahead is allowed for clocks that differ between
    /// replicas).
    pub fn is_recent(&self, id: &Uuid, now_ms: i64, window_ms: i64) -> bool {
        const SKEW_MS: i64 = 5_000;
        self.is_ours(id)
            && minted_ms(id).is_some_and(|t| t <= now_ms + SKEW_MS && now_ms - t <= window_ms)
    }

    fn tag(&self, bytes: &[u8; 16]) -> [u8; 4] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(&bytes[..12]);
        let digest = h.finalize();
        [digest[0], digest[1], digest[2], digest[3]]
    }
}

/// When a UUIDv7 was made, in Unix milliseconds; `None` for other versions.
pub fn minted_ms(id: &Uuid) -> Option<i64> {
    let (secs, nanos) = id.get_timestamp()?.to_unix();
    Some(secs as i64 * 1000 + i64::from(nanos / 1_000_000))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_recognised_by_the_deployment_that_minted_them() {
        let ours = InferenceIds::new(b"secret");
        let sibling = InferenceIds::new(b"secret");
        let other = InferenceIds::new(b"another deployment");
        let id = ours.mint();
        assert_eq!(id.get_version_num(), 7);
        assert!(sibling.is_ours(&id));
        assert!(!other.is_ours(&id));
        assert!(
            !ours.is_ours(&Uuid::now_v7()),
            "a made-up UUIDv7 is not ours"
        );
        let now = crate::domain::now_ms();
        assert!(sibling.is_recent(&id, now, 60_000));
        assert!(!sibling.is_recent(&id, now + 120_000, 60_000));
        assert!(minted_ms(&id).is_some_and(|t| (now - t).abs() < 5_000));
    }
}
