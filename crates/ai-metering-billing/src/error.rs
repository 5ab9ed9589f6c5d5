//! [`BillingError`]: why an overage could not be reported, and whether a retry is safe.

use ai_metering_core::Billable;
use ai_metering_core::store::{StoreError, StoreErrorKind};

/// Why a billing driver could not report an overage.
///
/// Whatever the error, the overage stays pending (never marked synced), so a later sync
/// reports it again; [`is_retryable`](Self::is_retryable) says whether that can work without
/// fixing something first.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BillingError {
    /// A temporary failure: the network, a timeout, a 5xx, a rate limit (429) or a
    /// concurrent request with the same idempotency key (409). The outcome at the provider
    /// may be unknown, but retrying is safe: every request carries a key stable per overage
    /// row, so the provider bills it once.
    #[error("billing provider unavailable{}: {message}", .status.map(|s| format!(" (HTTP {s})")).unwrap_or_default())]
    Transient {
        /// The HTTP status, when there was a response.
        status: Option<u16>,
        /// What happened.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    },
    /// The provider refused the request (a 4xx other than 409 and 429): repeating it fails
    /// again until something is fixed (the key, the customer, the meter's name...).
    #[error("billing provider rejected the request (HTTP {status}{}): {message}", .code.as_deref().map(|c| format!(", {c}")).unwrap_or_default())]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The provider's error code, such as `resource_missing`.
        code: Option<String>,
        /// The provider's message.
        message: String,
    },
    /// The billable has no customer at the billing provider (no `stripe_customer_id`).
    #[error("{billable} has no customer at the billing provider")]
    NoCustomer {
        /// The billable.
        billable: Billable,
    },
    /// The overage cannot be expressed in the provider's terms (a negative amount, an amount
    /// too large for minor units, a currency without a configured rate).
    #[error("overage #{id} cannot be billed: {reason}")]
    InvalidOverage {
        /// The overage's id.
        id: i64,
        /// Why.
        reason: String,
    },
    /// The driver is misconfigured (a base URL that is not a URL, an empty secret key).
    #[error("billing driver misconfigured: {0}")]
    Configuration(String),
    /// The store failed (looking up a customer, marking an overage synced).
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl BillingError {
    /// True when retrying the same report later is safe (it cannot bill twice) and may
    /// succeed without changing anything: [`Transient`](Self::Transient) errors and stores
    /// that were unavailable.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Transient { .. } => true,
            Self::Store(e) => e.kind() == StoreErrorKind::Unavailable,
            _ => false,
        }
    }

    /// True when the error concerns every overage, not just this one (the provider refused
    /// the credentials: HTTP 401 or 403; the driver is misconfigured): a batch sync stops at
    /// the first such error instead of sending every row in vain.
    pub fn is_systemic(&self) -> bool {
        match self {
            Self::Rejected { status, .. } => matches!(status, 401 | 403),
            Self::Configuration(_) => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_advice_follows_the_kind() {
        let transient = BillingError::Transient {
            status: Some(503),
            message: "down".into(),
            source: None,
        };
        assert!(transient.is_retryable());
        assert!(transient.to_string().contains("HTTP 503"));
        let rejected = BillingError::Rejected {
            status: 400,
            code: Some("resource_missing".into()),
            message: "No such customer".into(),
        };
        assert!(!rejected.is_retryable());
        assert!(!rejected.is_systemic());
        assert!(rejected.to_string().contains("resource_missing"));
        let auth = BillingError::Rejected {
            status: 401,
            code: None,
            message: "Invalid API Key".into(),
        };
        assert!(auth.is_systemic());
        let down = BillingError::from(StoreError::new(StoreErrorKind::Unavailable, "db down"));
        assert!(down.is_retryable());
        let gone = BillingError::from(StoreError::not_found("overage 3"));
        assert!(!gone.is_retryable());
    }
}
