//! The table of configuration keys: TOML key, environment variables, default, accepted values.
//!
//! TOML keys are dotted paths (`stripe.mode`); the environment variables are `AI_METERING_*`
//! names. Keys marked *inert* are accepted (so existing configurations still load) and
//! type-checked, but have no effect; `ai-metering validate` says why when one is set.

/// What a key accepts, for parsing and for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepts {
    /// One of these words (case-insensitive).
    OneOf(&'static [&'static str]),
    /// true or false (also 1/0, yes/no, on/off, and Laravel's `(true)`/`(false)`).
    Bool,
    /// A whole number from `min` up.
    Integer {
        /// The smallest accepted value.
        min: u64,
    },
    /// A decimal number above 0 and at most 100.
    Percentage,
    /// A three-letter ISO 4217 currency code.
    Currency,
    /// An IANA time zone name such as `UTC` or `Europe/Paris`.
    TimeZone,
    /// A database URL (`sqlite://...` or `postgres://...`).
    DatabaseUrl,
    /// A non-empty name.
    Name,
    /// Any text, empty included.
    Text,
    /// An `http://` or `https://` URL.
    HttpUrl,
}

impl Accepts {
    /// The accepted values, as told to people.
    pub fn describe(&self) -> String {
        match self {
            Self::OneOf(words) => words.join(", "),
            Self::Bool => "true or false".into(),
            Self::Integer { min } => format!("a whole number >= {min}"),
            Self::Percentage => "a number above 0 and at most 100".into(),
            Self::Currency => "a three-letter ISO 4217 code such as usd or eur".into(),
            Self::TimeZone => "an IANA time zone name such as UTC or Europe/Paris".into(),
            Self::DatabaseUrl => "a sqlite://... or postgres://... URL".into(),
            Self::Name => "a non-empty name".into(),
            Self::Text => "any text".into(),
            Self::HttpUrl => "an http:// or https:// URL".into(),
        }
    }
}

/// One configuration key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted key, as written in the TOML file (`period.type` is `type` in `[period]`).
    pub name: &'static str,
    /// Environment variables, highest priority first.
    pub env: &'static [&'static str],
    /// The default, as text.
    pub default: &'static str,
    /// What it accepts.
    pub accepts: Accepts,
    /// `Some(reason)` when the key has no effect in this port.
    pub inert: Option<&'static str>,
}

const fn key(
    name: &'static str,
    env: &'static [&'static str],
    default: &'static str,
    accepts: Accepts,
) -> Key {
    Key {
        name,
        env,
        default,
        accepts,
        inert: None,
    }
}

const fn inert(
    name: &'static str,
    env: &'static [&'static str],
    default: &'static str,
    accepts: Accepts,
    reason: &'static str,
) -> Key {
    Key {
        name,
        env,
        default,
        accepts,
        inert: Some(reason),
    }
}

/// The database used when nothing is configured: an embedded SQLite file in the working
/// directory, created on first use.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://ai-metering.db?mode=rwc";

/// Period types (the core's, see [`PeriodConfig`](ai_metering_core::period::PeriodConfig)).
pub const PERIOD_TYPES: &[&str] = ai_metering_core::period::PERIOD_TYPES;
/// Period alignments: `calendar`, or `rolling` (anchored to each subscription's start).
pub const PERIOD_ALIGNMENTS: &[&str] = ai_metering_core::period::PERIOD_ALIGNMENTS;
/// Overage behaviours.
pub const OVERAGE_BEHAVIORS: &[&str] = &["block", "charge", "allow"];
/// Overage sync strategies.
pub const SYNC_STRATEGIES: &[&str] = &["batch", "immediate"];
/// Billing drivers the CLI knows. `none` means overages wait until one is configured.
pub const BILLING_DRIVERS: &[&str] = &["none", "stripe"];
/// How the Stripe driver reports overage.
pub const STRIPE_MODES: &[&str] = &["invoice_items", "meter_events"];
/// Log levels.
pub const LOG_LEVELS: &[&str] = &["error", "warn", "info", "debug", "trace"];

/// Every key, in documentation order.
pub const KEYS: &[Key] = &[
    key(
        "database.url",
        &["AI_METERING_DATABASE_URL", "DATABASE_URL"],
        DEFAULT_DATABASE_URL,
        Accepts::DatabaseUrl,
    ),
    key(
        "default_provider",
        &["AI_METERING_DEFAULT_PROVIDER"],
        "openai",
        Accepts::Name,
    ),
    key(
        "period.type",
        &["AI_METERING_PERIOD_TYPE"],
        "monthly",
        Accepts::OneOf(PERIOD_TYPES),
    ),
    key(
        "period.alignment",
        &["AI_METERING_PERIOD_ALIGNMENT"],
        "calendar",
        Accepts::OneOf(PERIOD_ALIGNMENTS),
    ),
    key(
        "period.timezone",
        &["AI_METERING_TIMEZONE"],
        "UTC",
        Accepts::TimeZone,
    ),
    key(
        "billing.driver",
        &["AI_METERING_BILLING_DRIVER"],
        "none",
        Accepts::OneOf(BILLING_DRIVERS),
    ),
    key(
        "billing.stripe.secret",
        &["AI_METERING_STRIPE_SECRET", "STRIPE_SECRET"],
        "",
        Accepts::Text,
    ),
    key(
        "billing.stripe.mode",
        &["AI_METERING_STRIPE_MODE"],
        "invoice_items",
        Accepts::OneOf(STRIPE_MODES),
    ),
    key(
        "billing.stripe.meter_event_name",
        &["AI_METERING_STRIPE_METER_EVENT"],
        "ai_overage_tokens",
        Accepts::Name,
    ),
    key(
        "billing.stripe.api_base",
        &["AI_METERING_STRIPE_API_BASE"],
        "https://api.stripe.com",
        Accepts::HttpUrl,
    ),
    key(
        "billing.overage_behavior",
        &["AI_METERING_OVERAGE_BEHAVIOR"],
        "block",
        Accepts::OneOf(OVERAGE_BEHAVIORS),
    ),
    key(
        "billing.overage_sync_strategy",
        &["AI_METERING_OVERAGE_SYNC_STRATEGY"],
        "batch",
        Accepts::OneOf(SYNC_STRATEGIES),
    ),
    key(
        "billing.credit_overdraft_allowed",
        &["AI_METERING_CREDIT_OVERDRAFT"],
        "false",
        Accepts::Bool,
    ),
    key(
        "billing.currency",
        &["AI_METERING_CURRENCY"],
        "usd",
        Accepts::Currency,
    ),
    key(
        "billing.payment_failure_grace_period_days",
        &["AI_METERING_PAYMENT_FAILURE_GRACE_PERIOD"],
        "7",
        Accepts::Integer { min: 0 },
    ),
    key(
        "limits.approaching_threshold",
        &["AI_METERING_APPROACHING_THRESHOLD"],
        "80",
        Accepts::Percentage,
    ),
    key(
        "storage.prune_after_days",
        &["AI_METERING_PRUNE_AFTER_DAYS"],
        "365",
        Accepts::Integer { min: 1 },
    ),
    inert(
        "performance.cache_limit_checks",
        &["AI_METERING_CACHE_LIMIT_CHECKS"],
        "true",
        Accepts::Bool,
        "the gateway's cache is set by cache_ttl_secs in its [gateway] table; in an app, QuotaLayer::cache_ttl sets the layer's cache",
    ),
    inert(
        "performance.cache_ttl",
        &["AI_METERING_CACHE_TTL"],
        "300",
        Accepts::Integer { min: 0 },
        "the gateway's cache is set by cache_ttl_secs in its [gateway] table; in an app, QuotaLayer::cache_ttl sets the layer's cache",
    ),
    key(
        "logging.enabled",
        &["AI_METERING_LOGGING_ENABLED"],
        "true",
        Accepts::Bool,
    ),
    key(
        "logging.level",
        &["AI_METERING_LOG_LEVEL"],
        "info",
        Accepts::OneOf(LOG_LEVELS),
    ),
    key(
        "metrics.per_billable",
        &["AI_METERING_METRICS_PER_BILLABLE"],
        "false",
        Accepts::Bool,
    ),
    inert(
        "logging.log_failures",
        &["AI_METERING_LOG_FAILURES"],
        "true",
        Accepts::Bool,
        "failures are logged whenever logging is enabled",
    ),
    inert(
        "storage.connection",
        &["AI_METERING_DB_CONNECTION"],
        "",
        Accepts::Name,
        "there is one storage handle for everything: set database.url instead",
    ),
    inert(
        "tenant_resolver",
        &["AI_METERING_TENANT_RESOLVER"],
        "",
        Accepts::Name,
        "tenants are resolved by the host app's code, not by configuration",
    ),
    inert(
        "performance.queue_usage_recording",
        &["AI_METERING_QUEUE_RECORDING"],
        "false",
        Accepts::Name,
        "usage is recorded in the same atomic step that settles the reservation",
    ),
    inert(
        "performance.batch_size",
        &["AI_METERING_BATCH_SIZE"],
        "100",
        Accepts::Integer { min: 1 },
        "laravel-ai-metering never read it either",
    ),
    inert(
        "security.validate_feature_names",
        &["AI_METERING_VALIDATE_FEATURES"],
        "true",
        Accepts::Bool,
        "feature names are always validated",
    ),
    inert(
        "security.sanitize_metadata",
        &["AI_METERING_SANITIZE_METADATA"],
        "true",
        Accepts::Bool,
        "metadata is always validated",
    ),
    inert(
        "security.rate_limit_enabled",
        &["AI_METERING_RATE_LIMIT"],
        "false",
        Accepts::Bool,
        "rate limiting is a separate concern (use a tower rate limiter)",
    ),
    inert(
        "security.prevent_race_conditions",
        &["AI_METERING_PREVENT_RACE_CONDITIONS"],
        "true",
        Accepts::Bool,
        "limits are always enforced with atomic reservations",
    ),
    inert(
        "features.soft_deletes",
        &["AI_METERING_SOFT_DELETES"],
        "false",
        Accepts::Bool,
        "plans are deactivated, not deleted",
    ),
    inert(
        "auto_sync_stripe_ids",
        &["AI_METERING_AUTO_SYNC_STRIPE_IDS"],
        "true",
        Accepts::Bool,
        "subscriptions keep payment-provider ids in their metadata, written by the host",
    ),
];

/// The key named `name`.
pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_names_and_env_vars_are_unique() {
        for (i, a) in KEYS.iter().enumerate() {
            for b in &KEYS[i + 1..] {
                assert_ne!(a.name, b.name);
                for e in a.env {
                    assert!(!b.env.contains(e), "{e} used twice");
                }
            }
        }
    }

    #[test]
    fn original_env_names_and_defaults_are_kept() {
        let k = find("period.type").unwrap();
        assert_eq!(k.env, &["AI_METERING_PERIOD_TYPE"]);
        assert_eq!(k.default, "monthly");
        let k = find("billing.overage_behavior").unwrap();
        assert_eq!(k.env, &["AI_METERING_OVERAGE_BEHAVIOR"]);
        assert_eq!(k.default, "block");
        assert_eq!(find("storage.prune_after_days").unwrap().default, "365");
        assert_eq!(find("performance.cache_ttl").unwrap().default, "300");
        assert_eq!(find("billing.currency").unwrap().default, "usd");
    }

    #[test]
    fn the_specific_database_variable_wins_over_the_generic_one() {
        let k = find("database.url").unwrap();
        assert_eq!(k.env, &["AI_METERING_DATABASE_URL", "DATABASE_URL"]);
    }
}
