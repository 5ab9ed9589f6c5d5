//! Verification of the `Stripe-Signature` header.
//!
//! The header reads `t=1700000000,v1=5257a8...,v1=...` (other schemes, such as `v0`, are
//! ignored). Each `v1` is a hex HMAC-SHA256, keyed with the endpoint secret, of
//! `"{t}.{raw body}"`; the request is genuine when one `v1` matches (several appear while a
//! secret is being rolled) and `t` is within the tolerance of now. Comparison is constant
//! time. While an endpoint's secret is being rolled, the receiver may hold several secrets
//! ([`verify_signature_any`]): one match of any secret with any `v1` is enough. An empty
//! secret never matches.

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Why a signature was refused. Every variant answers 400 and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// No `Stripe-Signature` header.
    #[error("the Stripe-Signature header is missing")]
    Missing,
    /// The header is not `t=...,v1=...`.
    #[error("the Stripe-Signature header is malformed: {0}")]
    Malformed(&'static str),
    /// No `v1` signature matches the payload.
    #[error("no signature matches the payload")]
    Mismatch,
    /// The timestamp is further from now than the tolerance (a replay, or a clock far off).
    #[error("the signature's timestamp {timestamp} is outside the tolerance of {tolerance_secs} s")]
    OutsideTolerance {
        /// The header's timestamp.
        timestamp: i64,
        /// The tolerance, in seconds.
        tolerance_secs: i64,
    },
}

/// Checks `header` against `payload` (the raw body, byte for byte), the endpoint `secret`,
/// and a timestamp `tolerance` around `now`. Returns the signed timestamp.
///
/// # Errors
/// [`SignatureError`].
pub fn verify_signature(
    header: &str,
    payload: &[u8],
    secret: &str,
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, SignatureError> {
    verify_signature_any(header, payload, &[secret], tolerance, now)
}

/// [`verify_signature`] with several active secrets (while one is being rolled): the header
/// verifies when any `v1` signature matches any of `secrets`.
///
/// ```
/// # use ai_metering_billing::webhook::{SignatureError, verify_signature_any};
/// let now = chrono::Utc::now();
/// let header = format!("t={},v1=00", now.timestamp());
/// let secrets = ["whsec_new_0123456789abcdef", "whsec_old_0123456789abcdef"];
/// let result = verify_signature_any(&header, b"{}", &secrets, chrono::Duration::seconds(300), now);
/// assert_eq!(result, Err(SignatureError::Mismatch));
/// ```
///
/// # Errors
/// [`SignatureError`].
pub fn verify_signature_any<S: AsRef<str>>(
    header: &str,
    payload: &[u8],
    secrets: &[S],
    tolerance: Duration,
    now: DateTime<Utc>,
) -> Result<DateTime<Utc>, SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        let Some((key, value)) = part.trim().split_once('=') else {
            return Err(SignatureError::Malformed("an item is not key=value"));
        };
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(SignatureError::Malformed("more than one timestamp"));
                }
                let t = value
                    .parse::<i64>()
                    .map_err(|_| SignatureError::Malformed("the timestamp is not an integer"))?;
                timestamp = Some(t);
            }
            "v1" => signatures.push(value),
            _ => {}
        }
    }
    let t = timestamp.ok_or(SignatureError::Malformed("no timestamp"))?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed("no v1 signature"));
    }
    let signed_at = DateTime::from_timestamp(t, 0)
        .ok_or(SignatureError::Malformed("the timestamp is out of range"))?;

    let decoded: Vec<Vec<u8>> = signatures
        .iter()
        .filter_map(|sig| hex::decode(sig).ok())
        .collect();
    let signed_prefix = format!("{t}.");
    let mut matched = false;
    for secret in secrets {
        let secret = secret.as_ref();
        if secret.is_empty() {
            continue;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
            .map_err(|_| SignatureError::Malformed("the endpoint secret cannot key HMAC"))?;
        mac.update(signed_prefix.as_bytes());
        mac.update(payload);
        // `verify_slice` compares in constant time.
        if decoded
            .iter()
            .any(|bytes| mac.clone().verify_slice(bytes).is_ok())
        {
            matched = true;
            break;
        }
    }
    if !matched {
        return Err(SignatureError::Mismatch);
    }
    // Checked after the signature, so a forged timestamp is reported as a mismatch.
    let skew = (now - signed_at).abs();
    if skew > tolerance {
        return Err(SignatureError::OutsideTolerance {
            timestamp: t,
            tolerance_secs: tolerance.num_seconds(),
        });
    }
    Ok(signed_at)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_test_secret";

    fn sign(t: i64, body: &[u8], secret: &str) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(format!("{t}.").as_bytes());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    const T: i64 = 1_700_000_000;
    const TOL: Duration = Duration::seconds(300);

    #[test]
    fn a_good_signature_passes_among_others() {
        let body = br#"{"id":"evt_1"}"#;
        let good = sign(T, body, SECRET);
        let old = sign(T, body, "whsec_old");
        let header = format!("t={T},v1={old},v1={good},v0=deadbeef");
        assert_eq!(
            verify_signature(&header, body, SECRET, TOL, at(T + 10)),
            Ok(at(T))
        );
    }

    #[test]
    fn tampering_is_refused() {
        let body = br#"{"id":"evt_1","amount":1}"#;
        let header = format!("t={T},v1={}", sign(T, body, SECRET));
        let tampered = br#"{"id":"evt_1","amount":9}"#;
        assert_eq!(
            verify_signature(&header, tampered, SECRET, TOL, at(T)),
            Err(SignatureError::Mismatch)
        );
        // The timestamp is signed too.
        let moved = header.replace(&format!("t={T}"), &format!("t={}", T + 1));
        assert_eq!(
            verify_signature(&moved, body, SECRET, TOL, at(T)),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(&header, body, "whsec_other", TOL, at(T)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn old_and_future_timestamps_are_refused() {
        let body = b"{}";
        let header = format!("t={T},v1={}", sign(T, body, SECRET));
        assert!(verify_signature(&header, body, SECRET, TOL, at(T + 300)).is_ok());
        assert!(matches!(
            verify_signature(&header, body, SECRET, TOL, at(T + 301)),
            Err(SignatureError::OutsideTolerance { .. })
        ));
        assert!(matches!(
            verify_signature(&header, body, SECRET, TOL, at(T - 301)),
            Err(SignatureError::OutsideTolerance { .. })
        ));
    }

    proptest::proptest! {
        #[test]
        fn any_change_to_the_payload_is_caught(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 1..200),
            secret in "[a-zA-Z0-9_]{1,40}",
            flip in proptest::prelude::any::<proptest::sample::Index>(),
            bit in 0u8..8,
        ) {
            let header = format!("t={T},v1={}", sign(T, &body, &secret));
            proptest::prop_assert!(verify_signature(&header, &body, &secret, TOL, at(T)).is_ok());
            let mut tampered = body.clone();
            tampered[flip.index(body.len())] ^= 1 << bit;
            proptest::prop_assert_eq!(
                verify_signature(&header, &tampered, &secret, TOL, at(T)),
                Err(SignatureError::Mismatch)
            );
        }
    }

    #[test]
    fn any_active_secret_verifies_while_one_is_rolled() {
        let body = br#"{"id":"evt_2"}"#;
        let (new, old) = ("whsec_new_0123456789abcdef", "whsec_old_0123456789abcdef");
        let secrets = [new, old];
        // Signed with the old secret only, with the new only, or with both.
        for header in [
            format!("t={T},v1={}", sign(T, body, old)),
            format!("t={T},v1={}", sign(T, body, new)),
            format!(
                "t={T},v1={},v1={}",
                sign(T, body, "whsec_x"),
                sign(T, body, old)
            ),
        ] {
            assert_eq!(
                verify_signature_any(&header, body, &secrets, TOL, at(T)),
                Ok(at(T)),
                "{header}"
            );
        }
        let stranger = format!("t={T},v1={}", sign(T, body, "whsec_stranger_0123456789"));
        assert_eq!(
            verify_signature_any(&stranger, body, &secrets, TOL, at(T)),
            Err(SignatureError::Mismatch)
        );
        let none: [&str; 0] = [];
        assert_eq!(
            verify_signature_any(&stranger, body, &none, TOL, at(T)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn an_empty_secret_never_matches() {
        let body = b"{}";
        let header = format!("t={T},v1={}", sign(T, body, ""));
        assert_eq!(
            verify_signature(&header, body, "", TOL, at(T)),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn malformed_headers_are_refused() {
        for header in ["", "t=1", "v1=ab", "t=x,v1=ab", "t=1,t=2,v1=ab", "garbage"] {
            assert!(
                matches!(
                    verify_signature(header, b"{}", SECRET, TOL, at(T)),
                    Err(SignatureError::Malformed(_))
                ),
                "{header:?}"
            );
        }
        // Not hex: never matches.
        assert_eq!(
            verify_signature(&format!("t={T},v1=zz"), b"{}", SECRET, TOL, at(T)),
            Err(SignatureError::Mismatch)
        );
    }
}
