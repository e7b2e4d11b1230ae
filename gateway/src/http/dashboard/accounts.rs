//! Dashboard accounts: argon2id password hashes (the password itself is
//! never stored or logged), and the bound on sign-in checks: each check
//! takes about 19 MiB and a CPU for a while, so only a few run at once and
//! an attempt that finds none free is refused at once rather than queued
//! (the throttle in [`super::throttle`] decides who may try at all).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use argon2::password_hash::phc::PasswordHash;
use argon2::{Argon2, PasswordHasher, PasswordVerifier};

use crate::store::{Store, StoreError};

/// Shortest password `switchboard admin add` accepts.
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Why an account could not be made or removed.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The name has characters that are not allowed.
    #[error("account name `{0}`: use 1–64 letters, digits, `.`, `_` or `-` (for example `alice`)")]
    BadName(String),
    /// The password is too short.
    #[error("the password is too short: use at least {MIN_PASSWORD_CHARS} characters")]
    ShortPassword,
    /// The name is taken.
    #[error(
        "the account `{0}` exists already; remove it first with `switchboard admin remove {0}`"
    )]
    Exists(String),
    /// No such account.
    #[error("there is no account `{0}`; `switchboard admin list` shows the accounts")]
    Unknown(String),
    /// Hashing failed.
    #[error("cannot hash the password: {0}")]
    Hash(String),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Whether `name` may name an account.
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// The argon2id PHC string of a password, with a fresh random salt.
pub fn hash_password(password: &str) -> Result<String, AccountError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| AccountError::Hash(e.to_string()))
}

/// Whether `password` matches the stored PHC string.
pub fn verify_password(stored: &str, password: &str) -> bool {
    PasswordHash::new(stored).ok().is_some_and(|h| {
        Argon2::default()
            .verify_password(password.as_bytes(), &h)
            .is_ok()
    })
}

/// A hash of no one's password, checked when the account does not exist so
/// that a wrong name takes as long to refuse as a wrong password.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("no account has this password").unwrap_or_default())
}

/// Checks a sign-in against the store, unbounded (the CLI and tests; the
/// dashboard goes through [`PasswordChecks`]); slow on purpose (argon2),
/// so it runs off the async threads.
pub async fn check_sign_in(store: &Store, name: &str, password: &str) -> Result<bool, StoreError> {
    let stored = store.account_hash(name).await?;
    Ok(verify_off_thread(stored, password, None).await)
}

/// The most sign-in checks that run at once by default: one per CPU, at
/// most four (about 19 MiB each).
pub fn default_parallel_checks() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(1, 4))
}

/// Sign-in password checks, a bounded number at a time.
#[derive(Debug)]
pub struct PasswordChecks {
    permits: Arc<Semaphore>,
    checked: AtomicU64,
}

/// The right to run one password check, taken before it starts.
#[derive(Debug)]
pub struct CheckSlot {
    _permit: OwnedSemaphorePermit,
}

impl PasswordChecks {
    /// At most `parallel` checks at once (at least one).
    pub fn new(parallel: usize) -> PasswordChecks {
        PasswordChecks {
            permits: Arc::new(Semaphore::new(parallel.max(1))),
            checked: AtomicU64::new(0),
        }
    }

    /// A slot for one check, or `None` when all are taken.
    pub fn try_slot(&self) -> Option<CheckSlot> {
        self.permits
            .clone()
            .try_acquire_owned()
            .ok()
            .map(|permit| CheckSlot { _permit: permit })
    }

    /// How many passwords were checked since start.
    pub fn checked(&self) -> u64 {
        self.checked.load(Ordering::Relaxed)
    }

    /// Checks a sign-in in `slot`. The slot is held until the hash is done,
    /// even if the request is abandoned meanwhile.
    pub async fn check(
        &self,
        slot: CheckSlot,
        store: &Store,
        name: &str,
        password: &str,
    ) -> Result<bool, StoreError> {
        let stored = store.account_hash(name).await?;
        self.checked.fetch_add(1, Ordering::Relaxed);
        Ok(verify_off_thread(stored, password, Some(slot)).await)
    }
}

/// Verifies on a blocking thread (a wrong name against the decoy hash),
/// holding `slot` until done.
async fn verify_off_thread(
    stored: Option<String>,
    password: &str,
    slot: Option<CheckSlot>,
) -> bool {
    let password = password.to_string();
    let found = stored.is_some();
    let ok = tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let hash = stored.unwrap_or_else(|| decoy_hash().to_string());
        verify_password(&hash, &password)
    })
    .await
    .unwrap_or(false);
    found && ok
}

/// Adds an account (`switchboard admin add`).
pub async fn add_account(store: &Store, name: &str, password: &str) -> Result<(), AccountError> {
    if !valid_name(name) {
        return Err(AccountError::BadName(name.to_string()));
    }
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AccountError::ShortPassword);
    }
    let owned = password.to_string();
    let hash = tokio::task::spawn_blocking(move || hash_password(&owned))
        .await
        .map_err(|e| AccountError::Hash(e.to_string()))??;
    if store
        .create_account(name, &hash, crate::domain::now_ms())
        .await?
    {
        Ok(())
    } else {
        Err(AccountError::Exists(name.to_string()))
    }
}

/// Removes an account and its sessions (`switchboard admin remove`).
pub async fn remove_account(store: &Store, name: &str) -> Result<(), AccountError> {
    if store.remove_account(name).await? {
        Ok(())
    } else {
        Err(AccountError::Unknown(name.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_verify_only_their_own_password() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(!hash.contains("correct horse"));
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterz"));
        assert!(!verify_password("not a hash", "correct horse battery"));
    }
}
