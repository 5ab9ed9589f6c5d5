//! Parsing of configuration values by what their key [accepts](super::keys::Accepts).

use std::str::FromStr;

use ai_metering_core::Currency;
use chrono_tz::Tz;
use rust_decimal::Decimal;

use super::keys::{Accepts, Key};
use super::{ConfigError, Origin};

/// Checks `text` against what `key` accepts.
pub fn check(key: &'static Key, text: &str, origin: &Origin) -> Result<(), ConfigError> {
    match key.accepts {
        Accepts::OneOf(words) => {
            let t = text.trim().to_ascii_lowercase();
            if words.contains(&t.as_str()) {
                Ok(())
            } else {
                Err(key.accepts.error(key.name, text, origin))
            }
        }
        Accepts::Bool => parse_bool(key, text, origin).map(drop),
        Accepts::Integer { .. } => parse_integer(key, text, origin).map(drop),
        Accepts::Percentage => parse_percentage(key, text, origin).map(drop),
        Accepts::Currency => parse_currency(key, text, origin).map(drop),
        Accepts::TimeZone => parse_timezone(key, text, origin).map(drop),
        Accepts::DatabaseUrl => {
            let t = text.trim();
            let known = ["sqlite:", "postgres://", "postgresql://"];
            if known.iter().any(|p| t.starts_with(p)) {
                Ok(())
            } else {
                Err(key.accepts.error(key.name, text, origin))
            }
        }
        Accepts::Text => Ok(()),
        Accepts::HttpUrl => {
            let t = text.trim();
            if (t.starts_with("http://") || t.starts_with("https://")) && t.len() > 8 {
                Ok(())
            } else {
                Err(key.accepts.error(key.name, text, origin))
            }
        }
        Accepts::Name => {
            if text.trim().is_empty() {
                Err(key.accepts.error(key.name, text, origin))
            } else {
                Ok(())
            }
        }
    }
}

/// A boolean: true/false, 1/0, yes/no, on/off, and Laravel's `(true)`/`(false)`.
pub fn parse_bool(key: &'static Key, text: &str, origin: &Origin) -> Result<bool, ConfigError> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "(true)" | "1" | "yes" | "on" => Ok(true),
        "false" | "(false)" | "0" | "no" | "off" => Ok(false),
        _ => Err(Accepts::Bool.error(key.name, text, origin)),
    }
}

/// A whole number at least the key's minimum.
pub fn parse_integer(key: &'static Key, text: &str, origin: &Origin) -> Result<u64, ConfigError> {
    let min = match key.accepts {
        Accepts::Integer { min } => min,
        _ => 0,
    };
    match text.trim().parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(Accepts::Integer { min }.error(key.name, text, origin)),
    }
}

/// A percentage above 0 and at most 100.
pub fn parse_percentage(
    key: &'static Key,
    text: &str,
    origin: &Origin,
) -> Result<Decimal, ConfigError> {
    match Decimal::from_str(text.trim()) {
        Ok(p) if p > Decimal::ZERO && p <= Decimal::ONE_HUNDRED => Ok(p),
        _ => Err(Accepts::Percentage.error(key.name, text, origin)),
    }
}

/// A currency code.
pub fn parse_currency(
    key: &'static Key,
    text: &str,
    origin: &Origin,
) -> Result<Currency, ConfigError> {
    Currency::new(text.trim()).map_err(|_| Accepts::Currency.error(key.name, text, origin))
}

/// An IANA time zone.
pub fn parse_timezone(key: &'static Key, text: &str, origin: &Origin) -> Result<Tz, ConfigError> {
    Tz::from_str(text.trim()).map_err(|_| Accepts::TimeZone.error(key.name, text, origin))
}
