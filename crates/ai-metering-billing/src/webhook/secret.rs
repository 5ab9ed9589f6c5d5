//! Endpoint signing secrets: checked when the webhook is configured, never printed.

use std::fmt;

/// The prefix of Stripe's endpoint signing secrets (`whsec_...`).
pub const STRIPE_SECRET_PREFIX: &str = "whsec_";

/// The fewest bytes a signing secret may have after any [`STRIPE_SECRET_PREFIX`]: 16 bytes,
/// 128 bits at most, well above guessing range yet below the 32 characters of Stripe's own
/// secrets, so secrets of other senders that follow the same scheme are accepted too.
pub const MIN_SECRET_BYTES: usize = 16;

/// Why a signing secret was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret is empty (or only its prefix): anyone could sign events with it.
    #[error("the webhook signing secret is empty")]
    Empty,
    /// The secret is shorter than [`MIN_SECRET_BYTES`] after its prefix.
    #[error(
        "the webhook signing secret has {length} bytes after any `whsec_` prefix; at least {minimum} are required"
    )]
    TooShort {
        /// Its length in bytes, prefix excluded.
        length: usize,
        /// [`MIN_SECRET_BYTES`].
        minimum: usize,
    },
    /// The secret starts or ends with whitespace, the mark of a copy-paste slip: it would
    /// never match the sender's.
    #[error("the webhook signing secret starts or ends with whitespace")]
    Whitespace,
    /// No secret was given at all.
    #[error("no webhook signing secret was given")]
    NoSecrets,
}

/// One endpoint signing secret, known to be long enough. `Debug` does not show it.
///
/// ```
/// use ai_metering_billing::webhook::{SecretError, WebhookSecret};
/// assert!(WebhookSecret::new("whsec_0123456789abcdef0123456789abcdef").is_ok());
/// assert_eq!(WebhookSecret::new("").unwrap_err(), SecretError::Empty);
/// assert!(matches!(WebhookSecret::new("whsec_short"), Err(SecretError::TooShort { .. })));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecret(String);

impl WebhookSecret {
    /// Checks `secret`: not empty, no surrounding whitespace, at least [`MIN_SECRET_BYTES`]
    /// after an optional `whsec_` prefix. The whole text, prefix included, is the HMAC key,
    /// as Stripe uses it.
    ///
    /// # Errors
    /// [`SecretError`].
    pub fn new(secret: impl Into<String>) -> Result<Self, SecretError> {
        let secret = secret.into();
        let body = secret.strip_prefix(STRIPE_SECRET_PREFIX).unwrap_or(&secret);
        if body.is_empty() {
            return Err(SecretError::Empty);
        }
        if secret.trim() != secret {
            return Err(SecretError::Whitespace);
        }
        if body.len() < MIN_SECRET_BYTES {
            return Err(SecretError::TooShort {
                length: body.len(),
                minimum: MIN_SECRET_BYTES,
            });
        }
        Ok(Self(secret))
    }

    /// The secret's text, the HMAC key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for WebhookSecret {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("WebhookSecret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_short_and_padded_secrets_are_refused() {
        assert_eq!(WebhookSecret::new(""), Err(SecretError::Empty));
        assert_eq!(WebhookSecret::new("whsec_"), Err(SecretError::Empty));
        assert_eq!(
            WebhookSecret::new("whsec_123456789012345"),
            Err(SecretError::TooShort {
                length: 15,
                minimum: 16
            })
        );
        // The prefix does not count towards the length.
        assert!(matches!(
            WebhookSecret::new("whsec_whsec_1234"),
            Err(SecretError::TooShort { length: 10, .. })
        ));
        assert_eq!(
            WebhookSecret::new(" whsec_0123456789abcdef"),
            Err(SecretError::Whitespace)
        );
        assert_eq!(
            WebhookSecret::new("whsec_0123456789abcdef\n"),
            Err(SecretError::Whitespace)
        );
    }

    #[test]
    fn long_enough_secrets_are_kept_whole_and_never_printed() {
        let s = WebhookSecret::new("whsec_0123456789abcdef").unwrap();
        assert_eq!(s.expose(), "whsec_0123456789abcdef");
        assert!(WebhookSecret::new("0123456789abcdef").is_ok());
        assert_eq!(format!("{s:?}"), "WebhookSecret(***)");
    }
}
