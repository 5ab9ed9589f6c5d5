//! [`PriceCatalog::from_litellm_json`]: LiteLLM's public price map (the fields read are
//! documented on that method).

use std::collections::BTreeMap;

use rust_decimal::Decimal;

use crate::error::{Error, Result};
use crate::money::Currency;

use super::catalog::PriceCatalog;
use super::exact;
use super::price::ModelPrice;
use super::source_tree::{Kind, Node, Path, reason};

/// The `mode`s whose entries are priced per token of a conversation.
const CHAT_MODES: &[&str] = &["chat", "completion", "responses"];

impl PriceCatalog {
    /// The version of catalogs read from LiteLLM's price map.
    pub const LITELLM_VERSION: &'static str = "litellm";

    /// Reads LiteLLM's `model_prices_and_context_window.json`, in USD, version
    /// [`LITELLM_VERSION`](Self::LITELLM_VERSION).
    ///
    /// That file is one JSON object keyed by model name; each entry gives USD prices **per token**
    /// as JSON numbers, and `litellm_provider`. The fields read are:
    ///
    /// | LiteLLM field | [`ModelPrice`] class |
    /// |---|---|
    /// | `input_cost_per_token` | input (required) |
    /// | `output_cost_per_token` | output (required) |
    /// | `cache_read_input_token_cost` | cached input |
    /// | `cache_creation_input_token_cost` | cache write |
    /// | `cache_creation_input_token_cost_above_1hr` | long (one hour) cache write |
    /// | `output_cost_per_reasoning_token` | reasoning |
    ///
    /// Per-token prices become per-million prices exactly: each number is read from its shortest
    /// decimal text (`1.5e-07`) and its decimal point moved six places (0.15), with no binary
    /// float arithmetic. Tiered fields (`..._above_200k_tokens`), batch and priority prices, audio
    /// and image prices are not read.
    ///
    /// Skipped without error: the `sample_spec` entry, entries whose `mode` is set and is not
    /// `chat`, `completion` or `responses` (embeddings, images, audio...), entries without both
    /// an input and an output price or without `litellm_provider`, and values that are not
    /// objects. A price that is present but not a non-negative number is an error naming the
    /// model and field: a wrong price is worse than a missing one.
    ///
    /// Provider names are `litellm_provider` in lower case (`openai`, `anthropic`, `gemini`,
    /// `vertex_ai-language-models`...); a key that starts with `<litellm_provider>/` is stored
    /// without that prefix (`gemini/gemini-2.5-flash` is model `gemini-2.5-flash` of `gemini`).
    /// When two keys give the same provider and model, the key written without the prefix wins.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use rust_decimal::Decimal;
    ///
    /// let catalog = PriceCatalog::from_litellm_json(r#"{
    ///     "sample_spec": { "input_cost_per_token": 0.0 },
    ///     "gpt-4o-mini": {
    ///         "litellm_provider": "openai", "mode": "chat",
    ///         "input_cost_per_token": 1.5e-07, "output_cost_per_token": 6e-07,
    ///         "cache_read_input_token_cost": 7.5e-08
    ///     },
    ///     "text-embedding-3-small": {
    ///         "litellm_provider": "openai", "mode": "embedding",
    ///         "input_cost_per_token": 2e-08, "output_cost_per_token": 0.0
    ///     }
    /// }"#)?;
    /// let mini = catalog.price("openai", "gpt-4o-mini").unwrap();
    /// assert_eq!(mini.input(), Decimal::new(15, 2)); // exactly $0.15 per million
    /// assert_eq!(mini.cached_input(), Some(Decimal::new(75, 3)));
    /// assert_eq!(catalog.len(), 1); // the embedding model is skipped
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCatalog`] when the text is not a JSON object, a chat model's price is
    /// not a non-negative number, or no chat model has a price at all.
    pub fn from_litellm_json(text: &str) -> Result<Self> {
        from_tree(&Node::from_json_str(text)?)
    }

    /// Reads LiteLLM's price map from an already parsed JSON value; numbers are taken from
    /// their shortest decimal text, as in [`from_litellm_json`](Self::from_litellm_json).
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    ///
    /// let map = serde_json::json!({ "claude-haiku-4-5": {
    ///     "litellm_provider": "anthropic", "mode": "chat",
    ///     "input_cost_per_token": 1e-06, "output_cost_per_token": 5e-06,
    ///     "cache_creation_input_token_cost": 1.25e-06,
    ///     "cache_creation_input_token_cost_above_1hr": 2e-06
    /// }});
    /// let catalog = PriceCatalog::from_litellm_value(&map)?;
    /// let haiku = catalog.price("anthropic", "claude-haiku-4-5-20251001").unwrap();
    /// assert_eq!(haiku.cache_write_long().unwrap().to_string(), "2");
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// As [`from_litellm_json`](Self::from_litellm_json).
    pub fn from_litellm_value(value: &serde_json::Value) -> Result<Self> {
        from_tree(&Node::from_json(value))
    }
}

/// One usable entry: its price, and whether its key carried the provider prefix.
struct Entry {
    price: ModelPrice,
    prefixed: bool,
}

fn from_tree(root: &Node) -> Result<PriceCatalog> {
    let path = Path::root();
    let mut found: BTreeMap<(String, String), Entry> = BTreeMap::new();
    let mut skipped = 0_usize;
    for (key, node) in root.table(&path)? {
        let Some((provider, model, prefixed, price)) = read_entry(key, node, &path.child(key))?
        else {
            skipped += 1;
            continue;
        };
        let slot = (provider, model);
        let keep_existing = found
            .get(&slot)
            .is_some_and(|existing| prefixed || !existing.prefixed);
        if keep_existing {
            skipped += 1;
        } else {
            found.insert(slot, Entry { price, prefixed });
        }
    }
    if found.is_empty() {
        return Err(Error::InvalidCatalog(
            "the LiteLLM price map has no chat model with an input and an output price \
             (expected an object of model entries with input_cost_per_token, \
             output_cost_per_token and litellm_provider)"
                .into(),
        ));
    }
    tracing::debug!(models = found.len(), skipped, "read LiteLLM price map");
    let mut catalog =
        PriceCatalog::empty(Currency::USD).with_version(PriceCatalog::LITELLM_VERSION);
    for ((provider, model), entry) in found {
        catalog.insert(&provider, &model, entry.price);
    }
    Ok(catalog)
}

/// The provider, model name, whether the key had the provider prefix, and price of one
/// entry; `None` for entries that are skipped.
fn read_entry(
    key: &str,
    node: &Node,
    path: &Path,
) -> Result<Option<(String, String, bool, ModelPrice)>> {
    if key == "sample_spec" {
        return Ok(None);
    }
    let Kind::Table(fields) = &node.kind else {
        return Ok(None);
    };
    if let Some(Kind::Str(mode)) = fields.get("mode").map(|m| &m.kind)
        && !CHAT_MODES.contains(&mode.as_str())
    {
        return Ok(None);
    }
    let Some(Kind::Str(provider)) = fields.get("litellm_provider").map(|p| &p.kind) else {
        return Ok(None);
    };
    let provider = provider.to_ascii_lowercase();
    let per_million = |field: &str| -> Result<Option<Decimal>> {
        match fields.get(field) {
            None => Ok(None),
            Some(value) if matches!(value.kind, Kind::Null) => Ok(None),
            Some(value) => {
                let at = path.child(field);
                let per_token = value.price(&at)?;
                exact::times_power_of_ten(per_token, 6)
                    .map(Some)
                    .map_err(|err| value.error(&at, reason(err)))
            }
        }
    };
    let (Some(input), Some(output)) = (
        per_million("input_cost_per_token")?,
        per_million("output_cost_per_token")?,
    ) else {
        return Ok(None);
    };
    let mut price = ModelPrice::per_million(input, output)?;
    if let Some(p) = per_million("cache_read_input_token_cost")? {
        price = price.with_cached_input(p)?;
    }
    if let Some(p) = per_million("cache_creation_input_token_cost")? {
        price = price.with_cache_write(p)?;
    }
    if let Some(p) = per_million("cache_creation_input_token_cost_above_1hr")? {
        price = price.with_cache_write_long(p)?;
    }
    if let Some(p) = per_million("output_cost_per_reasoning_token")? {
        price = price.with_reasoning(p)?;
    }
    let (model, prefixed) = match key
        .get(..provider.len())
        .filter(|head| head.eq_ignore_ascii_case(&provider))
        .and_then(|_| key.get(provider.len()..))
        .and_then(|rest| rest.strip_prefix('/'))
    {
        Some(model) if !model.is_empty() => (model.to_owned(), true),
        _ => (key.to_owned(), false),
    };
    Ok(Some((provider, model, prefixed, price)))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{TokenCounts, TokenUsage};
    use serde_json::json;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    const MAP: &str = r#"{
        "sample_spec": {
            "input_cost_per_token": 0.0, "output_cost_per_token": 0.0,
            "litellm_provider": "one of https://docs.litellm.ai/docs/providers",
            "mode": "one of: chat, embedding, completion, image_generation, audio_transcription"
        },
        "gpt-4o": {
            "input_cost_per_token": 2.5e-06, "output_cost_per_token": 1e-05,
            "cache_read_input_token_cost": 1.25e-06,
            "litellm_provider": "openai", "mode": "chat", "supports_vision": true
        },
        "o3": {
            "input_cost_per_token": 2e-06, "output_cost_per_token": 8e-06,
            "output_cost_per_reasoning_token": 8e-06,
            "litellm_provider": "openai", "mode": "responses"
        },
        "claude-sonnet-4-5": {
            "input_cost_per_token": 3e-06, "output_cost_per_token": 1.5e-05,
            "cache_read_input_token_cost": 3e-07,
            "cache_creation_input_token_cost": 3.75e-06,
            "cache_creation_input_token_cost_above_1hr": 6e-06,
            "input_cost_per_token_above_200k_tokens": 6e-06,
            "litellm_provider": "anthropic", "mode": "chat"
        },
        "gemini/gemini-2.5-flash-lite": {
            "input_cost_per_token": 1e-07, "output_cost_per_token": 4e-07,
            "cache_read_input_token_cost": 1e-08,
            "litellm_provider": "gemini", "mode": "chat"
        },
        "openai/gpt-4o": {
            "input_cost_per_token": 9e-06, "output_cost_per_token": 9e-06,
            "litellm_provider": "openai", "mode": "chat"
        },
        "text-embedding-3-large": {
            "input_cost_per_token": 1.3e-07, "output_cost_per_token": 0.0,
            "litellm_provider": "openai", "mode": "embedding"
        },
        "dall-e-3": { "litellm_provider": "openai", "mode": "image_generation", "output_cost_per_image": 0.04 },
        "no-provider": { "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06 },
        "null-cache": {
            "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
            "cache_read_input_token_cost": null, "litellm_provider": "openai"
        }
    }"#;

    #[test]
    fn reads_chat_entries_exactly_and_skips_the_rest() {
        let c = PriceCatalog::from_litellm_json(MAP).unwrap();
        assert_eq!(c.version(), "litellm");
        assert_eq!(c.currency(), Currency::USD);
        let names: Vec<_> = c.iter().map(|(p, m, _)| format!("{p}/{m}")).collect();
        assert_eq!(
            names,
            [
                "anthropic/claude-sonnet-4-5",
                "gemini/gemini-2.5-flash-lite",
                "openai/gpt-4o",
                "openai/null-cache",
                "openai/o3"
            ]
        );
        let gpt = c.price("openai", "gpt-4o").unwrap();
        // The unprefixed key wins over "openai/gpt-4o".
        assert_eq!((gpt.input(), gpt.output()), (d("2.5"), d("10")));
        assert_eq!(gpt.cached_input(), Some(d("1.25")));
        let sonnet = c.price("anthropic", "claude-sonnet-4-5").unwrap();
        assert_eq!(sonnet.cache_write(), Some(d("3.75")));
        assert_eq!(sonnet.cache_write_long(), Some(d("6")));
        assert_eq!(sonnet.input(), d("3")); // the above-200k tier is not read
        assert_eq!(c.price("openai", "o3").unwrap().reasoning(), Some(d("8")));
        let lite = c.price("gemini", "gemini-2.5-flash-lite").unwrap();
        assert_eq!(lite.cached_input().unwrap().to_string(), "0.01");
        assert_eq!(
            c.price("openai", "null-cache").unwrap().cached_input(),
            None
        );
    }

    #[test]
    fn per_token_prices_become_exact_per_million_costs() {
        let c = PriceCatalog::from_litellm_json(MAP).unwrap();
        let usage = TokenUsage::try_from(TokenCounts {
            input: 1,
            ..TokenCounts::default()
        })
        .unwrap();
        let cost = c.cost("gemini", "gemini-2.5-flash-lite", &usage).unwrap();
        assert_eq!(cost.total.to_string(), "0.0000001");
    }

    #[test]
    fn bad_prices_are_errors_naming_model_and_field() {
        let bad = json!({"gpt-4.5": {
            "litellm_provider": "openai", "mode": "chat",
            "input_cost_per_token": "cheap", "output_cost_per_token": 1e-06
        }});
        let err = PriceCatalog::from_litellm_value(&bad).unwrap_err();
        assert!(
            err.to_string().contains("\"gpt-4.5\".input_cost_per_token"),
            "{err}"
        );
        let negative = json!({"m": {
            "litellm_provider": "openai",
            "input_cost_per_token": 1e-06, "output_cost_per_token": -1e-06
        }});
        let err = PriceCatalog::from_litellm_value(&negative).unwrap_err();
        assert!(err.to_string().contains("m.output_cost_per_token"), "{err}");
        // A bad value in an entry that is skipped anyway does not matter.
        let skipped = json!({
            "e": {"litellm_provider": "openai", "mode": "embedding", "input_cost_per_token": "x"},
            "m": {"litellm_provider": "openai", "input_cost_per_token": 0, "output_cost_per_token": 0}
        });
        assert_eq!(PriceCatalog::from_litellm_value(&skipped).unwrap().len(), 1);
    }

    #[test]
    fn a_map_without_chat_prices_is_an_error() {
        for text in [
            r#"{}"#,
            r#"{"models": {"gpt-4o": {}}}"#,
            r#"[]"#,
            "not json",
        ] {
            assert!(
                matches!(
                    PriceCatalog::from_litellm_json(text),
                    Err(Error::InvalidCatalog(_))
                ),
                "{text}"
            );
        }
    }
}
