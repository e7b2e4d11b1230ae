//! Request signing: Slack signs every request it sends us with the app's
//! signing secret (`v0=` HMAC-SHA256 over `v0:{timestamp}:{raw body}`).
//! A request whose signature does not verify, or whose timestamp is more
//! than five minutes from our clock (a replay), is refused before
//! anything else looks at it.
//!
//! The HMAC is slack-morphism's [`SlackEventSignatureVerifier`] (a
//! constant-time comparison). The five-minute window is checked here first,
//! against the adapter's own clock, so that it can be fixed in tests; the
//! verifier then checks the window again against the system clock, and
//! that second verdict is not used: it is reached only once the signature
//! has matched, and the adapter's clock is the one in force.

use slack_morphism::SlackSigningSecret;
use slack_morphism::signature_verifier::{
    SlackEventSignatureVerifier, SlackEventSignatureVerifierError,
};

/// How far a request's timestamp may be from our clock, in seconds.
pub const MAX_AGE_SECS: i64 = 5 * 60;

/// Why a request was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SignatureError {
    /// A signing header is absent.
    #[error(
        "missing header `{0}`: requests must come from Slack, signed with the app's signing secret"
    )]
    Missing(&'static str),
    /// The timestamp is not a number.
    #[error("header `x-slack-request-timestamp` is not a Unix timestamp")]
    BadTimestamp,
    /// The timestamp is too far from our clock.
    #[error(
        "request timestamp is {0} s away from this server's clock (more than 5 minutes): a replay, or the server's clock is wrong"
    )]
    Stale(i64),
    /// The signature does not match.
    #[error(
        "signature does not match: check that slack.signing_secret_env names the app's signing secret"
    )]
    Mismatch,
    /// No signing secret is configured.
    #[error("no signing secret: set slack.signing_secret_env to the variable holding it")]
    NoSecret,
}

/// Checks a request's `x-slack-signature` against the signing secret,
/// with `now` as the current Unix time in seconds.
pub fn verify(
    secret: &str,
    timestamp: Option<&str>,
    signature: Option<&str>,
    body: &[u8],
    now: i64,
) -> Result<(), SignatureError> {
    if secret.is_empty() {
        return Err(SignatureError::NoSecret);
    }
    let timestamp = timestamp.ok_or(SignatureError::Missing("x-slack-request-timestamp"))?;
    let signature = signature.ok_or(SignatureError::Missing("x-slack-signature"))?;
    let ts: i64 = timestamp
        .trim()
        .parse()
        .map_err(|_| SignatureError::BadTimestamp)?;
    let skew = now.saturating_sub(ts);
    if skew.abs() > MAX_AGE_SECS {
        return Err(SignatureError::Stale(skew));
    }
    // Slack signs UTF-8 bodies (JSON or form-encoded): anything else is not
    // Slack's.
    let body = std::str::from_utf8(body).map_err(|_| SignatureError::Mismatch)?;
    let verifier = SlackEventSignatureVerifier::new(&SlackSigningSecret(secret.to_string()));
    match verifier.verify(signature, body, timestamp) {
        // The signature matched; the window was checked above.
        Ok(()) | Err(SlackEventSignatureVerifierError::IncorrectOrExpiredTimestampError(_)) => {
            Ok(())
        }
        Err(_) => Err(SignatureError::Mismatch),
    }
}

/// The `x-slack-signature` value for a request (as Slack computes it).
#[cfg(test)]
pub fn sign(secret: &[u8], timestamp: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
    mac.update(b"v0:");
    mac.update(timestamp.as_bytes());
    mac.update(b":");
    mac.update(body);
    let mut out = String::from("v0=");
    for b in mac.finalize().into_bytes() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const TS: &str = "1531420618";
    const BODY: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    const SIG: &str = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";

    #[test]
    fn slacks_documented_example_verifies() {
        assert_eq!(sign(SECRET.as_bytes(), TS, BODY.as_bytes()), SIG);
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), 1531420618),
            Ok(())
        );
    }

    #[test]
    fn a_changed_body_secret_or_signature_is_refused() {
        let now = 1531420618;
        let mut body = BODY.to_string();
        body.push('x');
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), body.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("other", Some(TS), Some(SIG), BODY.as_bytes(), now),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify("", Some(TS), Some(SIG), BODY.as_bytes(), now),
            Err(SignatureError::NoSecret)
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), &[0xff, 0xfe], now),
            Err(SignatureError::Mismatch)
        );
        for bad in [
            "a2114d57",
            "v0=zz",
            "v0=a2114d5",
            "v1=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            "",
        ] {
            assert_eq!(
                verify(SECRET, Some(TS), Some(bad), BODY.as_bytes(), now),
                Err(SignatureError::Mismatch),
                "{bad}"
            );
        }
    }

    #[test]
    fn old_future_and_missing_timestamps_are_refused() {
        let ts: i64 = 1531420618;
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), ts + 301),
            Err(SignatureError::Stale(301))
        );
        assert_eq!(
            verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), ts - 301),
            Err(SignatureError::Stale(-301))
        );
        assert!(verify(SECRET, Some(TS), Some(SIG), BODY.as_bytes(), ts + 300).is_ok());
        assert_eq!(
            verify(SECRET, None, Some(SIG), BODY.as_bytes(), ts),
            Err(SignatureError::Missing("x-slack-request-timestamp"))
        );
        assert_eq!(
            verify(SECRET, Some(TS), None, BODY.as_bytes(), ts),
            Err(SignatureError::Missing("x-slack-signature"))
        );
        assert_eq!(
            verify(SECRET, Some("soon"), Some(SIG), BODY.as_bytes(), ts),
            Err(SignatureError::BadTimestamp)
        );
    }
}
