//! [`PriceCatalog::from_toml_str`]: ai-metering's own TOML price file (its shape is documented
//! on that method).

use std::collections::BTreeMap;

use crate::error::Result;
use crate::money::Currency;

use super::catalog::PriceCatalog;
use super::price::ModelPrice;
use super::source_tree::{Node, Path, deny_unknown_keys, reason};
use super::unknown_model::UnknownModelPolicy;

const TOP_KEYS: &[&str] = &[
    "version",
    "currency",
    "providers",
    "provider_aliases",
    "unknown_model",
];
const PROVIDER_KEYS: &[&str] = &["models", "aliases"];
const PRICE_KEYS: &[&str] = &[
    "input_per_million",
    "output_per_million",
    "cached_input_per_million",
    "cache_write_per_million",
    "cache_write_long_per_million",
    "reasoning_per_million",
];

impl PriceCatalog {
    /// Reads a catalog from ai-metering's TOML price file:
    ///
    /// ```toml
    /// version = "acme-2026-11"        # optional; recorded in every cost ("custom" if absent)
    /// currency = "USD"                # optional; USD if absent
    ///
    /// [providers.openai.models."gpt-4o"]
    /// input_per_million = "2.50"      # required
    /// output_per_million = "10"       # required
    /// cached_input_per_million = "1.25"
    /// # also: cache_write_per_million, cache_write_long_per_million, reasoning_per_million
    ///
    /// [providers.openai.aliases]       # optional: other names of priced models
    /// "chat-default" = "gpt-4o"
    ///
    /// [provider_aliases]               # optional: other names of providers
    /// azure = "openai"
    ///
    /// [unknown_model]                  # optional; without it unknown models are rejected
    /// policy = "fallback"             # "reject", "unpriced" or "fallback"
    /// input_per_million = "5"         # with "fallback": a price, keys as for a model
    /// output_per_million = "15"
    /// ```
    ///
    /// Prices may be strings (`"2.50"`), integers (`10`) or TOML floats (`2.5`). Floats are read
    /// from their literal text, never through a binary float, so `0.1` is exactly 0.1. Unknown
    /// keys are errors (a misspelt `input_per_milion` must not silently leave a price out), and
    /// every error names the key path and line.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use rust_decimal::Decimal;
    ///
    /// let catalog = PriceCatalog::from_toml_str(r#"
    ///     version = "acme-2026-11"
    ///     [providers.openai.models."gpt-4o-mini"]
    ///     input_per_million = "0.15"
    ///     output_per_million = 0.60
    /// "#)?;
    /// let price = catalog.price("openai", "gpt-4o-mini").unwrap();
    /// assert_eq!(price.output(), Decimal::new(60, 2));
    ///
    /// let err = PriceCatalog::from_toml_str("[providers.openai.models.x]\ninput_per_million = 1\n")
    ///     .unwrap_err();
    /// assert!(err.to_string().contains("providers.openai.models.x (line 1): missing key `output_per_million`"));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCatalog`](crate::Error::InvalidCatalog) for TOML that does not parse or does not have this shape,
    /// naming the key path and line.
    pub fn from_toml_str(text: &str) -> Result<Self> {
        from_tree(&Node::from_toml(text)?)
    }
}

fn from_tree(root: &Node) -> Result<PriceCatalog> {
    let path = Path::root();
    let top = root.table(&path)?;
    deny_unknown_keys(top, &path, TOP_KEYS)?;

    let currency = match top.get("currency") {
        Some(node) => {
            let at = path.child("currency");
            let code = node.string(&at)?;
            Currency::new(code).map_err(|err| node.error(&at, reason(err)))?
        }
        None => Currency::USD,
    };
    let mut catalog = PriceCatalog::empty(currency);
    if let Some(node) = top.get("version") {
        let at = path.child("version");
        let version = node.string(&at)?;
        if version.trim().is_empty() {
            return Err(node.error(&at, "the version cannot be empty"));
        }
        catalog = catalog.with_version(version);
    }

    if let Some(node) = top.get("providers") {
        let at = path.child("providers");
        for (name, provider) in node.table(&at)? {
            read_provider(&mut catalog, name, provider, &at.child(name))?;
        }
    }
    if let Some(node) = top.get("provider_aliases") {
        let at = path.child("provider_aliases");
        for (alias, target) in node.table(&at)? {
            let at = at.child(alias);
            catalog
                .provider_alias(alias, target.string(&at)?)
                .map_err(|err| target.error(&at, reason(err)))?;
        }
    }
    if let Some(node) = top.get("unknown_model") {
        let policy = read_policy(node, &path.child("unknown_model"))?;
        catalog = catalog.with_unknown_model_policy(policy);
    }
    Ok(catalog)
}

fn read_provider(catalog: &mut PriceCatalog, name: &str, node: &Node, path: &Path) -> Result<()> {
    let fields = node.table(path)?;
    deny_unknown_keys(fields, path, PROVIDER_KEYS)?;
    if name.trim().is_empty() {
        return Err(node.error(path, "provider names cannot be empty"));
    }
    if let Some(models) = fields.get("models") {
        let at = path.child("models");
        for (model, entry) in models.table(&at)? {
            let at = at.child(model);
            if model.trim().is_empty() {
                return Err(entry.error(&at, "model names cannot be empty"));
            }
            let prices = entry.table(&at)?;
            deny_unknown_keys(prices, &at, PRICE_KEYS)?;
            catalog.insert(name, model, read_price(entry, prices, &at)?);
        }
    }
    if let Some(aliases) = fields.get("aliases") {
        let at = path.child("aliases");
        for (alias, target) in aliases.table(&at)? {
            let at = at.child(alias);
            catalog
                .alias(name, alias, target.string(&at)?)
                .map_err(|err| target.error(&at, reason(err)))?;
        }
    }
    Ok(())
}

/// Reads the `*_per_million` keys of `prices` (the table `node` at `path`).
fn read_price(node: &Node, prices: &BTreeMap<String, Node>, path: &Path) -> Result<ModelPrice> {
    let required = |key: &str| match prices.get(key) {
        Some(value) => value.price(&path.child(key)),
        None => Err(node.error(path, format!("missing key `{key}`"))),
    };
    let mut price = ModelPrice::per_million(
        required("input_per_million")?,
        required("output_per_million")?,
    )
    .map_err(|err| node.error(path, reason(err)))?;
    type Setter = fn(ModelPrice, rust_decimal::Decimal) -> Result<ModelPrice>;
    let optional: [(&str, Setter); 4] = [
        ("cached_input_per_million", ModelPrice::with_cached_input),
        ("cache_write_per_million", ModelPrice::with_cache_write),
        (
            "cache_write_long_per_million",
            ModelPrice::with_cache_write_long,
        ),
        ("reasoning_per_million", ModelPrice::with_reasoning),
    ];
    for (key, set) in optional {
        if let Some(value) = prices.get(key) {
            let at = path.child(key);
            price = set(price, value.price(&at)?).map_err(|err| value.error(&at, reason(err)))?;
        }
    }
    Ok(price)
}

fn read_policy(node: &Node, path: &Path) -> Result<UnknownModelPolicy> {
    let fields = node.table(path)?;
    let policy_path = path.child("policy");
    let Some(value) = fields.get("policy") else {
        return Err(node.error(path, "missing key `policy`"));
    };
    let policy = value.string(&policy_path)?;
    match policy {
        "reject" | "unpriced" => {
            deny_unknown_keys(fields, path, &["policy"])?;
            Ok(if policy == "reject" {
                UnknownModelPolicy::Reject
            } else {
                UnknownModelPolicy::Unpriced
            })
        }
        "fallback" => {
            let allowed: Vec<&str> = std::iter::once("policy")
                .chain(PRICE_KEYS.iter().copied())
                .collect();
            deny_unknown_keys(fields, path, &allowed)?;
            Ok(UnknownModelPolicy::Fallback(read_price(
                node, fields, path,
            )?))
        }
        other => Err(value.error(
            &policy_path,
            format!("unknown policy {other:?}; expected \"reject\", \"unpriced\" or \"fallback\""),
        )),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::error::Error;
    use rust_decimal::Decimal;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    const FULL: &str = r#"
version = "acme-2026-11"
currency = "eur"

[providers.OpenAI.models."gpt-4o"]
input_per_million = "2.50"
output_per_million = 10
cached_input_per_million = 1.25

[providers.openai.aliases]
"chat-default" = "gpt-4o"

[providers.anthropic.models.claude-sonnet-4-5]
input_per_million = "3"
output_per_million = "15"
cached_input_per_million = "0.30"
cache_write_per_million = "3.75"
cache_write_long_per_million = "6"
reasoning_per_million = "15"

[provider_aliases]
azure = "openai"

[unknown_model]
policy = "fallback"
input_per_million = "5"
output_per_million = "15"
"#;

    #[test]
    fn reads_every_part_of_the_shape() {
        let c = PriceCatalog::from_toml_str(FULL).unwrap();
        assert_eq!(c.version(), "acme-2026-11");
        assert_eq!(c.currency(), Currency::EUR);
        let gpt = c.price("azure", "chat-default").unwrap();
        assert_eq!(gpt.input(), d("2.50"));
        assert_eq!(gpt.output(), d("10"));
        assert_eq!(gpt.cached_input(), Some(d("1.25")));
        let sonnet = c.price("anthropic", "claude-sonnet-4-5").unwrap();
        assert_eq!(sonnet.cache_write(), Some(d("3.75")));
        assert_eq!(sonnet.cache_write_long(), Some(d("6")));
        assert_eq!(sonnet.reasoning(), Some(d("15")));
        match c.unknown_model_policy() {
            UnknownModelPolicy::Fallback(p) => assert_eq!(p.input(), d("5")),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn toml_floats_are_exact() {
        let c = PriceCatalog::from_toml_str(
            "[providers.x.models.m]\ninput_per_million = 0.1\noutput_per_million = 0.3\n",
        )
        .unwrap();
        let p = c.price("x", "m").unwrap();
        // Through f64, 0.1 + 0.2 would not be 0.3; from the literal text it is.
        assert_eq!(p.input() + d("0.2"), p.output());
    }

    #[test]
    fn defaults_when_optional_parts_are_absent() {
        let c = PriceCatalog::from_toml_str("").unwrap();
        assert_eq!((c.version(), c.currency()), ("custom", Currency::USD));
        assert_eq!(c.unknown_model_policy(), &UnknownModelPolicy::Reject);
        assert!(c.is_empty());
        let c = PriceCatalog::from_toml_str("[unknown_model]\npolicy = \"unpriced\"\n").unwrap();
        assert_eq!(c.unknown_model_policy(), &UnknownModelPolicy::Unpriced);
    }

    #[test]
    fn errors_name_the_bad_key() {
        let cases: &[(&str, &str)] = &[
            (
                "[providers.openai.models.\"gpt-4o\"]\ninput_per_milion = \"2.5\"\noutput_per_million = \"10\"\n",
                "providers.openai.models.gpt-4o.input_per_milion (line 2): unknown key",
            ),
            (
                "[providers.openai.models.\"gpt-4.1\"]\ninput_per_million = \"2,5\"\noutput_per_million = \"10\"\n",
                "providers.openai.models.\"gpt-4.1\".input_per_million (line 2): \"2,5\" is not an exact decimal number",
            ),
            (
                "[providers.openai.models.m]\ninput_per_million = -1\noutput_per_million = 1\n",
                "providers.openai.models.m.input_per_million (line 2): prices cannot be negative",
            ),
            (
                "[providers.openai.models.m]\ninput_per_million = 1\noutput_per_million = true\n",
                "providers.openai.models.m.output_per_million (line 3): expected a price",
            ),
            (
                "[providers.openai.aliases]\nx = \"missing\"\n",
                "providers.openai.aliases.x (line 2): alias `x` of provider `openai` points at `missing`",
            ),
            (
                "currency = \"dollars\"\n",
                "currency (line 1): currency \"dollars\" is not",
            ),
            (
                "version = 3\n",
                "version (line 1): expected a string, found a number",
            ),
            ("prices = 1\n", "prices (line 1): unknown key"),
            (
                "[unknown_model]\npolicy = \"free\"\n",
                "unknown_model.policy (line 2): unknown policy \"free\"",
            ),
            (
                "[unknown_model]\npolicy = \"fallback\"\ninput_per_million = 1\n",
                "unknown_model (line 1): missing key `output_per_million`",
            ),
            (
                "[unknown_model]\npolicy = \"unpriced\"\ninput_per_million = 1\n",
                "unknown_model.input_per_million (line 3): unknown key",
            ),
            (
                "[providers.openai.models]\nm = 3\n",
                "providers.openai.models.m (line 2): expected a table",
            ),
            ("[providers.openai\n", "not valid TOML"),
        ];
        for (toml, expected) in cases {
            let err = PriceCatalog::from_toml_str(toml).unwrap_err();
            assert!(matches!(err, Error::InvalidCatalog(_)), "{err}");
            assert!(
                err.to_string().contains(expected),
                "{toml}\n=> {err}\nwanted: {expected}"
            );
        }
    }
}
