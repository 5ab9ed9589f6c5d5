//! The built-in price list: current OpenAI, Anthropic and Google Gemini models, in US dollars
//! per million tokens.
//!
//! # Where the prices come from
//!
//! Each row says which of these sources it rests on:
//!
//! - **page**: the provider's published API price list (openai.com/api/pricing,
//!   docs.anthropic.com "Pricing", ai.google.dev "Gemini Developer API pricing"), standard
//!   tier, as the author knew it; not re-fetched while writing (no network access);
//! - **litellm**: LiteLLM's `model_prices_and_context_window.json` at commit `00035b69`, read
//!   through the project's reference subset (`shared/reference/litellm_prices_subset.json`);
//!   a test compares this table with that file whenever it is present.
//!
//! "page + litellm" means both agree. Where they disagree, the row says which one is used and
//! why.
//!
//! What the table leaves out is listed on [`PriceCatalog::builtin`].

use rust_decimal::Decimal;

use crate::money::Currency;

use super::catalog::PriceCatalog;
use super::price::ModelPrice;

impl PriceCatalog {
    /// The version of [`builtin`](Self::builtin), recorded in every cost it computes.
    pub const BUILTIN_VERSION: &'static str = "builtin-2026-12";

    /// The built-in catalog: current OpenAI (`openai`), Anthropic (`anthropic`) and Google
    /// Gemini (`gemini`, also reachable as `google`) models in USD, version
    /// [`BUILTIN_VERSION`](Self::BUILTIN_VERSION), rejecting unknown models. Every price rests
    /// on the provider's published price list, LiteLLM's price map, or both; the source file
    /// (`src/pricing/builtin.rs`) says which, row by row, and a test compares the table with
    /// LiteLLM's prices.
    ///
    /// Models (snapshot names such as `gpt-4o-2024-08-06` or `claude-haiku-4-5-20251001`
    /// resolve to these):
    ///
    /// - `openai`: gpt-4o (and its dearer first snapshot gpt-4o-2024-05-13), gpt-4o-mini,
    ///   gpt-4.1, gpt-4.1-mini, gpt-4.1-nano, gpt-4-turbo, o1, o1-mini, o3, o3-mini, o4-mini,
    ///   gpt-5, gpt-5-mini, gpt-5-nano, gpt-5.1, gpt-5.2; the embedding models
    ///   text-embedding-3-small, text-embedding-3-large and text-embedding-ada-002 (input
    ///   only);
    /// - `anthropic`: claude-opus-4-7, -4-6, -4-5, -4-1, -4 (alias -4-0), claude-sonnet-4-6,
    ///   -4-5, -4 (alias -4-0), claude-haiku-4-5, claude-3-7-sonnet, claude-3-5-sonnet,
    ///   claude-3-5-haiku, claude-3-opus, claude-3-haiku;
    /// - `gemini`: gemini-2.5-pro, gemini-2.5-flash, gemini-2.5-flash-lite, gemini-2.0-flash
    ///   (alias -001), gemini-2.0-flash-lite (alias -001).
    ///
    /// Not modelled:
    ///
    /// - Long-context tiers: Gemini 2.5 Pro and Claude Sonnet 4 / 4.5 charge more for prompts
    ///   above 200k tokens; the table holds the standard (up to 200k) prices, so such calls are
    ///   under-priced. Override them with a merged catalog if you serve long prompts.
    /// - Batch, flex and priority tiers, audio and image tokens, Gemini cache storage per hour.
    /// - OpenAI publishes no cache-write price, so OpenAI cache writes are billed at the input
    ///   price (the [`ModelPrice`] default).
    /// - Anthropic cache writes: five-minute writes cost 1.25x input, one-hour writes 2x input,
    ///   cache reads 0.1x input (Claude 3 Haiku rounds to $0.30 / $0.50 / $0.03). The values are
    ///   written out, not computed, and a test checks the ratios.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use ai_metering_core::Currency;
    /// use rust_decimal::Decimal;
    ///
    /// let catalog = PriceCatalog::builtin();
    /// assert_eq!(catalog.currency(), Currency::USD);
    /// assert_eq!(catalog.version(), "builtin-2026-12");
    /// let sonnet = catalog.price("anthropic", "claude-sonnet-4-5-20250929").unwrap();
    /// assert_eq!(sonnet.cache_write_long(), Some(Decimal::from(6)));
    /// assert!(catalog.price("google", "gemini-2.5-flash").is_some());
    /// ```
    pub fn builtin() -> Self {
        let mut catalog = PriceCatalog::empty(Currency::USD).with_version(Self::BUILTIN_VERSION);
        for (provider, rows) in [
            ("openai", OPENAI),
            ("anthropic", ANTHROPIC),
            ("gemini", GEMINI),
        ] {
            for row in rows {
                catalog.insert(provider, row.model, row.price());
            }
        }
        // Every target below is a model of the table above and no alias is a model name; the
        // tests build this catalog, so these calls cannot fail.
        for (provider, alias, target) in MODEL_ALIASES {
            let added = catalog.alias(provider, alias, target);
            debug_assert!(added.is_ok(), "{added:?}");
        }
        let added = catalog.provider_alias("google", "gemini");
        debug_assert!(added.is_ok(), "{added:?}");
        catalog
    }
}

/// OpenAI models. No cache-write prices (see the module docs).
const OPENAI: &[Row] = &[
    // page + litellm
    Row::new("gpt-4o", usd("2.50"), usd("10.00")).cached(usd("1.25")),
    // page: the first gpt-4o snapshot kept its launch price and had no cached-input discount;
    // listed so it does not resolve to `gpt-4o`.
    Row::new("gpt-4o-2024-05-13", usd("5.00"), usd("15.00")),
    // page + litellm
    Row::new("gpt-4o-mini", usd("0.15"), usd("0.60")).cached(usd("0.075")),
    // page + litellm
    Row::new("gpt-4.1", usd("2.00"), usd("8.00")).cached(usd("0.50")),
    // page + litellm
    Row::new("gpt-4.1-mini", usd("0.40"), usd("1.60")).cached(usd("0.10")),
    // page
    Row::new("gpt-4.1-nano", usd("0.10"), usd("0.40")).cached(usd("0.025")),
    // page
    Row::new("gpt-4-turbo", usd("10.00"), usd("30.00")),
    // page
    Row::new("o1", usd("15.00"), usd("60.00")).cached(usd("7.50")),
    // page
    Row::new("o1-mini", usd("1.10"), usd("4.40")).cached(usd("0.55")),
    // page + litellm (the price after OpenAI's June 2025 reduction)
    Row::new("o3", usd("2.00"), usd("8.00")).cached(usd("0.50")),
    // page
    Row::new("o3-mini", usd("1.10"), usd("4.40")).cached(usd("0.55")),
    // page + litellm
    Row::new("o4-mini", usd("1.10"), usd("4.40")).cached(usd("0.275")),
    // page + litellm
    Row::new("gpt-5", usd("1.25"), usd("10.00")).cached(usd("0.125")),
    // page + litellm
    Row::new("gpt-5-mini", usd("0.25"), usd("2.00")).cached(usd("0.025")),
    // page + litellm
    Row::new("gpt-5-nano", usd("0.05"), usd("0.40")).cached(usd("0.005")),
    // page + litellm
    Row::new("gpt-5.1", usd("1.25"), usd("10.00")).cached(usd("0.125")),
    // litellm
    Row::new("gpt-5.2", usd("1.75"), usd("14.00")).cached(usd("0.175")),
    // page (embeddings have no output; the reference subset of LiteLLM's map holds no
    // embedding model, and its loader skips them)
    Row::new("text-embedding-3-small", usd("0.02"), usd("0")),
    // page
    Row::new("text-embedding-3-large", usd("0.13"), usd("0")),
    // page
    Row::new("text-embedding-ada-002", usd("0.10"), usd("0")),
];

/// Anthropic models: input, output, cache read, five-minute write, one-hour write.
const ANTHROPIC: &[Row] = &[
    // litellm
    claude("claude-opus-4-7", "5", "25", "0.50", "6.25", "10"),
    // page
    claude("claude-opus-4-6", "5", "25", "0.50", "6.25", "10"),
    // page + litellm
    claude("claude-opus-4-5", "5", "25", "0.50", "6.25", "10"),
    // page + litellm
    claude("claude-opus-4-1", "15", "75", "1.50", "18.75", "30"),
    // page (claude-opus-4-20250514)
    claude("claude-opus-4", "15", "75", "1.50", "18.75", "30"),
    // litellm
    claude("claude-sonnet-4-6", "3", "15", "0.30", "3.75", "6"),
    // page + litellm
    claude("claude-sonnet-4-5", "3", "15", "0.30", "3.75", "6"),
    // page + litellm (claude-sonnet-4-20250514)
    claude("claude-sonnet-4", "3", "15", "0.30", "3.75", "6"),
    // page + litellm
    claude("claude-haiku-4-5", "1", "5", "0.10", "1.25", "2"),
    // page + litellm (claude-3-7-sonnet-20250219)
    claude("claude-3-7-sonnet", "3", "15", "0.30", "3.75", "6"),
    // page. Not in litellm at 00035b69.
    claude("claude-3-5-sonnet", "3", "15", "0.30", "3.75", "6"),
    // page. Not in litellm at 00035b69.
    claude("claude-3-5-haiku", "0.80", "4", "0.08", "1", "1.60"),
    // page. litellm's one-hour write (6e-06)
    // contradicts its own five-minute write (1.875e-05); the page's 2x input is used.
    claude("claude-3-opus", "15", "75", "1.50", "18.75", "30"),
    // page + litellm, except the one-hour write: litellm lists 6e-06 ($6, 24x input, a value
    // copied from Sonnet); the page's $0.50 (2x input) is used.
    claude("claude-3-haiku", "0.25", "1.25", "0.03", "0.30", "0.50"),
];

/// Google Gemini models (Gemini Developer API, paid tier, text/image/video input, prompts up
/// to 200k tokens). Thinking tokens are billed as output, as Google does.
const GEMINI: &[Row] = &[
    // page + litellm (litellm lists it under vertex_ai; the Gemini API price is the same)
    Row::new("gemini-2.5-pro", usd("1.25"), usd("10.00")).cached(usd("0.125")),
    // page + litellm
    Row::new("gemini-2.5-flash", usd("0.30"), usd("2.50")).cached(usd("0.03")),
    // page + litellm
    Row::new("gemini-2.5-flash-lite", usd("0.10"), usd("0.40")).cached(usd("0.01")),
    // page + litellm
    Row::new("gemini-2.0-flash", usd("0.10"), usd("0.40")).cached(usd("0.025")),
    // page
    Row::new("gemini-2.0-flash-lite", usd("0.075"), usd("0.30")),
];

/// Other names of the models above that snapshot stripping does not cover.
const MODEL_ALIASES: &[(&str, &str, &str)] = &[
    ("anthropic", "claude-opus-4-0", "claude-opus-4"),
    ("anthropic", "claude-sonnet-4-0", "claude-sonnet-4"),
    ("gemini", "gemini-2.0-flash-001", "gemini-2.0-flash"),
    (
        "gemini",
        "gemini-2.0-flash-lite-001",
        "gemini-2.0-flash-lite",
    ),
];

/// One row of the table.
#[derive(Debug, Clone, Copy)]
struct Row {
    model: &'static str,
    input: Decimal,
    output: Decimal,
    cached_input: Option<Decimal>,
    cache_write: Option<Decimal>,
    cache_write_long: Option<Decimal>,
}

impl Row {
    const fn new(model: &'static str, input: Decimal, output: Decimal) -> Self {
        Self {
            model,
            input,
            output,
            cached_input: None,
            cache_write: None,
            cache_write_long: None,
        }
    }

    const fn cached(self, price: Decimal) -> Self {
        Self {
            cached_input: Some(price),
            ..self
        }
    }

    fn price(&self) -> ModelPrice {
        // `usd` literals cannot carry a sign, so every price is non-negative.
        ModelPrice::from_trusted_parts(
            self.input,
            self.output,
            self.cached_input,
            self.cache_write,
            self.cache_write_long,
        )
    }
}

/// An Anthropic row: input, output, cache read, five-minute and one-hour cache write.
const fn claude(
    model: &'static str,
    input: &str,
    output: &str,
    cache_read: &str,
    write_5m: &str,
    write_1h: &str,
) -> Row {
    Row {
        model,
        input: usd(input),
        output: usd(output),
        cached_input: Some(usd(cache_read)),
        cache_write: Some(usd(write_5m)),
        cache_write_long: Some(usd(write_1h)),
    }
}

/// A dollar amount written as digits with an optional decimal point ("2.50").
///
/// Only ever evaluated in the `const` tables above, so a malformed literal stops the build
/// rather than panicking at run time.
const fn usd(text: &str) -> Decimal {
    let bytes = text.as_bytes();
    let mut mantissa: i64 = 0;
    let mut scale: u32 = 0;
    let mut seen_point = false;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'.' && !seen_point {
            seen_point = true;
        } else if b.is_ascii_digit() {
            mantissa = mantissa * 10 + (b - b'0') as i64;
            if seen_point {
                scale += 1;
            }
        } else {
            panic!("a built-in price is not written as digits with an optional point");
        }
        i += 1;
    }
    if scale > Decimal::MAX_SCALE {
        panic!("a built-in price has too many decimal places");
    }
    // The mantissa is a non-negative i64, so it fits the low 64 of Decimal's 96 bits.
    Decimal::from_parts(mantissa as u32, (mantissa >> 32) as u32, 0, false, scale)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::{TokenCounts, TokenUsage};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn every_row_and_alias_is_in_the_catalog() {
        let catalog = PriceCatalog::builtin();
        assert_eq!(catalog.len(), OPENAI.len() + ANTHROPIC.len() + GEMINI.len());
        for (provider, alias, target) in MODEL_ALIASES {
            assert_eq!(
                catalog.price(provider, alias),
                catalog.price(provider, target),
                "{alias}"
            );
            assert!(catalog.price(provider, alias).is_some(), "{alias}");
        }
        assert!(catalog.price("google", "gemini-2.0-flash-001").is_some());
    }

    #[test]
    fn the_literal_parser_reads_what_is_written() {
        assert_eq!(usd("2.50"), d("2.50"));
        assert_eq!(usd("0.075"), d("0.075"));
        assert_eq!(usd("30"), d("30"));
    }

    #[test]
    fn anthropic_cache_prices_follow_the_published_multipliers() {
        for row in ANTHROPIC {
            let price = row.price();
            let input = price.input();
            let write = price.cache_write().unwrap();
            let long = price.cache_write_long().unwrap();
            let read = price.cached_input().unwrap();
            if row.model == "claude-3-haiku" {
                // Claude 3 Haiku's published prices are rounded to the cent.
                assert_eq!((write, long, read), (d("0.30"), d("0.50"), d("0.03")));
                continue;
            }
            assert_eq!(write, input * d("1.25"), "{}", row.model);
            assert_eq!(long, input * d("2"), "{}", row.model);
            assert_eq!(read, input * d("0.1"), "{}", row.model);
        }
    }

    #[test]
    fn cached_input_never_costs_more_than_input() {
        for (provider, model, price) in PriceCatalog::builtin().iter() {
            assert!(
                price.effective_cached_input() <= price.input(),
                "{provider}/{model}"
            );
            assert!(price.input() > Decimal::ZERO, "{provider}/{model}");
            // Embedding models produce no output tokens.
            assert!(
                price.output() > Decimal::ZERO || model.starts_with("text-embedding-"),
                "{provider}/{model}"
            );
        }
    }

    #[test]
    fn anthropic_five_minute_and_one_hour_writes() {
        let catalog = PriceCatalog::builtin();
        let usage = TokenUsage::try_from(TokenCounts {
            input: 3_000_000,
            cache_write: 3_000_000,
            cache_write_long: 1_000_000,
            ..TokenCounts::default()
        })
        .unwrap();
        let cost = catalog
            .cost("anthropic", "claude-sonnet-4-5-20250929", &usage)
            .unwrap();
        // 2M five-minute writes at $3.75 plus 1M one-hour writes at $6.
        assert_eq!(cost.cache_write, d("13.5"));
        assert_eq!(cost.input, Decimal::ZERO);
        assert_eq!(cost.total, d("13.5"));
    }

    #[test]
    fn the_first_gpt_4o_snapshot_keeps_its_own_price() {
        let catalog = PriceCatalog::builtin();
        let old = catalog.price("openai", "gpt-4o-2024-05-13").unwrap();
        let new = catalog.price("openai", "gpt-4o-2024-11-20").unwrap();
        assert_eq!((old.input(), new.input()), (d("5"), d("2.5")));
    }
}
