//! Stripe webhooks: an axum route that keeps subscriptions in step with Stripe.
//!
//! ```no_run
//! use std::sync::Arc;
//! use ai_metering_billing::webhook::{WebhookConfig, webhook_router};
//! # use ai_metering_core::store::{AdminStore, SubscriptionStore};
//! # fn app<S: SubscriptionStore + AdminStore + 'static>(store: Arc<S>) -> axum::Router {
//! let config = WebhookConfig::new("whsec_0123456789abcdef0123456789abcdef").unwrap();
//! let webhooks = webhook_router(store, config);
//! axum::Router::new().merge(webhooks) // POST /stripe/webhook
//! # }
//! ```
//!
//! The configuration refuses an empty or short signing secret ([`SecretError`]; at least
//! [`MIN_SECRET_BYTES`] after the `whsec_` prefix), and holds several while one is rolled
//! ([`WebhookConfig::from_secrets`]): a delivery is genuine when any of them signed it.
//!
//! Every request is checked first: a missing, malformed, non-matching or stale
//! `Stripe-Signature` (see [`verify_signature`]) answers **400** and changes nothing. A
//! verified event is processed once per event id ([`WebhookEventStore`]); a redelivery
//! answers 200 without effect. A store failure answers 500 and forgets the claim, so that
//! Stripe's retry is processed. Events are applied one at a time per router, and an event
//! older than the last one applied to a subscription (Stripe does not guarantee order) is
//! ignored.
//!
//! Subscriptions are found by their `meta`: `stripe_subscription_id`
//! ([`SUBSCRIPTION_ID_META_KEY`]), or, for invoices that name no subscription field at all,
//! `stripe_customer_id`.
//!
//! # What each event does
//!
//! - `customer.subscription.updated`: `renews_at` becomes the current period's end (read
//!   from the subscription, or from its items as API versions from 2025-03-31 place it);
//!   `trial_ends_at` follows `trial_end`; `started_at` is never touched. Then, by status:
//!   - `active` / `trialing`: a payment failure is over (grace cleared); `ends_at` is
//!     Stripe's schedule: `cancel_at`, else the current period's end when
//!     `cancel_at_period_end`, else none (reactivated). `canceled_at`, the moment the cancel
//!     was *requested*, is never the end.
//!   - `canceled` / `incomplete_expired`: `ends_at` = `ended_at`, else `canceled_at`, else now.
//!   - any other (`past_due`, `unpaid`, `incomplete`, `paused`): a scheduled end applies, but
//!     never postpones the end set by a payment failure.
//! - `customer.subscription.deleted`: `ends_at` = `ended_at`, else `canceled_at`, else now
//!   (never "none", which would re-open it); grace cleared; emits
//!   [`MeterEvent::SubscriptionExpired`](ai_metering_core::events::MeterEvent) through the
//!   handle ([`Metering`](ai_metering_core::Metering) delivers it to its sinks).
//! - `invoice.payment_failed`: on the first failure of an active subscription, `ends_at`
//!   becomes now (saving the previous end in `meta`) and `grace_ends_at` now + `grace_days`,
//!   so the grace is what keeps it active, and only that long. Repeated failures change
//!   nothing: the grace stays first failure + `grace_days`. With `grace_days = 0` it ends now.
//! - `invoice.paid` (and `invoice.payment_succeeded`): ends a payment failure: grace
//!   cleared, the saved end put back. (A subscription that returns to `active` does the same
//!   through `customer.subscription.updated`.)
//!
//! Other event types answer 200 and are ignored.

mod apply;
mod event;
mod event_log;
mod secret;
mod signature;

use std::fmt;
use std::sync::Arc;

use ai_metering_core::clock::{Clock, SystemClock};
use ai_metering_core::events::MeterEvent;
use ai_metering_core::store::{
    AdminStore, StoreError, StoreErrorKind, SubscriptionId, SubscriptionStore,
};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::{DateTime, Duration, Utc};

use crate::handle::StoreHandle;
use crate::stripe::CUSTOMER_ID_META_KEY;
use event::{StripeEvent, StripeInvoice, StripeSubscription};

/// How many times an event is reapplied when its subscription keeps changing under it
/// (another instance writing it at the same time) before the webhook answers 500 and
/// leaves the retry to Stripe.
const MAX_APPLY_ATTEMPTS: usize = 8;

pub use ai_metering_core::store::WebhookEventStore;
pub use apply::{ENDS_BEFORE_FAILURE_META_KEY, LAST_EVENT_META_KEY, PAYMENT_FAILED_AT_META_KEY};
pub use event_log::MemoryEventLog;
pub use secret::{MIN_SECRET_BYTES, STRIPE_SECRET_PREFIX, SecretError, WebhookSecret};
pub use signature::{SignatureError, verify_signature, verify_signature_any};

/// The subscription `meta` key holding the Stripe subscription id.
pub const SUBSCRIPTION_ID_META_KEY: &str = "stripe_subscription_id";

/// Settings of the webhook route.
#[derive(Clone)]
pub struct WebhookConfig {
    /// The endpoint's signing secrets (`whsec_...`): one, or several while one is rolled.
    /// Never empty.
    secrets: Vec<WebhookSecret>,
    /// How far the signature's timestamp may be from now, either way (default 300 s).
    pub tolerance: Duration,
    /// Days of grace after a failed payment (default 7; 0 ends the subscription at once).
    pub grace_days: u32,
    /// Where "now" comes from.
    pub clock: Arc<dyn Clock>,
    /// The route's path (default `/stripe/webhook`).
    pub path: String,
}

impl WebhookConfig {
    /// Defaults with this endpoint secret.
    ///
    /// ```
    /// use ai_metering_billing::webhook::{SecretError, WebhookConfig};
    /// let config = WebhookConfig::new("whsec_0123456789abcdef").unwrap();
    /// assert_eq!(config.tolerance.num_seconds(), 300);
    /// assert_eq!(config.grace_days, 7);
    /// assert_eq!(WebhookConfig::new("").unwrap_err(), SecretError::Empty);
    /// ```
    ///
    /// # Errors
    /// [`SecretError`] when the secret is empty, padded, or shorter than
    /// [`MIN_SECRET_BYTES`] after its `whsec_` prefix.
    pub fn new(endpoint_secret: impl Into<String>) -> Result<Self, SecretError> {
        Self::from_secrets([endpoint_secret])
    }

    /// Defaults with several active endpoint secrets, as while a secret is rolled (Stripe
    /// then signs each delivery with every active secret): a delivery verifies when any
    /// secret matches any of its signatures.
    ///
    /// ```
    /// use ai_metering_billing::webhook::{SecretError, WebhookConfig};
    /// let config = WebhookConfig::from_secrets([
    ///     "whsec_new_0123456789abcdef",
    ///     "whsec_old_0123456789abcdef",
    /// ])
    /// .unwrap();
    /// assert_eq!(config.secrets().len(), 2);
    /// let none: [&str; 0] = [];
    /// assert_eq!(WebhookConfig::from_secrets(none).unwrap_err(), SecretError::NoSecrets);
    /// ```
    ///
    /// # Errors
    /// [`SecretError`]: for the first unacceptable secret, or
    /// [`NoSecrets`](SecretError::NoSecrets) for none.
    pub fn from_secrets<I, S>(secrets: I) -> Result<Self, SecretError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let secrets = secrets
            .into_iter()
            .map(WebhookSecret::new)
            .collect::<Result<Vec<_>, _>>()?;
        if secrets.is_empty() {
            return Err(SecretError::NoSecrets);
        }
        Ok(Self {
            secrets,
            tolerance: Duration::seconds(300),
            grace_days: 7,
            clock: Arc::new(SystemClock),
            path: "/stripe/webhook".to_owned(),
        })
    }

    /// The active signing secrets (at least one).
    pub fn secrets(&self) -> &[WebhookSecret] {
        &self.secrets
    }

    /// Sets the timestamp tolerance.
    ///
    /// ```
    /// # use ai_metering_billing::webhook::WebhookConfig;
    /// let c = WebhookConfig::new("whsec_0123456789abcdef")?
    ///     .with_tolerance(chrono::Duration::seconds(60));
    /// assert_eq!(c.tolerance.num_seconds(), 60);
    /// # Ok::<(), ai_metering_billing::webhook::SecretError>(())
    /// ```
    pub fn with_tolerance(mut self, tolerance: Duration) -> Self {
        self.tolerance = tolerance;
        self
    }

    /// Sets the grace after a failed payment.
    ///
    /// ```
    /// # use ai_metering_billing::webhook::WebhookConfig;
    /// let c = WebhookConfig::new("whsec_0123456789abcdef")?.with_grace_days(3);
    /// assert_eq!(c.grace_days, 3);
    /// # Ok::<(), ai_metering_billing::webhook::SecretError>(())
    /// ```
    pub fn with_grace_days(mut self, days: u32) -> Self {
        self.grace_days = days;
        self
    }

    /// Uses this clock.
    ///
    /// ```
    /// # use ai_metering_billing::webhook::WebhookConfig;
    /// use ai_metering_core::clock::{Clock, ManualClock};
    /// let clock = ManualClock::new(chrono::DateTime::UNIX_EPOCH);
    /// let c = WebhookConfig::new("whsec_0123456789abcdef")?.with_clock(clock);
    /// assert_eq!(c.clock.now(), chrono::DateTime::UNIX_EPOCH);
    /// # Ok::<(), ai_metering_billing::webhook::SecretError>(())
    /// ```
    pub fn with_clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// Sets the route's path.
    ///
    /// ```
    /// # use ai_metering_billing::webhook::WebhookConfig;
    /// let c = WebhookConfig::new("whsec_0123456789abcdef")?.with_path("/hooks/stripe");
    /// assert_eq!(c.path, "/hooks/stripe");
    /// # Ok::<(), ai_metering_billing::webhook::SecretError>(())
    /// ```
    pub fn with_path(mut self, path: impl Into<String>) -> Self {
        self.path = path.into();
        self
    }
}

impl fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("secrets", &self.secrets.len())
            .field("tolerance", &self.tolerance)
            .field("grace_days", &self.grace_days)
            .field("clock", &self.clock)
            .field("path", &self.path)
            .finish()
    }
}

/// What a verified event came to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WebhookOutcome {
    /// Applied to this subscription.
    Applied {
        /// The event's id.
        event_id: String,
        /// The subscription.
        subscription: SubscriptionId,
    },
    /// Already processed: nothing changed.
    Duplicate {
        /// The event's id.
        event_id: String,
    },
    /// Nothing to do (an unhandled type, no matching subscription, an out-of-order event).
    Ignored {
        /// The event's id.
        event_id: String,
        /// Why.
        reason: String,
    },
}

impl WebhookOutcome {
    fn label(&self) -> &'static str {
        match self {
            Self::Applied { .. } => "applied",
            Self::Duplicate { .. } => "duplicate",
            Self::Ignored { .. } => "ignored",
        }
    }
}

/// Why a webhook request was refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The signature did not verify: 400.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The (signed) payload is not a Stripe event of the expected shape: 400.
    #[error("invalid Stripe event: {0}")]
    Payload(String),
    /// The store failed: 500, and Stripe retries later.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl WebhookError {
    /// The HTTP status it answers.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Signature(_) | Self::Payload(_) => StatusCode::BAD_REQUEST,
            Self::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for WebhookError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Store details stay in the logs, not in the response.
        let message = match &self {
            Self::Store(e) => {
                tracing::error!(target: "ai_metering", error = %e, "Stripe webhook failed; Stripe will retry");
                "internal error".to_owned()
            }
            other => {
                tracing::warn!(target: "ai_metering", error = %other, "Stripe webhook refused");
                other.to_string()
            }
        };
        json_response(status, serde_json::json!({ "error": message }))
    }
}

fn json_response(status: StatusCode, body: serde_json::Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Handled {
    SubscriptionUpdated,
    SubscriptionDeleted,
    PaymentFailed,
    InvoicePaid,
}

impl Handled {
    fn of(kind: &str) -> Option<Self> {
        Some(match kind {
            "customer.subscription.updated" => Self::SubscriptionUpdated,
            "customer.subscription.deleted" => Self::SubscriptionDeleted,
            "invoice.payment_failed" => Self::PaymentFailed,
            "invoice.paid" | "invoice.payment_succeeded" => Self::InvoicePaid,
            _ => return None,
        })
    }
}

struct Inner<H, L> {
    target: H,
    log: L,
    config: WebhookConfig,
    /// Serialises event processing: each applies a read-modify-write to a subscription.
    lock: tokio::sync::Mutex<()>,
}

/// The Stripe webhook handler; [`router`](Self::router) mounts it.
///
/// ```
/// use std::sync::Arc;
/// use ai_metering_billing::webhook::{MemoryEventLog, StripeWebhook, WebhookConfig};
/// # use ai_metering_core::store::{AdminStore, SubscriptionStore};
/// # fn f<S: SubscriptionStore + AdminStore + 'static>(store: Arc<S>) {
/// let config = WebhookConfig::new("whsec_0123456789abcdef").unwrap();
/// let hook = StripeWebhook::new(store, config)
///     .with_event_log(Arc::new(MemoryEventLog::new()));
/// let _router: axum::Router = hook.router();
/// # }
/// ```
pub struct StripeWebhook<H, L = MemoryEventLog> {
    inner: Arc<Inner<H, L>>,
}

impl<H, L> Clone for StripeWebhook<H, L> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<H, L> fmt::Debug for StripeWebhook<H, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StripeWebhook")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

/// The webhook route over `target` (an `Arc` of the store, or a
/// [`Metering`](ai_metering_core::Metering)), remembering event ids in memory.
pub fn webhook_router<H>(target: H, config: WebhookConfig) -> Router
where
    H: StoreHandle,
    H::Store: SubscriptionStore + AdminStore,
{
    StripeWebhook::new(target, config).router()
}

impl<H> StripeWebhook<H, MemoryEventLog>
where
    H: StoreHandle,
    H::Store: SubscriptionStore + AdminStore,
{
    /// A handler over `target`, remembering event ids in memory (use
    /// [`with_event_log`](Self::with_event_log) to share them between instances).
    pub fn new(target: H, config: WebhookConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                target,
                log: MemoryEventLog::new(),
                config,
                lock: tokio::sync::Mutex::new(()),
            }),
        }
    }
}

impl<H, L> StripeWebhook<H, L>
where
    H: StoreHandle,
    H::Store: SubscriptionStore + AdminStore,
    L: WebhookEventStore + 'static,
{
    /// Remembers event ids in `log` instead.
    pub fn with_event_log<L2: WebhookEventStore + 'static>(self, log: L2) -> StripeWebhook<H, L2> {
        let inner = match Arc::try_unwrap(self.inner) {
            Ok(inner) => (inner.target, inner.config),
            Err(shared) => (shared.target.clone(), shared.config.clone()),
        };
        StripeWebhook {
            inner: Arc::new(Inner {
                target: inner.0,
                log,
                config: inner.1,
                lock: tokio::sync::Mutex::new(()),
            }),
        }
    }

    /// The axum router: one `POST` route at the configured path.
    pub fn router(self) -> Router {
        let path = self.inner.config.path.clone();
        Router::new()
            .route(&path, post(receive::<H, L>))
            .with_state(self)
    }

    /// Verifies and processes one delivery: `signature` is the `Stripe-Signature` header,
    /// `body` the raw request body.
    ///
    /// # Errors
    /// [`WebhookError`]; nothing changed then.
    pub async fn handle(
        &self,
        signature: Option<&str>,
        body: &[u8],
    ) -> Result<WebhookOutcome, WebhookError> {
        let config = &self.inner.config;
        let now = config.clock.now();
        let header = signature.ok_or(SignatureError::Missing)?;
        verify_signature_any(header, body, &config.secrets, config.tolerance, now)?;
        let event: StripeEvent =
            serde_json::from_slice(body).map_err(|e| WebhookError::Payload(e.to_string()))?;
        let Some(kind) = Handled::of(&event.kind) else {
            return Ok(WebhookOutcome::Ignored {
                event_id: event.id,
                reason: format!("event type {} is not handled", event.kind),
            });
        };

        let _serial = self.inner.lock.lock().await;
        let log = &self.inner.log;
        if !log.claim_event(&event.id, now).await? {
            return Ok(WebhookOutcome::Duplicate { event_id: event.id });
        }
        let result = self.apply(kind, &event, now).await;
        let keep_claim = match &result {
            Ok(Applied::Done(_) | Applied::Stale) => true,
            Ok(Applied::NotFound(_)) | Err(_) => false,
        };
        if !keep_claim && let Err(e) = log.forget_event(&event.id).await {
            tracing::warn!(target: "ai_metering", error = %e, event = %event.id, "could not forget a webhook event claim");
        }
        let event_id = event.id.clone();
        let outcome = match result? {
            Applied::Done(subscription) => WebhookOutcome::Applied {
                event_id,
                subscription,
            },
            Applied::Stale => WebhookOutcome::Ignored {
                event_id,
                reason: "older than the last event applied to the subscription".into(),
            },
            Applied::NotFound(reason) => WebhookOutcome::Ignored { event_id, reason },
        };
        tracing::info!(target: "ai_metering", event = %event.id, kind = %event.kind, outcome = outcome.label(), "Stripe webhook");
        Ok(outcome)
    }

    /// Applies the event to its subscription. Another app instance may change the
    /// subscription between the read and the write (a different event for it, handled at
    /// the same time), so the write is a compare-and-swap, and a lost race reads again and
    /// reapplies instead of undoing the other change.
    async fn apply(
        &self,
        kind: Handled,
        event: &StripeEvent,
        now: DateTime<Utc>,
    ) -> Result<Applied, WebhookError> {
        for _ in 0..MAX_APPLY_ATTEMPTS {
            if let Some(applied) = self.apply_once(kind, event, now).await? {
                return Ok(applied);
            }
        }
        Err(WebhookError::Store(StoreError::new(
            StoreErrorKind::Conflict,
            format!(
                "the subscription of event {} changed under each of {MAX_APPLY_ATTEMPTS} attempts",
                event.id
            ),
        )))
    }

    /// One read-apply-write of [`apply`](Self::apply); `None` when the subscription changed
    /// since it was read.
    async fn apply_once(
        &self,
        kind: Handled,
        event: &StripeEvent,
        now: DateTime<Utc>,
    ) -> Result<Option<Applied>, WebhookError> {
        let store = self.inner.target.store();
        let object = &event.data.object;
        let found = match kind {
            Handled::SubscriptionUpdated | Handled::SubscriptionDeleted => {
                let stripe: StripeSubscription = serde_json::from_value(object.clone())
                    .map_err(|e| WebhookError::Payload(format!("data.object: {e}")))?;
                let found = store
                    .find_subscription_by_meta(SUBSCRIPTION_ID_META_KEY, &stripe.id)
                    .await?;
                let Some(found) = found else {
                    return Ok(Some(Applied::NotFound(format!(
                        "no subscription has {SUBSCRIPTION_ID_META_KEY} {}",
                        stripe.id
                    ))));
                };
                (found, Some(stripe))
            }
            Handled::PaymentFailed | Handled::InvoicePaid => {
                let invoice = StripeInvoice::from_object(object);
                let found = match (&invoice.subscription, &invoice.customer) {
                    (Some(id), _) => {
                        store
                            .find_subscription_by_meta(SUBSCRIPTION_ID_META_KEY, id)
                            .await?
                    }
                    (None, Some(customer)) if !invoice.has_subscription_field => {
                        store
                            .find_subscription_by_meta(CUSTOMER_ID_META_KEY, customer)
                            .await?
                    }
                    _ => {
                        return Ok(Some(Applied::NotFound(
                            "the invoice belongs to no subscription".into(),
                        )));
                    }
                };
                let Some(found) = found else {
                    return Ok(Some(Applied::NotFound(
                        "no subscription matches the invoice".into(),
                    )));
                };
                (found, None)
            }
        };
        let ((id, mut subscription), stripe) = found;
        if apply::is_stale(&subscription, event.created) {
            return Ok(Some(Applied::Stale));
        }
        let before = subscription.clone();
        let mut expired = None;
        match (kind, &stripe) {
            (Handled::SubscriptionUpdated, Some(s)) => {
                apply::subscription_updated(&mut subscription, s, now);
            }
            (Handled::SubscriptionDeleted, Some(s)) => {
                expired = Some(apply::subscription_deleted(&mut subscription, s, now));
            }
            (Handled::PaymentFailed, _) => {
                apply::payment_failed(&mut subscription, now, self.inner.config.grace_days);
            }
            (Handled::InvoicePaid, _) => {
                apply::payment_recovered(&mut subscription);
            }
            _ => {}
        }
        apply::mark_event(&mut subscription, event.created);
        if subscription != before
            && !store
                .replace_subscription(id, &before, &subscription)
                .await?
        {
            return Ok(None);
        }
        if let Some(ended_at) = expired {
            // Announced once, across instances and the metering's sweeper: whoever claims
            // an expiry emits it (here, with any other expiry not announced yet).
            for (_, expired) in store
                .claim_expired_subscriptions(ended_at.max(now), 100)
                .await?
            {
                self.inner.target.emit(MeterEvent::SubscriptionExpired {
                    ended_at: expired.ended_at().unwrap_or(ended_at),
                    billable: expired.billable,
                });
            }
        }
        Ok(Some(Applied::Done(id)))
    }
}

enum Applied {
    Done(SubscriptionId),
    Stale,
    NotFound(String),
}

async fn receive<H, L>(
    State(hook): State<StripeWebhook<H, L>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response
where
    H: StoreHandle,
    H::Store: SubscriptionStore + AdminStore,
    L: WebhookEventStore + 'static,
{
    let signature = headers
        .get("stripe-signature")
        .and_then(|v| v.to_str().ok());
    match hook.handle(signature, &body).await {
        Ok(outcome) => json_response(
            StatusCode::OK,
            serde_json::json!({ "received": true, "outcome": outcome.label() }),
        ),
        Err(e) => e.into_response(),
    }
}
