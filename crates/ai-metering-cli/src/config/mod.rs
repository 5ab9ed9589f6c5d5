//! Configuration: a TOML file, `AI_METERING_*` environment variables, defaults.
//!
//! Precedence, highest first: the `--database-url` flag (for `database.url` only), the
//! environment, the file, the defaults. The file is `--config PATH` when given (it must then
//! exist), else `./ai-metering.toml` when present. An empty environment variable counts as
//! unset. Every key, its variables and default are listed in [`keys::KEYS`] and in the crate
//! README; invalid values are rejected with a message naming the key, where the value came
//! from, and the accepted values.

pub mod keys;
mod values;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use ai_metering_core::limit::Thresholds;
use ai_metering_core::period::{PeriodConfig, PeriodSpec};
use ai_metering_core::plan::OveragePolicy;
use ai_metering_core::store::Overdraft;
use ai_metering_core::{Currency, MeteringConfig};
use chrono_tz::Tz;
use rust_decimal::Decimal;

use keys::{Accepts, KEYS, Key};

/// The default configuration file, looked up in the working directory.
pub const DEFAULT_FILE: &str = "ai-metering.toml";

/// Where a setting's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The built-in default.
    Default,
    /// The configuration file.
    File(PathBuf),
    /// An environment variable.
    Env(&'static str),
    /// A command-line flag.
    Flag(&'static str),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Default => f.write_str("default"),
            Self::File(p) => write!(f, "{}", p.display()),
            Self::Env(v) => write!(f, "env {v}"),
            Self::Flag(flag) => write!(f, "flag {flag}"),
        }
    }
}

/// Invalid configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    /// A value the key does not accept.
    InvalidValue {
        /// The dotted key.
        key: &'static str,
        /// The value as given.
        value: String,
        /// Where it came from.
        origin: Origin,
        /// The accepted values, described.
        accepted: String,
    },
    /// A key the file has but nobody knows.
    UnknownKey {
        /// The dotted key.
        key: String,
        /// The file.
        file: PathBuf,
    },
    /// The file cannot be read or parsed.
    File {
        /// The file.
        file: PathBuf,
        /// What went wrong.
        reason: String,
    },
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidValue {
                key,
                value,
                origin,
                accepted,
            } => write!(
                f,
                "invalid configuration: {key} = {value:?} (from {origin}); accepted values: {accepted}"
            ),
            Self::UnknownKey { key, file } => {
                let known: Vec<&str> = KEYS.iter().map(|k| k.name).collect();
                write!(
                    f,
                    "invalid configuration: unknown key `{key}` in {}; known keys: {}",
                    file.display(),
                    known.join(", ")
                )
            }
            Self::File { file, reason } => {
                write!(f, "invalid configuration file {}: {reason}", file.display())
            }
        }
    }
}

impl std::error::Error for ConfigError {}

/// What the configuration is loaded from.
pub struct Sources<'a> {
    /// An explicit `--config` file (must exist).
    pub file: Option<PathBuf>,
    /// The directory where `ai-metering.toml` is looked up when no file is given.
    pub dir: PathBuf,
    /// The `--database-url` flag.
    pub database_url: Option<String>,
    /// Reads an environment variable.
    pub env: &'a dyn Fn(&str) -> Option<String>,
}

/// Settings of the Stripe billing driver.
#[derive(Clone)]
pub struct StripeSettings {
    /// The secret key (`sk_...` or a restricted `rk_...`); empty when unset.
    pub secret: String,
    /// `invoice_items` (an invoice item per overage) or `meter_events` (a Billing Meter event).
    pub mode: String,
    /// The Billing Meter's event name, in `meter_events` mode.
    pub meter_event_name: String,
    /// Stripe's API base URL (changed for tests and proxies).
    pub api_base: String,
}

impl fmt::Debug for StripeSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeSettings")
            .field("secret", &if self.secret.is_empty() { "" } else { "***" })
            .field("mode", &self.mode)
            .field("meter_event_name", &self.meter_event_name)
            .field("api_base", &self.api_base)
            .finish()
    }
}

/// The effective configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The store's URL.
    pub database_url: String,
    /// Provider assumed when none is given.
    pub default_provider: String,
    /// Time zone of period boundaries.
    pub timezone: Tz,
    /// The period rules read from `period.type`, `period.alignment` and `period.timezone` by
    /// the core's one parser, [`PeriodConfig::from_config`].
    pub periods: PeriodConfig,
    /// The calendar-aligned period spec of [`periods`](Self::periods).
    pub period: PeriodSpec,
    /// Billing driver name (`none` or `stripe`).
    pub billing_driver: String,
    /// Stripe settings, for the `stripe` driver.
    pub stripe: StripeSettings,
    /// Default overage policy.
    pub overage_behavior: OveragePolicy,
    /// May credit wallets go below zero.
    pub credit_overdraft: bool,
    /// Currency of wallets and billing.
    pub currency: Currency,
    /// Approaching threshold, in percent.
    pub approaching_threshold: Decimal,
    /// Default retention of `cleanup`.
    pub prune_after_days: u64,
    /// Logging on or off.
    pub logging_enabled: bool,
    /// Label `serve`'s and `demo`'s metrics with the billable (one series per billable).
    pub metrics_per_billable: bool,
    /// Log level.
    pub log_level: String,
    /// Every key's effective text and origin, for `ai-metering config` and `validate`.
    pub settings: BTreeMap<&'static str, (String, Origin)>,
    /// The configuration file read, with its text: its `[gateway]` table is the gateway's
    /// (`ai-metering serve`), read by `ai_metering_gateway::GatewayConfig`.
    pub file: Option<(PathBuf, String)>,
}

impl Config {
    /// Loads the configuration from `sources`.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first invalid key (or the unreadable file).
    pub fn load(sources: &Sources<'_>) -> Result<Self, ConfigError> {
        let file = match &sources.file {
            Some(path) => Some(read_file(path)?),
            None => {
                let path = sources.dir.join(DEFAULT_FILE);
                if path.is_file() {
                    Some(read_file(&path)?)
                } else {
                    None
                }
            }
        };
        let mut settings = BTreeMap::new();
        for key in KEYS {
            let (text, origin) = resolve(key, sources, file.as_ref());
            settings.insert(key.name, (text, origin));
        }
        let mut config = Self::from_settings(settings)?;
        config.file = file.map(|f| (f.path, f.text));
        // The settings are for display: never keep the secret there.
        if let Some((secret, _)) = config.settings.get_mut("billing.stripe.secret")
            && !secret.is_empty()
        {
            *secret = "***".into();
        }
        Ok(config)
    }

    fn from_settings(
        settings: BTreeMap<&'static str, (String, Origin)>,
    ) -> Result<Self, ConfigError> {
        // Type-check every key, inert ones included.
        for key in KEYS {
            if let Some((text, origin)) = settings.get(key.name)
                && !(key.inert.is_some() && text.is_empty())
            {
                values::check(key, text, origin)?;
            }
        }
        let get = |name: &'static str| -> Result<(&'static Key, &str, &Origin), ConfigError> {
            let key = keys::find(name).ok_or_else(|| ConfigError::File {
                file: PathBuf::new(),
                reason: format!("internal: key {name} is not in the table"),
            })?;
            let (text, origin) = settings.get(name).ok_or_else(|| ConfigError::File {
                file: PathBuf::new(),
                reason: format!("internal: key {name} was not resolved"),
            })?;
            Ok((key, text.as_str(), origin))
        };
        let word = |name| -> Result<String, ConfigError> {
            let (_, text, _) = get(name)?;
            Ok(text.trim().to_ascii_lowercase())
        };
        let text = |name| -> Result<String, ConfigError> {
            let (_, text, _) = get(name)?;
            Ok(text.trim().to_owned())
        };
        let boolean = |name| -> Result<bool, ConfigError> {
            let (key, text, origin) = get(name)?;
            values::parse_bool(key, text, origin)
        };
        let integer = |name| -> Result<u64, ConfigError> {
            let (key, text, origin) = get(name)?;
            values::parse_integer(key, text, origin)
        };
        let (tz_key, tz_text, tz_origin) = get("period.timezone")?;
        let (cur_key, cur_text, cur_origin) = get("billing.currency")?;
        let (thr_key, thr_text, thr_origin) = get("limits.approaching_threshold")?;
        let period_type = word("period.type")?;
        let timezone = values::parse_timezone(tz_key, tz_text, tz_origin)?;
        let (type_key, type_text, type_origin) = get("period.type")?;
        let alignment = word("period.alignment")?;
        // The same parser as `ai_metering_core`'s, so `rolling` means the same everywhere.
        let periods = PeriodConfig::from_config(&period_type, &alignment, timezone.name())
            .map_err(|_| {
                type_key
                    .accepts
                    .error(type_key.name, type_text, type_origin)
            })?;
        let overage_behavior = word("billing.overage_behavior")?
            .parse::<OveragePolicy>()
            .map_err(|e| ConfigError::File {
                file: PathBuf::new(),
                reason: e.to_string(),
            })?;
        let billing_driver = word("billing.driver")?;
        let stripe = StripeSettings {
            secret: text("billing.stripe.secret")?,
            mode: word("billing.stripe.mode")?,
            meter_event_name: text("billing.stripe.meter_event_name")?,
            api_base: text("billing.stripe.api_base")?,
        };
        if billing_driver == "stripe" && stripe.secret.is_empty() {
            let (_, value, origin) = get("billing.stripe.secret")?;
            return Err(ConfigError::InvalidValue {
                key: "billing.stripe.secret",
                value: value.to_owned(),
                origin: origin.clone(),
                accepted: "a Stripe secret key (sk_... or rk_...), required when billing.driver = stripe; set AI_METERING_STRIPE_SECRET or STRIPE_SECRET".into(),
            });
        }
        Ok(Self {
            database_url: text("database.url")?,
            default_provider: text("default_provider")?,
            timezone,
            periods,
            period: periods.spec,
            billing_driver,
            stripe,
            overage_behavior,
            credit_overdraft: boolean("billing.credit_overdraft_allowed")?,
            currency: values::parse_currency(cur_key, cur_text, cur_origin)?,
            approaching_threshold: values::parse_percentage(thr_key, thr_text, thr_origin)?,
            prune_after_days: integer("storage.prune_after_days")?,
            logging_enabled: boolean("logging.enabled")?,
            metrics_per_billable: boolean("metrics.per_billable")?,
            log_level: word("logging.level")?,
            settings,
            file: None,
        })
    }

    /// The metering rules: periods (anchored to each subscription's start when the
    /// alignment is `rolling`), approaching threshold, default overage policy, overdraft.
    pub fn metering_config(&self) -> MeteringConfig {
        let mut config = MeteringConfig {
            // The threshold was range-checked when loading, so this cannot fail; fall back
            // to the default rather than panic.
            thresholds: Thresholds::new([self.approaching_threshold]).unwrap_or_default(),
            overage_policy: self.overage_behavior,
            overdraft: if self.credit_overdraft {
                Overdraft::Unlimited
            } else {
                Overdraft::Disallowed
            },
            metrics_per_billable: self.metrics_per_billable,
            ..MeteringConfig::default()
        };
        self.periods.apply_to(&mut config);
        config
    }

    /// Inert keys that were set away from their default, with the reason they do nothing.
    pub fn inert_settings(&self) -> Vec<(&'static str, &'static str)> {
        KEYS.iter()
            .filter_map(|k| {
                let reason = k.inert?;
                let (_, origin) = self.settings.get(k.name)?;
                (*origin != Origin::Default).then_some((k.name, reason))
            })
            .collect()
    }
}

/// The table of the configuration file that `ai-metering serve` reads.
pub const GATEWAY_TABLE: &str = "gateway";

/// A parsed configuration file: dotted key -> text.
struct FileValues {
    path: PathBuf,
    values: BTreeMap<String, String>,
    text: String,
}

fn read_file(path: &Path) -> Result<FileValues, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        file: path.to_owned(),
        reason: e.to_string(),
    })?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::File {
            file: path.to_owned(),
            reason: e.message().to_owned(),
        })?;
    let mut values = BTreeMap::new();
    // The gateway's table is the gateway's to read and check (`ai-metering validate`).
    let mut table = table;
    table.remove(GATEWAY_TABLE);
    flatten(path, "", &table, &mut values)?;
    for key in values.keys() {
        if keys::find(key).is_none() {
            return Err(ConfigError::UnknownKey {
                key: key.clone(),
                file: path.to_owned(),
            });
        }
    }
    Ok(FileValues {
        path: path.to_owned(),
        values,
        text,
    })
}

fn flatten(
    path: &Path,
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (name, value) in table {
        let key = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}.{name}")
        };
        let text = match value {
            toml::Value::Table(t) => {
                flatten(path, &key, t, out)?;
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            // Only percentages accept fractions; the float's shortest text is exact enough
            // for a threshold, and money never comes from this file.
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Datetime(_) | toml::Value::Array(_) => {
                return Err(ConfigError::File {
                    file: path.to_owned(),
                    reason: format!("`{key}` must be a string, number or boolean"),
                });
            }
        };
        out.insert(key, text);
    }
    Ok(())
}

fn resolve(key: &Key, sources: &Sources<'_>, file: Option<&FileValues>) -> (String, Origin) {
    if key.name == "database.url"
        && let Some(url) = sources.database_url.as_ref().filter(|u| !u.is_empty())
    {
        return (url.clone(), Origin::Flag("--database-url"));
    }
    for var in key.env {
        if let Some(v) = (sources.env)(var).filter(|v| !v.is_empty()) {
            return (v, Origin::Env(var));
        }
    }
    if let Some(file) = file
        && let Some(v) = file.values.get(key.name)
    {
        return (v.clone(), Origin::File(file.path.clone()));
    }
    (key.default.to_owned(), Origin::Default)
}

impl Accepts {
    fn error(&self, key: &'static str, value: &str, origin: &Origin) -> ConfigError {
        ConfigError::InvalidValue {
            key,
            value: value.to_owned(),
            origin: origin.clone(),
            accepted: self.describe(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn load_with(
        env: &[(&str, &str)],
        file: Option<&str>,
        flag: Option<&str>,
    ) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        if let Some(text) = file {
            std::fs::write(dir.path().join(DEFAULT_FILE), text).unwrap();
        }
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let read = move |k: &str| env.get(k).cloned();
        Config::load(&Sources {
            file: None,
            dir: dir.path().to_owned(),
            database_url: flag.map(str::to_owned),
            env: &read,
        })
    }

    #[test]
    fn nothing_configured_gives_the_originals_defaults_and_embedded_sqlite() {
        let c = load_with(&[], None, None).unwrap();
        assert_eq!(c.database_url, "sqlite://ai-metering.db?mode=rwc");
        assert_eq!(c.period, PeriodSpec::monthly());
        assert!(!c.periods.anchor_to_subscription);
        assert_eq!(c.timezone, Tz::UTC);
        assert_eq!(c.overage_behavior, OveragePolicy::Block);
        assert_eq!(c.currency, Currency::USD);
        assert!(!c.credit_overdraft);
        assert_eq!(c.prune_after_days, 365);
        assert_eq!(c.approaching_threshold, Decimal::from(80));
        assert!(c.inert_settings().is_empty());
        let m = c.metering_config();
        assert_eq!(m.period, PeriodSpec::monthly());
        assert!(!m.anchor_to_subscription);
        assert_eq!(m.overdraft, Overdraft::Disallowed);
    }

    #[test]
    fn settings_become_metering_rules() {
        let env = [
            ("AI_METERING_PERIOD_TYPE", "weekly"),
            ("AI_METERING_PERIOD_ALIGNMENT", "rolling"),
            ("AI_METERING_TIMEZONE", "Europe/Berlin"),
            ("AI_METERING_CREDIT_OVERDRAFT", "true"),
            ("AI_METERING_OVERAGE_BEHAVIOR", "charge"),
            ("AI_METERING_APPROACHING_THRESHOLD", "90"),
        ];
        let m = load_with(&env, None, None).unwrap().metering_config();
        assert_eq!(
            m.period,
            PeriodSpec::weekly().in_timezone(Tz::Europe__Berlin)
        );
        assert!(m.anchor_to_subscription);
        // The core's parser gives the same rules: `rolling` means anchored everywhere.
        let core = PeriodConfig::from_config("weekly", "rolling", "Europe/Berlin").unwrap();
        assert_eq!(m.period, core.spec);
        assert_eq!(m.anchor_to_subscription, core.anchor_to_subscription);
        assert_eq!(m.overdraft, Overdraft::Unlimited);
        assert_eq!(m.overage_policy, OveragePolicy::Charge);
        assert_eq!(m.thresholds.as_slice(), &[Decimal::from(90)]);
    }

    #[test]
    fn env_beats_file_beats_default_and_the_flag_beats_env() {
        let file = "[period]\ntype = \"weekly\"\ntimezone = \"Europe/Paris\"\n[storage]\nprune_after_days = 30\n";
        let c = load_with(&[("AI_METERING_PERIOD_TYPE", "daily")], Some(file), None).unwrap();
        assert_eq!(c.period, PeriodSpec::daily().in_timezone(Tz::Europe__Paris));
        assert_eq!(
            c.settings["period.type"].1,
            Origin::Env("AI_METERING_PERIOD_TYPE")
        );
        assert_eq!(c.timezone, Tz::Europe__Paris);
        assert_eq!(c.prune_after_days, 30);

        let env = [
            ("DATABASE_URL", "postgres://generic/db"),
            ("AI_METERING_DATABASE_URL", "sqlite://specific.db"),
        ];
        assert_eq!(
            load_with(&env, None, None).unwrap().database_url,
            "sqlite://specific.db"
        );
        assert_eq!(
            load_with(&env[..1], None, None).unwrap().database_url,
            "postgres://generic/db"
        );
        assert_eq!(
            load_with(&env, None, Some("sqlite://flag.db"))
                .unwrap()
                .database_url,
            "sqlite://flag.db"
        );

        // The switch for per-billable metrics reaches the metering.
        assert!(
            !load_with(&[], None, None)
                .unwrap()
                .metering_config()
                .metrics_per_billable
        );
        let on = [("AI_METERING_METRICS_PER_BILLABLE", "true")];
        assert!(
            load_with(&on, None, None)
                .unwrap()
                .metering_config()
                .metrics_per_billable
        );
    }

    #[test]
    fn empty_env_vars_count_as_unset() {
        let c = load_with(&[("AI_METERING_PERIOD_TYPE", "")], None, None).unwrap();
        assert_eq!(c.period, PeriodSpec::monthly());
    }

    #[test]
    fn invalid_values_name_the_key_the_origin_and_the_accepted_values() {
        let err = load_with(&[("AI_METERING_PERIOD_TYPE", "fortnightly")], None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("period.type"), "{err}");
        assert!(err.contains("AI_METERING_PERIOD_TYPE"), "{err}");
        assert!(
            err.contains("monthly, weekly, daily, yearly, rolling"),
            "{err}"
        );

        let err = load_with(&[], Some("[billing]\novernight = true\n"), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown key `billing.overnight`"), "{err}");

        for (var, bad, accepted) in [
            ("AI_METERING_CREDIT_OVERDRAFT", "maybe", "true or false"),
            ("AI_METERING_CURRENCY", "dollars", "ISO 4217"),
            ("AI_METERING_TIMEZONE", "Mars/Olympus", "IANA"),
            ("AI_METERING_PRUNE_AFTER_DAYS", "0", ">= 1"),
            ("AI_METERING_CACHE_TTL", "-5", ">= 0"),
            (
                "AI_METERING_OVERAGE_BEHAVIOR",
                "refund",
                "block, charge, allow",
            ),
            ("AI_METERING_APPROACHING_THRESHOLD", "120", "at most 100"),
            ("AI_METERING_DATABASE_URL", "mysql://x", "sqlite://"),
            ("AI_METERING_BATCH_SIZE", "lots", "whole number"),
        ] {
            let err = load_with(&[(var, bad)], None, None)
                .unwrap_err()
                .to_string();
            assert!(err.contains(var) && err.contains(accepted), "{var}: {err}");
        }
    }

    #[test]
    fn the_stripe_driver_needs_a_secret() {
        let err = load_with(&[("AI_METERING_BILLING_DRIVER", "stripe")], None, None)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("billing.stripe.secret") && err.contains("STRIPE_SECRET"),
            "{err}"
        );
        let c = load_with(
            &[
                ("AI_METERING_BILLING_DRIVER", "stripe"),
                ("STRIPE_SECRET", "sk_test_1"),
            ],
            None,
            None,
        )
        .unwrap();
        assert_eq!(c.stripe.secret, "sk_test_1");
        assert_eq!(c.stripe.mode, "invoice_items");
        assert!(
            !format!("{c:?}").contains("sk_test_1"),
            "the secret must not be printed"
        );
        let err = load_with(&[("AI_METERING_STRIPE_API_BASE", "ftp://x")], None, None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("http://"), "{err}");
    }

    #[test]
    fn laravel_style_booleans_are_understood() {
        for (text, want) in [("(true)", true), ("On", true), ("0", false), ("no", false)] {
            let c = load_with(&[("AI_METERING_CREDIT_OVERDRAFT", text)], None, None).unwrap();
            assert_eq!(c.credit_overdraft, want, "{text}");
        }
    }

    #[test]
    fn inert_keys_are_type_checked_and_reported_when_set() {
        let c = load_with(&[("AI_METERING_VALIDATE_FEATURES", "false")], None, None).unwrap();
        let inert = c.inert_settings();
        assert_eq!(inert.len(), 1);
        assert_eq!(inert[0].0, "security.validate_feature_names");
    }

    #[test]
    fn an_explicit_file_must_exist_and_parse() {
        let read = |_: &str| None;
        let err = Config::load(&Sources {
            file: Some(PathBuf::from("/nonexistent/ai-metering.toml")),
            dir: PathBuf::from("."),
            database_url: None,
            env: &read,
        })
        .unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ai-metering.toml"));
        let err = load_with(&[], Some("period = [1, 2]"), None).unwrap_err();
        assert!(err.to_string().contains("`period` must be"), "{err}");
        let err = load_with(&[], Some("this is not toml"), None).unwrap_err();
        assert!(
            err.to_string().contains("invalid configuration file"),
            "{err}"
        );
    }
}
