//! Dashboard accounts: argon2id password hashes (the password itself is
//! never stored or logged) and the sign-in throttle that refuses, for a
//! growing while, further attempts on an account or from an address after
//! repeated wrong passwords.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

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

/// Checks a sign-in against the store; slow on purpose (argon2), so it
/// runs off the async threads.
pub async fn check_sign_in(store: &Store, name: &str, password: &str) -> Result<bool, StoreError> {
    let stored = store.account_hash(name).await?;
    let password = password.to_string();
    let found = stored.is_some();
    let ok = tokio::task::spawn_blocking(move || {
        let hash = stored.unwrap_or_else(|| decoy_hash().to_string());
        verify_password(&hash, &password)
    })
    .await
    .unwrap_or(false);
    Ok(found && ok)
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

/// Wrong passwords allowed on one account before it is locked for a while.
const FREE_FAILURES_PER_ACCOUNT: u32 = 3;
/// Wrong passwords allowed from one address (any account) before locking.
const FREE_FAILURES_PER_ADDRESS: u32 = 10;
/// The first lock; each further failure doubles it.
const FIRST_LOCK: Duration = Duration::from_secs(5);
/// The longest lock.
const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures older than this are forgotten.
const FORGET_AFTER: Duration = Duration::from_secs(30 * 60);

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
    locked_until: Option<Instant>,
}

/// Counts wrong passwords per account and per client address. After the
/// free attempts, each further failure locks that key for twice as long as
/// the one before (5 s, 10 s, 20 s, … up to 15 minutes); attempts during a
/// lock are refused without checking the password.
#[derive(Debug, Default)]
pub struct Throttle {
    keys: Mutex<HashMap<String, Failures>>,
}

impl Throttle {
    /// How long the caller must still wait before trying `account` from
    /// `address`, if either is locked.
    pub fn wait(&self, account: &str, address: &str) -> Option<Duration> {
        let now = Instant::now();
        let keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        [account_key(account), address_key(address)]
            .iter()
            .filter_map(|k| keys.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max()
    }

    /// Records a wrong password.
    pub fn failed(&self, account: &str, address: &str) {
        let now = Instant::now();
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.retain(|_, f| now.duration_since(f.last) < FORGET_AFTER);
        for (key, free) in [
            (account_key(account), FREE_FAILURES_PER_ACCOUNT),
            (address_key(address), FREE_FAILURES_PER_ADDRESS),
        ] {
            let f = keys.entry(key).or_insert(Failures {
                count: 0,
                last: now,
                locked_until: None,
            });
            f.count += 1;
            f.last = now;
            if f.count >= free {
                let doublings = (f.count - free).min(20);
                let lock = (FIRST_LOCK * (1u32 << doublings)).min(MAX_LOCK);
                f.locked_until = Some(now + lock);
            }
        }
    }

    /// Forgets the failures of an account and address after a good sign-in.
    pub fn succeeded(&self, account: &str, address: &str) {
        let mut keys = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        keys.remove(&account_key(account));
        keys.remove(&address_key(address));
    }
}

fn account_key(account: &str) -> String {
    format!("account:{}", account.to_lowercase())
}

fn address_key(address: &str) -> String {
    format!("address:{address}")
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

    #[test]
    fn repeated_failures_lock_the_account_for_longer_each_time() {
        let t = Throttle::default();
        for _ in 0..FREE_FAILURES_PER_ACCOUNT - 1 {
            t.failed("alice", "10.0.0.1");
            assert_eq!(t.wait("alice", "10.0.0.1"), None);
        }
        t.failed("alice", "10.0.0.1");
        let first = t
            .wait("Alice", "10.0.0.2")
            .expect("locked after the free attempts");
        assert!(first <= FIRST_LOCK && first > FIRST_LOCK / 2, "{first:?}");
        t.failed("alice", "10.0.0.1");
        let second = t.wait("alice", "10.0.0.2").unwrap();
        assert!(second > FIRST_LOCK, "{second:?}");
        assert_eq!(t.wait("bob", "10.0.0.2"), None, "other accounts are free");
        t.succeeded("alice", "10.0.0.1");
        assert_eq!(t.wait("alice", "10.0.0.1"), None);
        assert!(valid_name("alice.b-2_x") && !valid_name("a b") && !valid_name(""));
    }
}
