//! Pricing through the public API: the worked example, LiteLLM's price map, catalogs built
//! from configuration, and properties every cost must have.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ai_metering_core::pricing::{CostBreakdown, ModelPrice, PriceCatalog, UnknownModelPolicy};
use ai_metering_core::{Currency, Error, TokenCounts, TokenUsage};
use proptest::prelude::*;
use rust_decimal::Decimal;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn usage(counts: TokenCounts) -> TokenUsage {
    TokenUsage::try_from(counts).unwrap()
}

/// 1000 input tokens of which 400 cached, 500 output tokens.
fn worked_example_usage() -> TokenUsage {
    usage(TokenCounts {
        input: 1000,
        cached_input: 400,
        output: 500,
        ..TokenCounts::default()
    })
}

fn assert_worked_example(cost: &CostBreakdown) {
    assert_eq!(cost.input, d("0.00009"), "600 uncached at $0.15/M");
    assert_eq!(cost.cached_input, d("0.00003"), "400 cached at $0.075/M");
    assert_eq!(cost.output, d("0.0003"), "500 output at $0.60/M");
    assert_eq!(cost.cache_write, Decimal::ZERO);
    assert_eq!(cost.reasoning, Decimal::ZERO);
    assert_eq!(cost.total, d("0.00042"));
    assert_eq!(cost.total.to_string(), "0.00042");
    assert_eq!(cost.currency, Currency::USD);
    assert!(cost.priced);
}

#[test]
fn worked_example_gpt_4o_mini_costs_exactly_0_00042() {
    let mut catalog = PriceCatalog::empty(Currency::USD).with_version("worked-example");
    let price = ModelPrice::per_million(d("0.15"), d("0.60"))
        .unwrap()
        .with_cached_input(d("0.075"))
        .unwrap();
    catalog.insert("openai", "gpt-4o-mini", price);
    let cost = catalog
        .cost("openai", "gpt-4o-mini", &worked_example_usage())
        .unwrap();
    assert_worked_example(&cost);
    assert_eq!(cost.catalog_version, "worked-example");
    assert_eq!(
        cost.total_money().round_to_minor_units().amount,
        Decimal::ZERO
    );
}

#[test]
fn worked_example_with_the_builtin_catalog() {
    let cost = PriceCatalog::builtin()
        .cost("openai", "gpt-4o-mini", &worked_example_usage())
        .unwrap();
    assert_worked_example(&cost);
    assert_eq!(cost.catalog_version, PriceCatalog::BUILTIN_VERSION);
}

#[test]
fn one_gpt_4o_mini_input_token_is_exactly_0_00000015() {
    let cost = PriceCatalog::builtin()
        .cost("openai", "gpt-4o-mini", &TokenUsage::new(1, 0).unwrap())
        .unwrap();
    assert_eq!(cost.total, d("0.00000015"));
    assert_eq!(cost.total.to_string(), "0.00000015");
}

#[test]
fn dated_snapshots_and_prefixes_resolve_in_the_builtin_catalog() {
    let catalog = PriceCatalog::builtin();
    let pairs = [
        ("openai", "gpt-4o-2024-08-06", "gpt-4o"),
        ("openai", "openai/gpt-4o-mini", "gpt-4o-mini"),
        ("openai", "gpt-5-mini-2025-08-07", "gpt-5-mini"),
        (
            "anthropic",
            "claude-sonnet-4-5-20250929",
            "claude-sonnet-4-5",
        ),
        ("anthropic", "claude-3-7-sonnet-latest", "claude-3-7-sonnet"),
        ("Anthropic", "claude-opus-4-0", "claude-opus-4"),
        ("gemini", "models/gemini-2.5-flash", "gemini-2.5-flash"),
        ("google", "gemini-2.0-flash-001", "gemini-2.0-flash"),
    ];
    for (provider, name, base) in pairs {
        let resolved = catalog.price(provider, name);
        assert!(resolved.is_some(), "{provider}/{name}");
        assert_eq!(resolved, catalog.price(provider, base), "{provider}/{name}");
    }
    for (provider, name) in [
        ("openai", "gpt-4o-mini-finetuned"),
        ("openai", "ft:gpt-4o-mini:acme::abc"),
        ("anthropic", "gpt-4o"),
        ("mistral", "mistral-large"),
    ] {
        assert_eq!(catalog.price(provider, name), None, "{provider}/{name}");
    }
}

#[test]
fn unknown_model_under_each_policy() {
    let usage = TokenUsage::new(1000, 1000).unwrap();
    let err = PriceCatalog::builtin()
        .cost("openai", "gpt-unknown", &usage)
        .unwrap_err();
    assert!(matches!(err, Error::UnknownModel { .. }));
    assert_eq!(
        err.to_string(),
        "no price is known for model `gpt-unknown` of provider `openai`"
    );

    let unpriced = PriceCatalog::builtin()
        .with_unknown_model_policy(UnknownModelPolicy::Unpriced)
        .cost("openai", "gpt-unknown", &usage)
        .unwrap();
    assert!(!unpriced.priced);
    assert_eq!(unpriced.total, Decimal::ZERO);

    let fallback = ModelPrice::per_million(d("10"), d("30")).unwrap();
    let cost = PriceCatalog::builtin()
        .with_unknown_model_policy(UnknownModelPolicy::Fallback(fallback))
        .cost("openai", "gpt-unknown", &usage)
        .unwrap();
    assert!(cost.priced);
    assert_eq!(cost.total, d("0.04"));
}

#[test]
fn reasoning_with_its_own_price() {
    let mut catalog = PriceCatalog::empty(Currency::USD);
    let price = ModelPrice::per_million(d("1"), d("4"))
        .unwrap()
        .with_reasoning(d("3.5"))
        .unwrap();
    catalog.insert("acme", "thinker", price);
    let u = usage(TokenCounts {
        input: 0,
        output: 10_000,
        reasoning: 4_000,
        ..TokenCounts::default()
    });
    let cost = catalog.cost("acme", "thinker", &u).unwrap();
    assert_eq!(cost.output, d("0.024")); // 6000 at $4/M
    assert_eq!(cost.reasoning, d("0.014")); // 4000 at $3.5/M
    assert_eq!(cost.total, d("0.038"));
}

#[test]
fn anthropic_one_hour_cache_writes_cost_more_than_five_minute_ones() {
    let catalog = PriceCatalog::builtin();
    let writes = |long: u64| {
        usage(TokenCounts {
            input: 10_000,
            cache_write: 10_000,
            cache_write_long: long,
            ..TokenCounts::default()
        })
    };
    let five_min = catalog
        .cost("anthropic", "claude-haiku-4-5", &writes(0))
        .unwrap();
    let one_hour = catalog
        .cost("anthropic", "claude-haiku-4-5", &writes(10_000))
        .unwrap();
    assert_eq!(five_min.cache_write, d("0.0125")); // 1.25x the $1 input price
    assert_eq!(one_hour.cache_write, d("0.02")); // 2x
    let read = catalog
        .cost(
            "anthropic",
            "claude-haiku-4-5",
            &usage(TokenCounts {
                input: 10_000,
                cached_input: 10_000,
                ..TokenCounts::default()
            }),
        )
        .unwrap();
    assert_eq!(read.cached_input, d("0.001")); // 0.1x
}

#[test]
fn a_config_merged_over_the_builtin_catalog() {
    let overrides = PriceCatalog::from_toml_str(
        r#"
        version = "acme-contract-7"
        [providers.openai.models."gpt-4o-mini"]
        input_per_million = "0.12"
        output_per_million = "0.48"
        [providers.openai.aliases]
        "house-model" = "gpt-4o-mini"
        [unknown_model]
        policy = "unpriced"
        "#,
    )
    .unwrap();
    let catalog = PriceCatalog::builtin().merge(overrides).unwrap();
    assert_eq!(catalog.version(), "builtin-2026-12+acme-contract-7");
    let cost = catalog
        .cost(
            "openai",
            "house-model",
            &TokenUsage::new(1_000_000, 0).unwrap(),
        )
        .unwrap();
    assert_eq!(cost.total, d("0.12"));
    // The override has no cached-input price, so cached tokens are billed at its input price.
    assert_eq!(
        catalog
            .price("openai", "gpt-4o-mini-2024-07-18")
            .unwrap()
            .effective_cached_input(),
        d("0.12")
    );
    assert!(
        !catalog
            .cost("x", "y", &TokenUsage::new(1, 1).unwrap())
            .unwrap()
            .priced
    );
}

#[test]
fn per_1k_config_gpt_4o_mini_is_0_15_per_million() {
    let catalog = PriceCatalog::from_per_1k_toml(
        "[providers.openai.models.\"gpt-4o-mini\"]\ninput_price_per_1k = 0.00015\noutput_price_per_1k = 0.0006\n",
    )
    .unwrap();
    let price = catalog.price("openai", "gpt-4o-mini").unwrap();
    assert_eq!(price.input().to_string(), "0.15");
    assert_eq!(price.output().to_string(), "0.6");
    assert_eq!(
        catalog
            .cost(
                "openai",
                "gpt-4o-mini",
                &TokenUsage::new(1000, 500).unwrap()
            )
            .unwrap()
            .total,
        d("0.00045")
    );
}

/// The LiteLLM subset kept beside the project: `None` (reported) when this checkout does
/// not have it, a failure under CI.
fn litellm_subset(test: &str) -> Option<serde_json::Value> {
    let path = ai_metering_test_env::shared_path(test, "reference/litellm_prices_subset.json")?;
    let text = std::fs::read_to_string(&path).unwrap();
    Some(serde_json::from_str(&text).unwrap())
}

/// The subset wraps LiteLLM entries in `models` and adds `per_million_usd`, its own exact
/// conversion of each per-token price.
#[test]
fn litellm_subset_loads_and_converts_exactly() {
    let Some(subset) = litellm_subset("litellm_subset_loads_and_converts_exactly") else {
        return;
    };
    let models = &subset["models"];
    let catalog = PriceCatalog::from_litellm_value(models).unwrap();
    let entries = models.as_object().unwrap();
    assert_eq!(catalog.len(), entries.len());
    let classes = [
        ("input", "input"),
        ("output", "output"),
        ("cache_read", "cached_input"),
        ("cache_write_5m", "cache_write"),
        ("cache_write_1h", "cache_write_long"),
    ];
    for (key, entry) in entries {
        let provider = entry["litellm_provider"].as_str().unwrap();
        let model = key.strip_prefix(&format!("{provider}/")).unwrap_or(key);
        let price = catalog
            .price(provider, model)
            .unwrap_or_else(|| panic!("{provider}/{model} not loaded"));
        for (subset_name, class) in classes {
            let expected = entry["per_million_usd"][subset_name].as_str().map(d);
            let loaded = match class {
                "input" => Some(price.input()),
                "output" => Some(price.output()),
                "cached_input" => price.cached_input(),
                "cache_write" => price.cache_write(),
                _ => price.cache_write_long(),
            };
            assert_eq!(loaded, expected, "{key} {class}");
        }
    }
}

/// Cross-checks the built-in table with LiteLLM's prices. Differences the built-in table
/// documents (claude-3-haiku's one-hour write) are the only ones allowed.
#[test]
fn builtin_prices_agree_with_the_litellm_subset() {
    let Some(subset) = litellm_subset("builtin_prices_agree_with_the_litellm_subset") else {
        return;
    };
    let litellm = PriceCatalog::from_litellm_value(&subset["models"]).unwrap();
    let builtin = PriceCatalog::builtin();
    for (provider, model, theirs) in litellm.iter() {
        // LiteLLM lists Gemini models both as Gemini API and Vertex AI entries.
        let our_provider = match provider {
            "vertex_ai-language-models" => "gemini",
            other => other,
        };
        let ours = builtin
            .price(our_provider, model)
            .unwrap_or_else(|| panic!("built-in catalog lacks {our_provider}/{model}"));
        assert_eq!(ours.input(), theirs.input(), "{model} input");
        assert_eq!(ours.output(), theirs.output(), "{model} output");
        assert_eq!(ours.cached_input(), theirs.cached_input(), "{model} cached");
        if provider == "anthropic" {
            assert_eq!(ours.cache_write(), theirs.cache_write(), "{model} write");
            if model == "claude-3-haiku-20240307" {
                assert_eq!(theirs.cache_write_long(), Some(d("6")));
                assert_eq!(ours.cache_write_long(), Some(d("0.50")));
            } else {
                assert_eq!(
                    ours.cache_write_long(),
                    theirs.cache_write_long(),
                    "{model} 1h"
                );
            }
        }
    }
}

fn counts() -> impl Strategy<Value = TokenCounts> {
    // Each count at most 5e8, so the sum of two stays within MAX_TOKENS_PER_CALL.
    (0..=500_000_000_u64, 0..=500_000_000_u64).prop_flat_map(|(input, output)| {
        (0..=input, 0..=output).prop_flat_map(move |(cached, reasoning)| {
            (0..=input - cached).prop_flat_map(move |write| {
                (0..=write).prop_map(move |long| TokenCounts {
                    input,
                    cached_input: cached,
                    cache_write: write,
                    cache_write_long: long,
                    output,
                    reasoning,
                })
            })
        })
    })
}

fn price_value() -> impl Strategy<Value = Decimal> {
    (0..=100_000_000_i64, 0..=8_u32).prop_map(|(mantissa, scale)| Decimal::new(mantissa, scale))
}

fn model_price() -> impl Strategy<Value = ModelPrice> {
    (
        price_value(),
        price_value(),
        proptest::option::of(price_value()),
        proptest::option::of(price_value()),
        proptest::option::of(price_value()),
        proptest::option::of(price_value()),
    )
        .prop_map(|(input, output, cached, write, long, reasoning)| {
            let mut price = ModelPrice::per_million(input, output).unwrap();
            if let Some(p) = cached {
                price = price.with_cached_input(p).unwrap();
            }
            if let Some(p) = write {
                price = price.with_cache_write(p).unwrap();
            }
            if let Some(p) = long {
                price = price.with_cache_write_long(p).unwrap();
            }
            if let Some(p) = reasoning {
                price = price.with_reasoning(p).unwrap();
            }
            price
        })
}

fn parts(c: &CostBreakdown) -> [Decimal; 6] {
    [
        c.input,
        c.cached_input,
        c.cache_write,
        c.output,
        c.reasoning,
        c.total,
    ]
}

proptest! {
    #[test]
    fn cost_is_additive_and_never_negative(a in counts(), b in counts(), price in model_price()) {
        let mut catalog = PriceCatalog::empty(Currency::USD);
        catalog.insert("p", "m", price);
        let sum = TokenCounts {
            input: a.input + b.input,
            cached_input: a.cached_input + b.cached_input,
            cache_write: a.cache_write + b.cache_write,
            cache_write_long: a.cache_write_long + b.cache_write_long,
            output: a.output + b.output,
            reasoning: a.reasoning + b.reasoning,
        };
        let cost_a = catalog.cost("p", "m", &usage(a)).unwrap();
        let cost_b = catalog.cost("p", "m", &usage(b)).unwrap();
        let cost_sum = catalog.cost("p", "m", &usage(sum)).unwrap();
        for ((x, y), both) in parts(&cost_a).into_iter().zip(parts(&cost_b)).zip(parts(&cost_sum)) {
            prop_assert_eq!(x + y, both);
            prop_assert!(x >= Decimal::ZERO && y >= Decimal::ZERO);
        }
        let [input, cached, write, output, reasoning, total] = parts(&cost_sum);
        prop_assert_eq!(input + cached + write + output + reasoning, total);
    }

    #[test]
    fn decimal_text_round_trips_through_every_loader(mantissa in 0..=10_000_000_000_i64, scale in 0..=12_u32) {
        let per_million = Decimal::new(mantissa, scale);
        let toml = format!(
            "[providers.p.models.m]\ninput_per_million = {per_million}\noutput_per_million = \"{per_million}\"\n"
        );
        let from_toml = PriceCatalog::from_toml_str(&toml).unwrap();
        let price = from_toml.price("p", "m").unwrap();
        prop_assert_eq!(price.input(), per_million);
        prop_assert_eq!(price.output(), per_million);

        // The same price per token, written in JSON's scientific style.
        let per_token = format!("{mantissa}e-{}", scale + 6);
        let json = format!(
            r#"{{"m": {{"litellm_provider": "p", "input_cost_per_token": {per_token}, "output_cost_per_token": {per_token}}}}}"#
        );
        let from_json = PriceCatalog::from_litellm_json(&json).unwrap();
        prop_assert_eq!(from_json.price("p", "m").unwrap().input(), per_million);
    }
}
