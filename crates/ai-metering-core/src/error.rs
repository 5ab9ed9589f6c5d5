//! The one error type of the core crate.

use std::borrow::Cow;

/// Convenience alias for results whose error is [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in ai-metering's domain code.
///
/// Being over a quota is *not* an error of this kind when a decision is asked for (see
/// [`LimitCheck`](crate::limit::LimitCheck)); it becomes [`Error::LimitExceeded`] only where an
/// operation refuses to proceed, such as a metered call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Token counts that cannot be right: a part larger than its whole, or an absurd count.
    #[error("invalid token usage: {0}")]
    InvalidUsage(Cow<'static, str>),

    /// A provider response (or stream event) that is not shaped as the provider documents it.
    #[error("malformed {provider} response: {reason}")]
    MalformedResponse {
        /// The provider whose format was expected.
        provider: &'static str,
        /// What exactly is wrong, naming the field.
        reason: String,
    },

    /// The response (or the whole stream) carried no usage at all.
    ///
    /// This is never turned into a zero usage: a call whose usage is unknown is not free.
    #[error("the {provider} response carries no usage: {reason}")]
    NoUsage {
        /// The provider whose format was expected.
        provider: &'static str,
        /// Why no usage was found.
        reason: String,
    },

    /// The price catalog has no entry for this provider and model, and the policy is to reject.
    #[error("no price is known for model `{model}` of provider `{provider}`")]
    UnknownModel {
        /// Provider name as given.
        provider: String,
        /// Model name as given.
        model: String,
    },

    /// A price catalog (built-in, TOML, LiteLLM JSON or per-1k config) that cannot be used.
    #[error("invalid price catalog: {0}")]
    InvalidCatalog(String),

    /// A feature name outside 1 to 100 characters of `[A-Za-z0-9_.:-]`.
    #[error("invalid feature name {name:?}: {reason}")]
    InvalidFeature {
        /// The rejected name.
        name: String,
        /// Why it was rejected.
        reason: &'static str,
    },

    /// Metadata that is not a JSON object or is too large.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),

    /// Any other argument that cannot be used (a period of zero days, an unknown currency code...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// Two amounts in different currencies were combined.
    #[error("currency mismatch: {left} and {right}")]
    CurrencyMismatch {
        /// Currency of the left-hand amount.
        left: String,
        /// Currency of the right-hand amount.
        right: String,
    },

    /// No configured exchange rate converts `from` into `to` (directly, inverted, or through
    /// the pivot). Never treated as a 1:1 rate.
    #[error("no exchange rate is configured from {from} to {to}")]
    NoExchangeRate {
        /// The source currency code.
        from: String,
        /// The target currency code.
        to: String,
    },

    /// Decimal or integer arithmetic overflowed.
    #[error("arithmetic overflow while computing {0}")]
    Overflow(&'static str),

    /// The call was refused before reaching the provider: it would exceed a limit.
    #[error("AI usage limit exceeded ({}): {}% of the period's limit used", .check.exceeded.map_or("limit", |k| k.as_str()), .check.usage_percentage)]
    LimitExceeded {
        /// The evaluation that refused it, with the limit, remainders and reset instant.
        check: Box<crate::limit::LimitCheck>,
    },

    /// A credits-mode call was refused before reaching the provider: the wallet cannot
    /// cover its estimated cost.
    #[error("insufficient credits: required {required}, available {available} {}", .required.currency)]
    InsufficientCredits {
        /// The estimated cost that was to be held.
        required: crate::money::Money,
        /// What the wallet had available.
        available: rust_decimal::Decimal,
    },

    /// The billable has no active subscription and the metering requires one
    /// ([`MeteringConfig::require_subscription`](crate::MeteringConfig::require_subscription)).
    #[error("{billable} has no active subscription, and one is required")]
    NoSubscription {
        /// The billable without a subscription.
        billable: crate::Billable,
    },

    /// A call with this idempotency key is in flight: this one was refused before reaching
    /// the provider, so the provider runs once per key. Retry once the first call is done;
    /// a recorded key then returns its stored row. The tower layer's problem mapping
    /// answers it with 409 Conflict.
    #[error("a call with idempotency key {key:?} is already in flight")]
    IdempotencyKeyInFlight {
        /// The key.
        key: String,
    },

    /// The call could not be estimated (no estimate, no request with an output cap, no
    /// earlier call of this feature and model), and another unestimated call of this
    /// billable is in flight: at most one is, so that concurrent calls cannot overshoot a
    /// limit or a wallet by more than one call. Give an estimate, or retry shortly (429).
    #[error(
        "another call of {billable} without a usage estimate is in flight; give an estimate (or max_tokens), or retry when it ends"
    )]
    CallInFlight {
        /// The billable.
        billable: crate::Billable,
    },

    /// A subscription names a plan the store does not have.
    #[error("plan `{0}` does not exist")]
    UnknownPlan(String),

    /// The storage backend failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

impl Error {
    pub(crate) fn usage(reason: impl Into<Cow<'static, str>>) -> Self {
        Self::InvalidUsage(reason.into())
    }
}
