//! [`PriceCatalog`]: prices by provider and model, name resolution and costing.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::money::Currency;
use crate::usage::TokenUsage;

use super::cost::CostBreakdown;
use super::model_name;
use super::price::ModelPrice;
use super::unknown_model::UnknownModelPolicy;

/// Prices per provider and model, in one currency, with a version recorded in every cost.
///
/// - Provider names are case-insensitive (`OpenAI` is `openai`) and may have aliases
///   ([`provider_alias`](Self::provider_alias)); model names are compared exactly.
/// - [`price`](Self::price) resolves a model name in this order: the exact name, then a model
///   alias, then the same two for the name without a path prefix (`openai/gpt-4o`) and without
///   a snapshot suffix (`gpt-4o-2024-08-06`, `claude-sonnet-4-5-20250929`, `@20250929`,
///   `-latest`).
/// - A model that still has no price is handled by the [`UnknownModelPolicy`]
///   ([`Reject`](UnknownModelPolicy::Reject) unless configured).
///
/// Catalogs come from [`builtin`](Self::builtin), [`from_toml_str`](Self::from_toml_str),
/// [`from_litellm_json`](Self::from_litellm_json), [`from_per_1k_config`](Self::from_per_1k_config)
/// or are built by hand, and combine with [`merge`](Self::merge).
///
/// ```
/// use ai_metering_core::pricing::{ModelPrice, PriceCatalog};
/// use ai_metering_core::{Currency, TokenUsage};
/// use rust_decimal::Decimal;
///
/// let mut catalog = PriceCatalog::empty(Currency::USD).with_version("acme-2026-11");
/// catalog.insert("openai", "gpt-4o-mini", ModelPrice::per_million(Decimal::new(15, 2), Decimal::new(60, 2))?);
/// catalog.alias("openai", "cheap", "gpt-4o-mini")?;
///
/// let cost = catalog.cost("OpenAI", "cheap", &TokenUsage::new(1000, 500)?)?;
/// assert_eq!(cost.total, Decimal::new(45, 5)); // $0.00045
/// assert_eq!(cost.catalog_version, "acme-2026-11");
/// # Ok::<(), ai_metering_core::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct PriceCatalog {
    version: String,
    currency: Currency,
    /// `None` means "not configured here": [`Reject`](UnknownModelPolicy::Reject), and
    /// [`merge`](Self::merge) keeps the other catalog's policy.
    unknown_model: Option<UnknownModelPolicy>,
    /// Keyed by lower-case provider name.
    providers: BTreeMap<String, ProviderPrices>,
    /// Lower-case alias -> lower-case provider name.
    provider_aliases: BTreeMap<String, String>,
}

/// The models and model aliases of one provider.
#[derive(Debug, Clone, Default, PartialEq)]
struct ProviderPrices {
    models: BTreeMap<String, ModelPrice>,
    /// Alias -> model name in `models`.
    aliases: BTreeMap<String, String>,
}

impl ProviderPrices {
    fn get(&self, name: &str) -> Option<&ModelPrice> {
        self.models.get(name).or_else(|| {
            self.aliases
                .get(name)
                .and_then(|target| self.models.get(target))
        })
    }
}

/// The version of a catalog nobody named.
const UNNAMED_VERSION: &str = "custom";

impl PriceCatalog {
    /// A catalog with no prices, in `currency`, version `"custom"`.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use ai_metering_core::Currency;
    ///
    /// let catalog = PriceCatalog::empty(Currency::EUR);
    /// assert!(catalog.is_empty());
    /// assert_eq!(catalog.currency(), Currency::EUR);
    /// assert_eq!(catalog.version(), "custom");
    /// ```
    pub fn empty(currency: Currency) -> Self {
        Self {
            version: UNNAMED_VERSION.to_owned(),
            currency,
            unknown_model: None,
            providers: BTreeMap::new(),
            provider_aliases: BTreeMap::new(),
        }
    }

    /// Names this catalog's prices; the version is copied into every [`CostBreakdown`] so a
    /// recorded cost says which prices produced it.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    ///
    /// let catalog = PriceCatalog::builtin().with_version("prices-2026-12-01");
    /// assert_eq!(catalog.version(), "prices-2026-12-01");
    /// ```
    pub fn with_version(mut self, version: impl Into<String>) -> Self {
        self.version = version.into();
        self
    }

    /// Sets what [`cost`](Self::cost) does with models that have no price.
    ///
    /// ```
    /// use ai_metering_core::pricing::{ModelPrice, PriceCatalog, UnknownModelPolicy};
    /// use ai_metering_core::TokenUsage;
    /// use rust_decimal::Decimal;
    ///
    /// let fallback = ModelPrice::per_million(Decimal::from(10), Decimal::from(30))?;
    /// let catalog = PriceCatalog::builtin()
    ///     .with_unknown_model_policy(UnknownModelPolicy::Fallback(fallback));
    /// let cost = catalog.cost("openai", "brand-new-model", &TokenUsage::new(1_000_000, 0)?)?;
    /// assert_eq!(cost.total, Decimal::from(10));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    pub fn with_unknown_model_policy(mut self, policy: UnknownModelPolicy) -> Self {
        self.unknown_model = Some(policy);
        self
    }

    /// The version recorded in every cost computed with this catalog.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The currency of every price and cost in this catalog.
    pub fn currency(&self) -> Currency {
        self.currency
    }

    /// What happens to models without a price ([`UnknownModelPolicy::Reject`] unless set).
    pub fn unknown_model_policy(&self) -> &UnknownModelPolicy {
        const REJECT: &UnknownModelPolicy = &UnknownModelPolicy::Reject;
        self.unknown_model.as_ref().unwrap_or(REJECT)
    }

    /// Sets the price of `model` of `provider` (case-insensitive), replacing and returning
    /// any previous price. A model alias of the same name is removed: the model wins.
    ///
    /// ```
    /// use ai_metering_core::pricing::{ModelPrice, PriceCatalog};
    /// use ai_metering_core::Currency;
    /// use rust_decimal::Decimal;
    ///
    /// let mut catalog = PriceCatalog::empty(Currency::USD);
    /// let price = ModelPrice::per_million(Decimal::ONE, Decimal::TWO)?;
    /// assert_eq!(catalog.insert("Acme", "acme-large", price.clone()), None);
    /// assert_eq!(catalog.price("acme", "acme-large"), Some(&price));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    pub fn insert(&mut self, provider: &str, model: &str, price: ModelPrice) -> Option<ModelPrice> {
        let key = self.canonical_provider(provider).into_owned();
        let prices = self.providers.entry(key).or_default();
        prices.aliases.remove(model);
        prices.models.insert(model.to_owned(), price)
    }

    /// Makes `alias` another name of `target`, a model of `provider` that has a price.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    ///
    /// let mut catalog = PriceCatalog::builtin();
    /// catalog.alias("openai", "default-chat", "gpt-4o-mini")?;
    /// assert_eq!(catalog.price("openai", "default-chat"), catalog.price("openai", "gpt-4o-mini"));
    /// assert!(catalog.alias("openai", "oops", "no-such-model").is_err());
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCatalog`] when `target` has no price or `alias` is itself a priced
    /// model.
    pub fn alias(&mut self, provider: &str, alias: &str, target: &str) -> Result<()> {
        let key = self.canonical_provider(provider).into_owned();
        let prices = self.providers.get_mut(&key);
        let Some(prices) = prices.filter(|p| p.models.contains_key(target)) else {
            return Err(Error::InvalidCatalog(format!(
                "alias `{alias}` of provider `{key}` points at `{target}`, which has no price"
            )));
        };
        if prices.models.contains_key(alias) {
            return Err(Error::InvalidCatalog(format!(
                "`{alias}` of provider `{key}` has its own price and cannot be an alias"
            )));
        }
        prices.aliases.insert(alias.to_owned(), target.to_owned());
        Ok(())
    }

    /// Makes `alias` another name of the provider `target` (both case-insensitive), such as
    /// `google` for `gemini`.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    ///
    /// let mut catalog = PriceCatalog::builtin();
    /// catalog.provider_alias("my-gateway", "openai")?;
    /// assert!(catalog.price("my-gateway", "gpt-4o").is_some());
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidCatalog`] when `target` has no prices or `alias` has prices of its own.
    pub fn provider_alias(&mut self, alias: &str, target: &str) -> Result<()> {
        let alias = alias.to_ascii_lowercase();
        let target = self.canonical_provider(target).into_owned();
        if !self.providers.contains_key(&target) {
            return Err(Error::InvalidCatalog(format!(
                "provider alias `{alias}` points at `{target}`, which has no prices"
            )));
        }
        if self.providers.contains_key(&alias) {
            return Err(Error::InvalidCatalog(format!(
                "provider `{alias}` has prices of its own and cannot be an alias"
            )));
        }
        self.provider_aliases.insert(alias, target);
        Ok(())
    }

    /// This catalog with `other`'s prices laid over it: `other`'s models, aliases and (when it
    /// sets one) unknown-model policy win. The version becomes `"<self>+<other>"`.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use rust_decimal::Decimal;
    ///
    /// let negotiated = PriceCatalog::from_toml_str(r#"
    ///     version = "acme-contract"
    ///     [providers.openai.models."gpt-4o"]
    ///     input_per_million = "2.00"
    ///     output_per_million = "8.00"
    /// "#)?;
    /// let catalog = PriceCatalog::builtin().merge(negotiated)?;
    /// assert_eq!(catalog.price("openai", "gpt-4o").unwrap().input(), Decimal::new(200, 2));
    /// assert!(catalog.price("anthropic", "claude-sonnet-4-5").is_some()); // kept
    /// assert!(catalog.version().ends_with("+acme-contract"));
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::CurrencyMismatch`] when the catalogs are in different currencies,
    /// [`Error::InvalidCatalog`] when a provider alias of `other` names a provider that has
    /// prices here.
    pub fn merge(mut self, other: PriceCatalog) -> Result<Self> {
        if self.currency != other.currency {
            return Err(Error::CurrencyMismatch {
                left: self.currency.to_string(),
                right: other.currency.to_string(),
            });
        }
        for (provider, theirs) in other.providers {
            // A provider priced by `other` is no longer an alias of another one here.
            self.provider_aliases.remove(&provider);
            let ours = self.providers.entry(provider).or_default();
            for (model, price) in theirs.models {
                ours.aliases.remove(&model);
                ours.models.insert(model, price);
            }
            for (alias, target) in theirs.aliases {
                if ours.models.remove(&alias).is_some() {
                    // Our aliases of the replaced model follow it to its new target.
                    for our_target in ours.aliases.values_mut() {
                        if *our_target == alias {
                            our_target.clone_from(&target);
                        }
                    }
                }
                ours.aliases.insert(alias, target);
            }
        }
        for (alias, target) in other.provider_aliases {
            if self.providers.contains_key(&alias) {
                return Err(Error::InvalidCatalog(format!(
                    "provider alias `{alias}` conflicts with provider `{alias}`, which has prices"
                )));
            }
            self.provider_aliases.insert(alias, target);
        }
        self.version = format!("{}+{}", self.version, other.version);
        if other.unknown_model.is_some() {
            self.unknown_model = other.unknown_model;
        }
        Ok(self)
    }

    /// The price of `model` of `provider`, resolved as the [type docs](Self) describe, or
    /// `None`. The unknown-model policy does not apply here.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    ///
    /// let catalog = PriceCatalog::builtin();
    /// let base = catalog.price("openai", "gpt-4o");
    /// assert!(base.is_some());
    /// assert_eq!(catalog.price("OpenAI", "openai/gpt-4o-2024-08-06"), base);
    /// assert_eq!(catalog.price("openai", "no-such-model"), None);
    /// ```
    pub fn price(&self, provider: &str, model: &str) -> Option<&ModelPrice> {
        let prices = self.provider(provider)?;
        model_name::candidates(model)
            .into_iter()
            .find_map(|name| prices.get(name))
    }

    /// The exact cost of `usage` on `model` of `provider`.
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    /// use ai_metering_core::{TokenCounts, TokenUsage};
    /// use rust_decimal::Decimal;
    ///
    /// let usage = TokenUsage::try_from(TokenCounts {
    ///     input: 1000,
    ///     cached_input: 400,
    ///     output: 500,
    ///     ..TokenCounts::default()
    /// })?;
    /// let cost = PriceCatalog::builtin().cost("openai", "gpt-4o-mini", &usage)?;
    /// assert_eq!(cost.total, Decimal::new(42, 5)); // $0.00042
    /// # Ok::<(), ai_metering_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::UnknownModel`] for a model without a price under
    /// [`UnknownModelPolicy::Reject`]; [`Error::Overflow`] when the exact cost cannot be
    /// represented.
    pub fn cost(&self, provider: &str, model: &str, usage: &TokenUsage) -> Result<CostBreakdown> {
        let price = match self.price(provider, model) {
            Some(price) => price,
            None => match self.unknown_model_policy() {
                UnknownModelPolicy::Reject => {
                    return Err(Error::UnknownModel {
                        provider: provider.to_owned(),
                        model: model.to_owned(),
                    });
                }
                UnknownModelPolicy::Fallback(price) => price,
                UnknownModelPolicy::Unpriced => {
                    return Ok(CostBreakdown::unpriced(self.currency, &self.version));
                }
            },
        };
        CostBreakdown::compute(price, usage, self.currency, &self.version)
    }

    /// Every priced model as `(provider, model, price)`, sorted by provider then model
    /// (aliases are not listed).
    ///
    /// ```
    /// use ai_metering_core::pricing::PriceCatalog;
    ///
    /// let catalog = PriceCatalog::builtin();
    /// assert!(catalog.iter().any(|(provider, model, _)| provider == "anthropic" && model == "claude-haiku-4-5"));
    /// ```
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &ModelPrice)> {
        self.providers.iter().flat_map(|(provider, prices)| {
            prices
                .models
                .iter()
                .map(move |(model, price)| (provider.as_str(), model.as_str(), price))
        })
    }

    /// The number of priced models (aliases not counted).
    pub fn len(&self) -> usize {
        self.providers.values().map(|p| p.models.len()).sum()
    }

    /// Whether no model has a price.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The prices of `provider`, through a provider alias if needed.
    fn provider(&self, provider: &str) -> Option<&ProviderPrices> {
        self.providers
            .get(self.canonical_provider(provider).as_ref())
    }

    /// The lower-case name `provider` is stored under, after provider aliases.
    fn canonical_provider<'a>(&'a self, provider: &'a str) -> Cow<'a, str> {
        let lower = if provider.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(provider.to_ascii_lowercase())
        } else {
            Cow::Borrowed(provider)
        };
        if self.providers.contains_key(lower.as_ref()) {
            return lower;
        }
        match self.provider_aliases.get(lower.as_ref()) {
            Some(target) => Cow::Borrowed(target.as_str()),
            None => lower,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use rust_decimal::Decimal;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn price(input: &str, output: &str) -> ModelPrice {
        ModelPrice::per_million(d(input), d(output)).unwrap()
    }

    fn sample() -> PriceCatalog {
        let mut c = PriceCatalog::empty(Currency::USD).with_version("v1");
        c.insert("openai", "gpt-4o", price("2.5", "10"));
        c.insert("openai", "gpt-4o-2024-05-13", price("5", "15"));
        c.insert("anthropic", "claude-sonnet-4-5", price("3", "15"));
        c
    }

    #[test]
    fn providers_are_case_insensitive_models_are_not() {
        let c = sample();
        assert!(c.price("OPENAI", "gpt-4o").is_some());
        assert!(c.price("OpenAI", "GPT-4o").is_none());
        let mut c = c;
        c.insert("OpenAI", "o3", price("2", "8"));
        assert!(c.price("openai", "o3").is_some());
        assert_eq!(c.iter().filter(|(p, _, _)| *p == "openai").count(), 3);
    }

    #[test]
    fn a_listed_snapshot_beats_its_base_name() {
        let c = sample();
        assert_eq!(
            c.price("openai", "gpt-4o-2024-05-13").unwrap().input(),
            d("5")
        );
        assert_eq!(
            c.price("openai", "gpt-4o-2024-08-06").unwrap().input(),
            d("2.5")
        );
        assert_eq!(
            c.price("anthropic", "claude-sonnet-4-5-20250929")
                .unwrap()
                .input(),
            d("3")
        );
        assert!(c.price("anthropic", "gpt-4o").is_none());
        assert!(c.price("mistral", "gpt-4o").is_none());
    }

    #[test]
    fn aliases_resolve_and_are_checked() {
        let mut c = sample();
        c.alias("openai", "chat-default", "gpt-4o").unwrap();
        assert_eq!(c.price("openai", "chat-default").unwrap().input(), d("2.5"));
        // Aliases also resolve after snapshot and prefix stripping.
        assert_eq!(
            c.price("openai", "proxy/chat-default-latest")
                .unwrap()
                .input(),
            d("2.5")
        );
        let err = c.alias("openai", "x", "missing").unwrap_err();
        assert!(err.to_string().contains("`missing`"), "{err}");
        assert!(c.alias("openai", "gpt-4o-2024-05-13", "gpt-4o").is_err());
        assert!(c.alias("nobody", "x", "gpt-4o").is_err());
        // Inserting a model under an alias's name replaces the alias.
        c.insert("openai", "chat-default", price("1", "1"));
        assert_eq!(c.price("openai", "chat-default").unwrap().input(), d("1"));
    }

    #[test]
    fn provider_aliases() {
        let mut c = sample();
        c.provider_alias("Azure", "OpenAI").unwrap();
        assert!(c.price("azure", "gpt-4o").is_some());
        c.alias("AZURE", "mine", "gpt-4o").unwrap();
        assert!(c.price("openai", "mine").is_some());
        assert!(c.provider_alias("x", "nobody").is_err());
        assert!(c.provider_alias("openai", "anthropic").is_err());
    }

    #[test]
    fn merge_lets_the_other_catalog_win() {
        let mut base = sample();
        base.alias("openai", "old-name", "gpt-4o").unwrap();
        base.alias("openai", "best", "gpt-4o").unwrap();
        let mut over = PriceCatalog::empty(Currency::USD)
            .with_version("v2")
            .with_unknown_model_policy(UnknownModelPolicy::Unpriced);
        over.insert("openai", "gpt-4o", price("2", "8"));
        over.insert("openai", "old-name", price("9", "9")); // replaces an alias
        over.insert("openai", "o3", price("2", "8"));
        over.alias("openai", "gpt-4o-2024-05-13", "o3").unwrap(); // replaces a model
        over.insert("mistral", "mistral-large", price("2", "6"));

        let m = base.merge(over).unwrap();
        assert_eq!(m.version(), "v1+v2");
        assert_eq!(m.unknown_model_policy(), &UnknownModelPolicy::Unpriced);
        assert_eq!(m.price("openai", "gpt-4o").unwrap().input(), d("2"));
        assert_eq!(m.price("openai", "best").unwrap().input(), d("2"));
        assert_eq!(m.price("openai", "old-name").unwrap().input(), d("9"));
        assert_eq!(
            m.price("openai", "gpt-4o-2024-05-13").unwrap().output(),
            d("8")
        );
        assert!(m.price("mistral", "mistral-large").is_some());
        assert!(m.price("anthropic", "claude-sonnet-4-5").is_some());

        // A policy is only overridden when the other catalog sets one.
        let strict = sample().with_unknown_model_policy(UnknownModelPolicy::Unpriced);
        let merged = strict.merge(PriceCatalog::empty(Currency::USD)).unwrap();
        assert_eq!(merged.unknown_model_policy(), &UnknownModelPolicy::Unpriced);
    }

    #[test]
    fn merging_other_currencies_is_an_error() {
        let err = sample()
            .merge(PriceCatalog::empty(Currency::EUR))
            .unwrap_err();
        assert!(matches!(err, Error::CurrencyMismatch { .. }));
    }

    #[test]
    fn unknown_models_under_each_policy() {
        let usage = TokenUsage::new(1_000_000, 1_000_000).unwrap();
        let c = sample();
        assert_eq!(c.unknown_model_policy(), &UnknownModelPolicy::Reject);
        match c.cost("OpenAI", "gpt-9", &usage) {
            Err(Error::UnknownModel { provider, model }) => {
                assert_eq!((provider.as_str(), model.as_str()), ("OpenAI", "gpt-9"));
            }
            other => panic!("expected UnknownModel, got {other:?}"),
        }

        let c = sample().with_unknown_model_policy(UnknownModelPolicy::Unpriced);
        let cost = c.cost("openai", "gpt-9", &usage).unwrap();
        assert!(!cost.priced);
        assert_eq!(cost.total, Decimal::ZERO);
        assert_eq!(cost.catalog_version, "v1");

        let fallback = UnknownModelPolicy::Fallback(price("1", "2"));
        let c = sample().with_unknown_model_policy(fallback);
        let cost = c.cost("nobody", "gpt-9", &usage).unwrap();
        assert!(cost.priced);
        assert_eq!(cost.total, d("3"));
        // Known models keep their own price.
        assert_eq!(c.cost("openai", "gpt-4o", &usage).unwrap().total, d("12.5"));
    }

    #[test]
    fn len_counts_models_not_aliases() {
        let mut c = sample();
        assert_eq!(c.len(), 3);
        c.alias("openai", "a", "gpt-4o").unwrap();
        assert_eq!(c.len(), 3);
        assert!(!c.is_empty());
        assert!(PriceCatalog::empty(Currency::USD).is_empty());
    }
}
