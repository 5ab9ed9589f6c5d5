//! [`PriceCatalog::from_per_1k_config`]: prices configured in USD per thousand tokens (the
//! shape is documented on that method).

use crate::error::{Error, Result};
use crate::money::Currency;

use super::catalog::PriceCatalog;
use super::price::ModelPrice;
use super::source_tree::{Kind, Node, Path, deny_unknown_keys, reason};

const MODEL_KEYS: &[&str] = &["input_price_per_1k", "output_price_per_1k"];

impl PriceCatalog {
    /// The version of catalogs read from a per-1k config.
    pub const PER_1K_CONFIG_VERSION: &'static str = "per-1k-config";

    /// Reads a per-1k price config from a JSON value, in USD, version
    /// [`PER_1K_CONFIG_VERSION`](Self::PER_1K_CONFIG_VERSION).
    ///
    /// The config gives prices per provider and model, in USD per **thousand** tokens:
    ///
    /// ```toml
    /// [providers.openai]
    /// class = "OpenAiProvider"          # other keys are ignored
    ///
    /// [providers.openai.models."gpt-4o-mini"]
    /// input_price_per_1k = 0.00015
    /// output_price_per_1k = 0.0006
    /// ```
    ///
    /// Prices are converted exactly (x 1000) to per-million prices, and read from their literal
    /// text (TOML) or shortest decimal text (JSON numbers), never through binary float arithmetic.
    /// Keys outside `providers`, and provider keys other than `models`, are ignored so the whole
    /// application config can be passed. Nothing defaults silently:
    ///
    /// - a missing `input_price_per_1k` or `output_price_per_1k` is an error, not a price of 0;
    /// - negative prices are errors;
    /// - models absent from the config are unknown models (see
    ///   [`UnknownModelPolicy`](super::UnknownModelPolicy)), not free.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use rust_decimal::Decimal;
    ///
    /// let config = serde_json::json!({
    ///     "default_provider": "openai",
    ///     "providers": {
    ///         "openai": {
    ///             "class": "OpenAiProvider",
    ///             "models": {
    ///                 "gpt-4o-mini": { "input_price_per_1k": 0.00015, "output_price_per_1k": 0.0006 }
    ///             }
    ///         }
    ///     }
    /// });
    /// let catalog = PriceCatalog::from_per_1k_config(&config)?;
    /// let price = catalog.price("openai", "gpt-4o-mini").unwrap();
    /// assert_eq!(price.input(), Decimal::new(15, 2)); // $0.15 per million
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCatalog`] naming the key path when the config does not have this shape.
    pub fn from_per_1k_config(config: &serde_json::Value) -> Result<Self> {
        from_tree(&Node::from_json(config))
    }

    /// Reads the per-1k config of [`from_per_1k_config`](Self::from_per_1k_config) from TOML
    /// text.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use rust_decimal::Decimal;
    ///
    /// let catalog = PriceCatalog::from_per_1k_toml(r#"
    ///     [providers.openai.models."gpt-4o"]
    ///     input_price_per_1k = 0.0025
    ///     output_price_per_1k = 0.010
    /// "#)?;
    /// assert_eq!(catalog.price("openai", "gpt-4o").unwrap().output(), Decimal::from(10));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCatalog`] for TOML that does not parse or does not have this shape.
    pub fn from_per_1k_toml(text: &str) -> Result<Self> {
        from_tree(&Node::from_toml(text)?)
    }
}

fn from_tree(root: &Node) -> Result<PriceCatalog> {
    let path = Path::root();
    let top = root.table(&path)?;
    let Some(providers) = top.get("providers") else {
        return Err(root.error(&path, "missing key `providers`"));
    };
    let mut catalog =
        PriceCatalog::empty(Currency::USD).with_version(PriceCatalog::PER_1K_CONFIG_VERSION);
    let at = path.child("providers");
    for (provider, entry) in providers.table(&at)? {
        let at = at.child(provider);
        let Some(models) = entry.table(&at)?.get("models") else {
            continue; // a provider without prices, such as `manual`
        };
        if matches!(models.kind, Kind::Null) {
            continue;
        }
        let at = at.child("models");
        for (model, prices) in models.table(&at)? {
            let at = at.child(model);
            let fields = prices.table(&at)?;
            deny_unknown_keys(fields, &at, MODEL_KEYS)?;
            let required = |key: &str| match fields.get(key) {
                Some(value) => value.price(&at.child(key)),
                None => Err(prices.error(&at, format!("missing key `{key}`"))),
            };
            let price = ModelPrice::per_thousand(
                required("input_price_per_1k")?,
                required("output_price_per_1k")?,
            )
            .map_err(|err| prices.error(&at, reason(err)))?;
            catalog.insert(provider, model, price);
        }
    }
    if catalog.is_empty() {
        return Err(Error::InvalidCatalog(
            "the per-1k config prices no model (expected providers.<name>.models.<model>)".into(),
        ));
    }
    Ok(catalog)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{TokenCounts, TokenUsage};
    use rust_decimal::Decimal;
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    /// A full per-1k price table, as a config writes it.
    fn seed_defaults() -> serde_json::Value {
        json!({
            "providers": {
                "openai": { "class": "OpenAiProvider", "models": {
                    "gpt-4o-mini": { "input_price_per_1k": 0.00015, "output_price_per_1k": 0.00060 },
                    "gpt-4o": { "input_price_per_1k": 0.0025, "output_price_per_1k": 0.010 },
                    "gpt-4-turbo": { "input_price_per_1k": 0.01, "output_price_per_1k": 0.03 }
                }},
                "anthropic": { "models": {
                    "claude-3-5-sonnet-20241022": { "input_price_per_1k": 0.003, "output_price_per_1k": 0.015 },
                    "claude-3-opus-20240229": { "input_price_per_1k": 0.015, "output_price_per_1k": 0.075 }
                }},
                "manual": { "class": "ManualProvider" }
            }
        })
    }

    #[test]
    fn the_seed_defaults_convert_exactly() {
        let c = PriceCatalog::from_per_1k_config(&seed_defaults()).unwrap();
        assert_eq!(c.len(), 5);
        assert_eq!(c.version(), "per-1k-config");
        let mini = c.price("openai", "gpt-4o-mini").unwrap();
        assert_eq!((mini.input(), mini.output()), (d("0.15"), d("0.6")));
        let opus = c.price("anthropic", "claude-3-opus-20240229").unwrap();
        assert_eq!((opus.input(), opus.output()), (d("15"), d("75")));
        // 1000 in + 500 out = 0.00015 + 0.0003.
        let cost = c
            .cost(
                "openai",
                "gpt-4o-mini",
                &TokenUsage::new(1000, 500).unwrap(),
            )
            .unwrap();
        assert_eq!(cost.total, d("0.00045"));
        // ...and one input token is 1.5e-7, kept rather than stored as 0.000000.
        let one = c
            .cost("openai", "gpt-4o-mini", &TokenUsage::new(1, 0).unwrap())
            .unwrap();
        assert_eq!(one.total.to_string(), "0.00000015");
    }

    #[test]
    fn toml_and_json_give_the_same_catalog() {
        let toml = r#"
            default_provider = "openai"
            [providers.openai.models."gpt-4o-mini"]
            input_price_per_1k = 0.00015
            output_price_per_1k = "0.0006"
        "#;
        let from_toml = PriceCatalog::from_per_1k_toml(toml).unwrap();
        let from_json =
            PriceCatalog::from_per_1k_config(&json!({"providers": {"openai": {"models": {
                "gpt-4o-mini": {"input_price_per_1k": 0.00015, "output_price_per_1k": "0.0006"}
            }}}}))
            .unwrap();
        assert_eq!(from_toml, from_json);
        let usage = TokenUsage::try_from(TokenCounts {
            input: 7,
            output: 3,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            from_toml
                .cost("openai", "gpt-4o-mini", &usage)
                .unwrap()
                .total,
            d("0.00000285")
        );
    }

    #[test]
    fn missing_or_bad_prices_are_errors_not_zero() {
        let cases = [
            (
                json!({"providers": {"openai": {"models": {"m": {"input_price_per_1k": 0.001}}}}}),
                "providers.openai.models.m: missing key `output_price_per_1k`",
            ),
            (
                json!({"providers": {"openai": {"models": {"m": {"input_price_per_1k": -0.001, "output_price_per_1k": 1}}}}}),
                "providers.openai.models.m.input_price_per_1k: prices cannot be negative",
            ),
            (
                json!({"providers": {"openai": {"models": {"m": {"input_price_per_1k": 1, "output_price_per_1k": 1, "input_price_per_1m": 1}}}}}),
                "providers.openai.models.m.input_price_per_1m: unknown key",
            ),
            (
                json!({"billing": {}}),
                "the document: missing key `providers`",
            ),
            (
                json!({"providers": {"manual": {"class": "X"}}}),
                "prices no model",
            ),
            (
                json!([1, 2]),
                "the document: expected a table, found an array",
            ),
        ];
        for (config, expected) in cases {
            let err = PriceCatalog::from_per_1k_config(&config).unwrap_err();
            assert!(
                err.to_string().contains(expected),
                "{err}\nwanted: {expected}"
            );
        }
    }
}
