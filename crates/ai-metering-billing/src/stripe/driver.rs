//! [`StripeBillingDriver`]: reports overage to Stripe's HTTP API.

use std::fmt;
use std::time::Duration;

use ai_metering_core::store::OverageRecord;
use ai_metering_core::{Currency, Money, RateTable};
use reqwest::header::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::driver::{BillingDriver, ExternalId, ReportOutcome};
use crate::error::BillingError;
use crate::stripe::customer::CustomerLookup;

/// Stripe's API, the default base URL.
pub const STRIPE_API_BASE: &str = "https://api.stripe.com";

/// How overage is reported to Stripe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StripeMode {
    /// As Billing Meter events (`POST /v1/billing/meter_events`), for a usage-based price on
    /// the customer's subscription. Stripe deduplicates events by `identifier`.
    MeterEvents {
        /// The meter's `event_name`.
        event_name: String,
        /// What the event's value is.
        value: MeterValue,
    },
    /// As invoice items (`POST /v1/invoiceitems`) picked up by the customer's next invoice;
    /// the amount in minor units, rounded half away from zero.
    InvoiceItems,
}

impl StripeMode {
    /// Meter events named `event_name` whose value is the overage's tokens.
    ///
    /// ```
    /// use ai_metering_billing::stripe::{MeterValue, StripeMode};
    /// let mode = StripeMode::meter_events("ai_tokens");
    /// assert!(matches!(mode, StripeMode::MeterEvents { value: MeterValue::Tokens, .. }));
    /// ```
    pub fn meter_events(event_name: impl Into<String>) -> Self {
        Self::MeterEvents {
            event_name: event_name.into(),
            value: MeterValue::Tokens,
        }
    }
}

/// The value of a meter event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum MeterValue {
    /// The overage's tokens (for a price per token or per 1k tokens set up in Stripe).
    #[default]
    Tokens,
    /// The overage's amount in the currency's minor units (cents; yen for JPY), rounded half
    /// away from zero (for a price of one minor unit per unit).
    MinorUnits,
}

/// Form fields, in order.
type Form = Vec<(String, String)>;

/// The secret key, never printed.
#[derive(Clone)]
struct SecretKey(String);

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(***)")
    }
}

/// Reports overage to Stripe over HTTP (reqwest with rustls).
///
/// Every request carries an identifier stable per overage row (`ai-overage-{id}` by
/// default), as the meter event's `identifier` and as the `Idempotency-Key` header, so a
/// retried report (after a timeout or a 500) is billed once: Stripe replays the first
/// result. Stripe keeps idempotency keys and meter identifiers for at least 24 hours; a row
/// that stays unsynced longer (its report succeeded but marking it synced failed, and no
/// sync ran for a day) could be billed again, so run the sync regularly.
///
/// ```
/// use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
/// use ai_metering_core::Billable;
///
/// let driver = StripeBillingDriver::builder(
///     "sk_test_123",
///     StripeMode::meter_events("ai_tokens"),
///     |b: &Billable| Some(format!("cus_{}", b.id)),
/// )
/// .build()
/// .unwrap();
/// # drop(driver);
/// ```
#[derive(Debug)]
pub struct StripeBillingDriver<C> {
    http: reqwest::Client,
    secret: SecretKey,
    base_url: String,
    mode: StripeMode,
    customers: C,
    identifier_prefix: String,
    stripe_version: Option<String>,
    conversion: Option<(Currency, RateTable)>,
    customer_payload_key: String,
    value_payload_key: String,
}

/// Builds a [`StripeBillingDriver`].
#[derive(Debug)]
pub struct StripeDriverBuilder<C> {
    secret: String,
    mode: StripeMode,
    customers: C,
    base_url: String,
    timeout: Duration,
    http: Option<reqwest::Client>,
    identifier_prefix: String,
    stripe_version: Option<String>,
    conversion: Option<(Currency, RateTable)>,
    customer_payload_key: String,
    value_payload_key: String,
}

impl<C: CustomerLookup> StripeBillingDriver<C> {
    /// A builder with Stripe's secret key (`sk_...` or a restricted `rk_...`), the mode and
    /// the customer lookup.
    pub fn builder(
        secret_key: impl Into<String>,
        mode: StripeMode,
        customers: C,
    ) -> StripeDriverBuilder<C> {
        StripeDriverBuilder {
            secret: secret_key.into(),
            mode,
            customers,
            base_url: STRIPE_API_BASE.to_owned(),
            timeout: Duration::from_secs(30),
            http: None,
            identifier_prefix: "ai-overage-".to_owned(),
            stripe_version: None,
            conversion: None,
            customer_payload_key: "stripe_customer_id".to_owned(),
            value_payload_key: "value".to_owned(),
        }
    }

    /// The mode.
    pub fn mode(&self) -> &StripeMode {
        &self.mode
    }

    /// The identifier (and idempotency key) of an overage row: the prefix and the row's id.
    pub fn identifier(&self, overage: &OverageRecord) -> String {
        format!("{}{}", self.identifier_prefix, overage.id)
    }
}

impl<C: CustomerLookup> StripeDriverBuilder<C> {
    /// Sends requests to another base URL (a stand-in in tests, a proxy).
    ///
    /// ```
    /// # use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
    /// # use ai_metering_core::Billable;
    /// let d = StripeBillingDriver::builder("sk_test_1", StripeMode::InvoiceItems, |_: &Billable| None)
    ///     .base_url("http://127.0.0.1:12111")
    ///     .build();
    /// assert!(d.is_ok());
    /// ```
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = url.into();
        self
    }

    /// The timeout of one request (default 30 s).
    ///
    /// ```
    /// # use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
    /// # use ai_metering_core::Billable;
    /// let b = StripeBillingDriver::builder("sk_test_1", StripeMode::InvoiceItems, |_: &Billable| None)
    ///     .timeout(std::time::Duration::from_secs(5));
    /// assert!(b.build().is_ok());
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Uses this HTTP client (its own timeouts and proxies) instead of building one. Call
    /// [`install_tls_provider`](crate::install_tls_provider) before building it (unless the
    /// application installs a rustls crypto provider of its own).
    ///
    /// ```
    /// # use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
    /// # use ai_metering_core::Billable;
    /// ai_metering_billing::install_tls_provider();
    /// let b = StripeBillingDriver::builder("sk_test_1", StripeMode::InvoiceItems, |_: &Billable| None)
    ///     .http_client(reqwest::Client::new());
    /// assert!(b.build().is_ok());
    /// ```
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The prefix of identifiers and idempotency keys (default `ai-overage-`); give each
    /// database sharing one Stripe account its own.
    ///
    /// ```
    /// # use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
    /// # use ai_metering_core::Billable;
    /// let b = StripeBillingDriver::builder("sk_test_1", StripeMode::InvoiceItems, |_: &Billable| None)
    ///     .identifier_prefix("eu-ai-overage-");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn identifier_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.identifier_prefix = prefix.into();
        self
    }

    /// Sends `Stripe-Version` with every request (default: the account's version).
    ///
    /// ```
    /// # use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
    /// # use ai_metering_core::Billable;
    /// let b = StripeBillingDriver::builder("sk_test_1", StripeMode::InvoiceItems, |_: &Billable| None)
    ///     .stripe_version("2025-03-31.basil");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn stripe_version(mut self, version: impl Into<String>) -> Self {
        self.stripe_version = Some(version.into());
        self
    }

    /// Converts every amount into `currency` with `rates` before reporting it (a missing
    /// rate fails the report; the overage stays pending).
    ///
    /// ```
    /// # use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
    /// # use ai_metering_core::{Billable, Currency, RateTable};
    /// let rates = RateTable::from_pairs([("usd_eur", rust_decimal::Decimal::ONE)]).unwrap();
    /// let b = StripeBillingDriver::builder("sk_test_1", StripeMode::InvoiceItems, |_: &Billable| None)
    ///     .convert_to(Currency::EUR, rates);
    /// assert!(b.build().is_ok());
    /// ```
    pub fn convert_to(mut self, currency: Currency, rates: RateTable) -> Self {
        self.conversion = Some((currency, rates));
        self
    }

    /// The meter's payload keys for the customer and the value (defaults
    /// `stripe_customer_id` and `value`, Stripe's defaults).
    ///
    /// ```
    /// # use ai_metering_billing::stripe::{StripeBillingDriver, StripeMode};
    /// # use ai_metering_core::Billable;
    /// let b = StripeBillingDriver::builder("sk_test_1", StripeMode::meter_events("x"), |_: &Billable| None)
    ///     .payload_keys("customer", "tokens");
    /// assert!(b.build().is_ok());
    /// ```
    pub fn payload_keys(mut self, customer: impl Into<String>, value: impl Into<String>) -> Self {
        self.customer_payload_key = customer.into();
        self.value_payload_key = value.into();
        self
    }

    /// Builds the driver.
    ///
    /// # Errors
    /// [`BillingError::Configuration`]: an empty or publishable (`pk_`) key, a base URL that
    /// is not an http(s) URL, an empty meter event name, an identifier prefix longer than 60
    /// bytes (Stripe caps identifiers at 100), or an HTTP client that cannot be built.
    pub fn build(self) -> Result<StripeBillingDriver<C>, BillingError> {
        let config = |m: String| Err(BillingError::Configuration(m));
        let secret = self.secret.trim().to_owned();
        if secret.is_empty() || HeaderValue::from_str(&format!("Bearer {secret}")).is_err() {
            return config("the Stripe secret key is empty or not a valid header value".into());
        }
        if secret.starts_with("pk_") {
            return config(
                "a publishable key (pk_...) cannot create charges: use the secret key".into(),
            );
        }
        let base_url = self.base_url.trim_end_matches('/').to_owned();
        match reqwest::Url::parse(&base_url) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => {}
            _ => {
                return config(format!(
                    "the Stripe base URL {base_url:?} is not an http(s) URL"
                ));
            }
        }
        if let StripeMode::MeterEvents { event_name, .. } = &self.mode
            && event_name.trim().is_empty()
        {
            return config("the meter event name is empty".into());
        }
        if self.identifier_prefix.len() > 60 {
            return config("the identifier prefix is longer than 60 bytes".into());
        }
        let http = match self.http {
            Some(client) => client,
            None => {
                crate::install_tls_provider();
                reqwest::Client::builder()
                    .timeout(self.timeout)
                    .connect_timeout(self.timeout.min(Duration::from_secs(10)))
                    .build()
                    .map_err(|e| {
                        BillingError::Configuration(format!("cannot build the HTTP client: {e}"))
                    })?
            }
        };
        Ok(StripeBillingDriver {
            http,
            secret: SecretKey(secret),
            base_url,
            mode: self.mode,
            customers: self.customers,
            identifier_prefix: self.identifier_prefix,
            stripe_version: self.stripe_version,
            conversion: self.conversion,
            customer_payload_key: self.customer_payload_key,
            value_payload_key: self.value_payload_key,
        })
    }
}

impl<C: CustomerLookup> StripeBillingDriver<C> {
    fn amount(&self, overage: &OverageRecord) -> Result<Money, BillingError> {
        let invalid = |reason: String| BillingError::InvalidOverage {
            id: overage.id,
            reason,
        };
        let amount = overage.overage.amount;
        if amount.amount.is_sign_negative() && !amount.amount.is_zero() {
            return Err(invalid(format!("the amount {amount} is negative")));
        }
        match &self.conversion {
            Some((currency, rates)) => rates
                .convert(amount, *currency)
                .map_err(|e| invalid(e.to_string())),
            None => Ok(amount),
        }
    }

    fn minor_units(&self, overage: &OverageRecord, amount: Money) -> Result<i64, BillingError> {
        amount
            .to_minor_units()
            .map_err(|e| BillingError::InvalidOverage {
                id: overage.id,
                reason: e.to_string(),
            })
    }

    fn form(
        &self,
        overage: &OverageRecord,
        customer: String,
        identifier: &str,
    ) -> Result<(&'static str, Form), BillingError> {
        let amount = self.amount(overage)?;
        let o = &overage.overage;
        Ok(match &self.mode {
            StripeMode::MeterEvents { event_name, value } => {
                let value = match value {
                    MeterValue::Tokens => o.tokens.to_string(),
                    MeterValue::MinorUnits => self.minor_units(overage, amount)?.to_string(),
                };
                (
                    "/v1/billing/meter_events",
                    vec![
                        ("event_name".into(), event_name.clone()),
                        (format!("payload[{}]", self.customer_payload_key), customer),
                        (format!("payload[{}]", self.value_payload_key), value),
                        ("identifier".into(), identifier.to_owned()),
                        ("timestamp".into(), o.created_at.timestamp().to_string()),
                    ],
                )
            }
            StripeMode::InvoiceItems => {
                let last_day = o.period.end - chrono::Duration::seconds(1);
                let description = format!(
                    "AI usage overage - {} tokens ({} to {})",
                    o.tokens,
                    o.period.start.format("%Y-%m-%d"),
                    last_day.max(o.period.start).format("%Y-%m-%d"),
                );
                (
                    "/v1/invoiceitems",
                    vec![
                        ("customer".into(), customer),
                        (
                            "amount".into(),
                            self.minor_units(overage, amount)?.to_string(),
                        ),
                        (
                            "currency".into(),
                            amount.currency.as_str().to_ascii_lowercase(),
                        ),
                        ("description".into(), description),
                        (
                            "metadata[ai_metering_overage_id]".into(),
                            overage.id.to_string(),
                        ),
                        (
                            "metadata[ai_metering_usage_id]".into(),
                            o.usage_id.to_string(),
                        ),
                        ("metadata[billable]".into(), o.billable.to_string()),
                    ],
                )
            }
        })
    }

    async fn post(
        &self,
        path: &str,
        idempotency_key: &str,
        form: &[(String, String)],
    ) -> Result<Value, BillingError> {
        let mut request = self
            .http
            .post(format!("{}{path}", self.base_url))
            .bearer_auth(&self.secret.0)
            .header(HeaderName::from_static("idempotency-key"), idempotency_key)
            .form(form);
        if let Some(version) = &self.stripe_version {
            request = request.header(HeaderName::from_static("stripe-version"), version);
        }
        let transient = |status: Option<u16>, e: reqwest::Error| BillingError::Transient {
            status,
            message: e.to_string(),
            source: Some(Box::new(e)),
        };
        let response = request.send().await.map_err(|e| transient(None, e))?;
        let status = response.status().as_u16();
        let body = response
            .bytes()
            .await
            .map_err(|e| transient(Some(status), e))?;
        if (200..300).contains(&status) {
            return Ok(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
        let error = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
        let error = error.get("error");
        let text = |field: &str| {
            error
                .and_then(|e| e.get(field))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        let message = text("message").unwrap_or_else(|| format!("HTTP {status} from Stripe"));
        if status == 409 || status == 429 || status >= 500 {
            Err(BillingError::Transient {
                status: Some(status),
                message,
                source: None,
            })
        } else {
            Err(BillingError::Rejected {
                status,
                code: text("code").or_else(|| text("type")),
                message,
            })
        }
    }
}

impl<C: CustomerLookup> BillingDriver for StripeBillingDriver<C> {
    async fn report_overage(&self, overage: &OverageRecord) -> Result<ReportOutcome, BillingError> {
        let billable = &overage.overage.billable;
        let customer = self.customers.customer_id(billable).await?.ok_or_else(|| {
            BillingError::NoCustomer {
                billable: billable.clone(),
            }
        })?;
        let identifier = self.identifier(overage);
        let (path, form) = self.form(overage, customer, &identifier)?;
        let response = self.post(path, &identifier, &form).await?;
        let id_field = match self.mode {
            StripeMode::MeterEvents { .. } => "identifier",
            StripeMode::InvoiceItems => "id",
        };
        // A success without an id (never seen from Stripe) is still a success: the row is
        // known to Stripe under our identifier.
        let id = response
            .get(id_field)
            .and_then(Value::as_str)
            .and_then(ExternalId::new)
            .unwrap_or(ExternalId(identifier));
        tracing::debug!(target: "ai_metering", overage = overage.id, external_id = %id, "overage reported to Stripe");
        Ok(ReportOutcome::Reported(id))
    }
}
