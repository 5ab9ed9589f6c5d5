//! The Stripe webhook route over HTTP, against MemoryStore.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use ai_metering_billing::webhook::{MemoryEventLog, StripeWebhook, WebhookConfig, webhook_router};
use ai_metering_core::clock::ManualClock;
use ai_metering_core::events::MeterEvent;
use ai_metering_core::plan::{LimitOverride, Subscription};
use ai_metering_core::store::{
    AdminStore, MemoryStore, ReportStore, StoreError, StoreErrorKind, StoreResult, SubscriptionId,
    SubscriptionStore,
};
use ai_metering_core::{Billable, Metering};
use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const SECRET: &str = "whsec_standin_secret_for_the_tests";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 10, 12, 0, 0).unwrap()
}

fn sign(t: i64, body: &str, secret: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

fn event(id: &str, kind: &str, created: DateTime<Utc>, object: Value) -> String {
    json!({
        "id": id,
        "object": "event",
        "type": kind,
        "created": created.timestamp(),
        "api_version": "2025-03-31.basil",
        "data": {"object": object}
    })
    .to_string()
}

async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/stripe/webhook")
}

async fn post(url: &str, signature: Option<String>, body: &str) -> (u16, Value) {
    ai_metering_billing::install_tls_provider();
    let mut request = reqwest::Client::new().post(url).body(body.to_owned());
    if let Some(signature) = signature {
        request = request.header("Stripe-Signature", signature);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body = response.text().await.unwrap();
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

/// A metering service with a manual clock and a recording event sink, a subscription of
/// team:acme linked to Stripe's `sub_1` / `cus_1`, and the webhook served over HTTP.
struct Setup {
    metering: Metering<MemoryStore>,
    clock: ManualClock,
    events: Arc<Mutex<Vec<MeterEvent>>>,
    id: SubscriptionId,
    url: String,
}

impl Setup {
    async fn new() -> Self {
        let clock = ManualClock::new(t0());
        let events = Arc::new(Mutex::new(Vec::new()));
        let sink = events.clone();
        let metering = Metering::builder(MemoryStore::new())
            .clock(clock.clone())
            .event_sink(move |e: &MeterEvent| sink.lock().unwrap().push(e.clone()))
            .build();
        let mut sub = Subscription::new(
            Billable::new("team", "acme"),
            "pro",
            t0() - Duration::days(40),
        );
        sub.meta
            .insert("stripe_subscription_id".into(), json!("sub_1"));
        sub.meta.insert("stripe_customer_id".into(), json!("cus_1"));
        let id = metering.store().insert_subscription(&sub).await.unwrap();
        let config = WebhookConfig::new(SECRET)
            .unwrap()
            .with_clock(clock.clone());
        let url = serve(webhook_router(metering.clone(), config)).await;
        Self {
            metering,
            clock,
            events,
            id,
            url,
        }
    }

    async fn subscription(&self) -> Subscription {
        let all = self
            .metering
            .store()
            .subscriptions(&Billable::new("team", "acme"))
            .await
            .unwrap();
        all.into_iter().find(|(id, _)| *id == self.id).unwrap().1
    }

    async fn send(&self, body: &str) -> (u16, Value) {
        let now = self.metering.now().timestamp();
        post(&self.url, Some(sign(now, body, SECRET)), body).await
    }

    fn expired_events(&self) -> usize {
        self.events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| matches!(e, MeterEvent::SubscriptionExpired { .. }))
            .count()
    }
}

fn period_end() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 7, 1, 0, 0, 0).unwrap()
}

#[tokio::test]
async fn cancel_at_period_end_keeps_access_until_the_period_end() {
    let s = Setup::new().await;
    let before = s.subscription().await;
    // Newer API versions carry the period end on the items only.
    let body = event(
        "evt_1",
        "customer.subscription.updated",
        t0(),
        json!({
            "id": "sub_1", "object": "subscription", "status": "active",
            "customer": "cus_1", "cancel_at_period_end": true,
            "canceled_at": t0().timestamp(),
            "items": {"object": "list", "data": [{"id": "si_1", "current_period_end": period_end().timestamp()}]}
        }),
    );
    let (status, reply) = s.send(&body).await;
    assert_eq!((status, reply["outcome"].as_str()), (200, Some("applied")));
    let after = s.subscription().await;
    assert_eq!(after.ends_at, Some(period_end()));
    assert_eq!(after.renews_at, Some(period_end()));
    assert_eq!(after.started_at, before.started_at);
    let store = s.metering.store();
    let acme = Billable::new("team", "acme");
    assert!(
        store
            .current_subscription(&acme, period_end() - Duration::seconds(1))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .current_subscription(&acme, period_end())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn bad_signatures_answer_400_and_change_nothing() {
    let s = Setup::new().await;
    let before = s.subscription().await;
    let body = event(
        "evt_del",
        "customer.subscription.deleted",
        t0(),
        json!({"id": "sub_1", "status": "canceled", "ended_at": t0().timestamp()}),
    );
    let now = t0().timestamp();
    let good = sign(now, &body, SECRET);
    let tampered = body.replace("sub_1", "sub_2");
    let cases = [
        (None, body.clone()),
        (Some(good.clone()), tampered),
        (Some(sign(now, &body, "whsec_wrong")), body.clone()),
        (Some(sign(now - 301, &body, SECRET)), body.clone()),
        (Some(sign(now + 301, &body, SECRET)), body.clone()),
        (Some("t=abc,v1=00".to_owned()), body.clone()),
    ];
    for (signature, payload) in cases {
        let (status, reply) = post(&s.url, signature.clone(), &payload).await;
        assert_eq!(status, 400, "{signature:?}: {reply}");
        assert!(reply["error"].is_string());
    }
    assert_eq!(s.subscription().await, before);
    assert_eq!(s.expired_events(), 0);
    // The genuine delivery still goes through: refused ones claimed nothing.
    let (status, _) = post(&s.url, Some(good), &body).await;
    assert_eq!(status, 200);
    assert_eq!(s.subscription().await.ends_at, Some(t0()));
}

#[tokio::test]
async fn a_signature_ages_out_with_the_clock() {
    let s = Setup::new().await;
    let body = event(
        "evt_old",
        "customer.subscription.deleted",
        t0(),
        json!({"id": "sub_1"}),
    );
    let signature = sign(t0().timestamp(), &body, SECRET);
    s.clock.advance(Duration::seconds(301));
    let (status, _) = post(&s.url, Some(signature), &body).await;
    assert_eq!(status, 400);
    assert_eq!(s.subscription().await.ends_at, None);
}

#[tokio::test]
async fn a_redelivered_event_applies_once() {
    let s = Setup::new().await;
    let body = event(
        "evt_del",
        "customer.subscription.deleted",
        t0(),
        json!({"id": "sub_1", "status": "canceled", "canceled_at": (t0() - Duration::hours(1)).timestamp()}),
    );
    assert_eq!(s.send(&body).await.0, 200);
    let after_first = s.subscription().await;
    assert_eq!(after_first.ends_at, Some(t0() - Duration::hours(1)));
    assert_eq!(s.expired_events(), 1);
    let (status, reply) = s.send(&body).await;
    assert_eq!(
        (status, reply["outcome"].as_str()),
        (200, Some("duplicate"))
    );
    assert_eq!(s.expired_events(), 1, "no second SubscriptionExpired");
    assert_eq!(s.subscription().await, after_first);
}

#[tokio::test]
async fn deletion_without_timestamps_ends_now_never_reopens() {
    let s = Setup::new().await;
    let body = event(
        "evt_1",
        "customer.subscription.deleted",
        t0(),
        json!({"id": "sub_1"}),
    );
    assert_eq!(s.send(&body).await.0, 200);
    assert_eq!(s.subscription().await.ends_at, Some(t0()));
    match &s.events.lock().unwrap()[..] {
        [MeterEvent::SubscriptionExpired { billable, ended_at }] => {
            assert_eq!(
                (billable.to_string(), *ended_at),
                ("team:acme".into(), t0())
            );
        }
        other => panic!("unexpected {other:?}"),
    }
}

fn failed_invoice(id: &str) -> Value {
    json!({
        "id": id, "object": "invoice", "customer": "cus_1",
        "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_1"}}
    })
}

#[tokio::test]
async fn payment_failure_grace_is_capped_and_recovery_restores_access() {
    let s = Setup::new().await;
    let acme = Billable::new("team", "acme");
    let store = s.metering.store();
    let body = event(
        "evt_f1",
        "invoice.payment_failed",
        t0(),
        failed_invoice("in_1"),
    );
    assert_eq!(s.send(&body).await.0, 200);
    let sub = s.subscription().await;
    assert_eq!(sub.ends_at, Some(t0()));
    assert_eq!(sub.grace_ends_at, Some(t0() + Duration::days(7)));

    // Stripe retries the charge two days later and fails again: the grace does not move.
    s.clock.advance(Duration::days(2));
    let again = event(
        "evt_f2",
        "invoice.payment_failed",
        s.metering.now(),
        failed_invoice("in_1"),
    );
    assert_eq!(s.send(&again).await.0, 200);
    assert_eq!(
        s.subscription().await.grace_ends_at,
        Some(t0() + Duration::days(7))
    );
    assert!(
        store
            .current_subscription(&acme, t0() + Duration::days(6))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        store
            .current_subscription(&acme, t0() + Duration::days(7))
            .await
            .unwrap()
            .is_none()
    );

    let paid = event(
        "evt_p",
        "invoice.paid",
        s.metering.now(),
        failed_invoice("in_1"),
    );
    assert_eq!(s.send(&paid).await.0, 200);
    let sub = s.subscription().await;
    assert_eq!((sub.ends_at, sub.grace_ends_at), (None, None));
    assert!(
        store
            .current_subscription(&acme, t0() + Duration::days(30))
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn old_style_invoices_find_the_subscription_by_id_or_customer() {
    let s = Setup::new().await;
    // No subscription field at all (an unknown shape): found by customer.
    let by_customer = event(
        "evt_c",
        "invoice.payment_failed",
        t0(),
        json!({"id": "in_1", "customer": "cus_1"}),
    );
    assert_eq!(s.send(&by_customer).await.1["outcome"], "applied");
    assert_eq!(s.subscription().await.ends_at, Some(t0()));

    let s = Setup::new().await;
    // A one-off invoice (subscription null): nothing to do with the subscription.
    let one_off = event(
        "evt_o",
        "invoice.payment_failed",
        t0(),
        json!({"id": "in_2", "customer": "cus_1", "subscription": null}),
    );
    assert_eq!(s.send(&one_off).await.1["outcome"], "ignored");
    assert_eq!(s.subscription().await.ends_at, None);
    let by_id = event(
        "evt_i",
        "invoice.payment_failed",
        t0(),
        json!({"id": "in_3", "customer": "cus_1", "subscription": "sub_1"}),
    );
    assert_eq!(s.send(&by_id).await.1["outcome"], "applied");
}

#[tokio::test]
async fn an_older_event_does_not_undo_a_newer_one() {
    let s = Setup::new().await;
    let canceling = event(
        "evt_new",
        "customer.subscription.updated",
        t0(),
        json!({"id": "sub_1", "status": "active", "cancel_at_period_end": true, "current_period_end": period_end().timestamp()}),
    );
    let older = event(
        "evt_old",
        "customer.subscription.updated",
        t0() - Duration::minutes(5),
        json!({"id": "sub_1", "status": "active", "cancel_at_period_end": false, "current_period_end": period_end().timestamp()}),
    );
    assert_eq!(s.send(&canceling).await.1["outcome"], "applied");
    assert_eq!(s.send(&older).await.1["outcome"], "ignored");
    assert_eq!(s.subscription().await.ends_at, Some(period_end()));
}

#[tokio::test]
async fn an_unknown_subscription_is_ignored_and_a_resend_works_once_it_exists() {
    let s = Setup::new().await;
    let body = event(
        "evt_x",
        "customer.subscription.deleted",
        t0(),
        json!({"id": "sub_later"}),
    );
    assert_eq!(s.send(&body).await.1["outcome"], "ignored");
    let mut sub = Subscription::new(
        Billable::new("team", "later"),
        "pro",
        t0() - Duration::days(1),
    );
    sub.meta
        .insert("stripe_subscription_id".into(), json!("sub_later"));
    let id = s.metering.store().insert_subscription(&sub).await.unwrap();
    assert_eq!(s.send(&body).await.1["outcome"], "applied");
    let stored = s
        .metering
        .store()
        .subscriptions(&Billable::new("team", "later"))
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!((stored[0].0, stored[0].1.ends_at), (id, Some(t0())));
}

#[tokio::test]
async fn unhandled_types_are_acknowledged_and_bad_json_is_refused() {
    let s = Setup::new().await;
    let body = event("evt_u", "charge.succeeded", t0(), json!({"id": "ch_1"}));
    let (status, reply) = s.send(&body).await;
    assert_eq!((status, reply["outcome"].as_str()), (200, Some("ignored")));
    let (status, _) = s.send("{not json").await;
    assert_eq!(status, 400);
    let shapeless = event(
        "evt_s",
        "customer.subscription.updated",
        t0(),
        json!({"status": "active"}),
    );
    assert_eq!(
        s.send(&shapeless).await.0,
        400,
        "a subscription without an id"
    );
}

/// MemoryStore whose subscription updates fail while `failing` is set.
struct Flaky {
    inner: MemoryStore,
    failing: AtomicBool,
    /// How many of the next `replace_subscription` calls are each preceded by another
    /// instance's write to the same subscription (its `meta["changed_elsewhere"]` counts
    /// these writes).
    races: AtomicUsize,
    /// The writes staged so far.
    staged: AtomicUsize,
}

impl Flaky {
    fn fail(&self) -> StoreResult<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::new(
                StoreErrorKind::Unavailable,
                "database down",
            ));
        }
        Ok(())
    }
}

impl SubscriptionStore for Flaky {
    async fn insert_subscription(&self, s: &Subscription) -> StoreResult<SubscriptionId> {
        self.inner.insert_subscription(s).await
    }
    async fn replace_subscription(
        &self,
        id: SubscriptionId,
        expected: &Subscription,
        new: &Subscription,
    ) -> StoreResult<bool> {
        self.fail()?;
        let race = self
            .races
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if race {
            let n = self.staged.fetch_add(1, Ordering::SeqCst) + 1;
            let mut theirs = expected.clone();
            theirs.meta.insert("changed_elsewhere".into(), json!(n));
            self.inner.update_subscription(id, &theirs).await?;
        }
        self.inner.replace_subscription(id, expected, new).await
    }
    async fn current_subscription(
        &self,
        b: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        self.inner.current_subscription(b, at).await
    }
    async fn claim_expired_subscriptions(
        &self,
        now: DateTime<Utc>,
        limit: u64,
    ) -> StoreResult<Vec<(SubscriptionId, Subscription)>> {
        self.inner.claim_expired_subscriptions(now, limit).await
    }
    async fn limit_override_at(
        &self,
        b: &Billable,
        at: DateTime<Utc>,
    ) -> StoreResult<Option<LimitOverride>> {
        self.inner.limit_override_at(b, at).await
    }
}

impl AdminStore for Flaky {
    async fn update_subscription(&self, id: SubscriptionId, s: &Subscription) -> StoreResult<()> {
        self.fail()?;
        self.inner.update_subscription(id, s).await
    }
    async fn find_subscription_by_meta(
        &self,
        k: &str,
        v: &str,
    ) -> StoreResult<Option<(SubscriptionId, Subscription)>> {
        self.inner.find_subscription_by_meta(k, v).await
    }
    async fn insert_limit_override(&self, o: &LimitOverride) -> StoreResult<()> {
        self.inner.insert_limit_override(o).await
    }
}

/// A [`Flaky`] store holding team:acme's subscription linked to `sub_1`, the webhook served
/// over it, and the webhook's URL.
async fn flaky(failing: bool, races: usize) -> (Arc<Flaky>, Billable, String) {
    let store = Arc::new(Flaky {
        inner: MemoryStore::new(),
        failing: AtomicBool::new(failing),
        races: AtomicUsize::new(races),
        staged: AtomicUsize::new(0),
    });
    let acme = Billable::new("team", "acme");
    let mut sub = Subscription::new(acme.clone(), "pro", t0() - Duration::days(3));
    sub.meta
        .insert("stripe_subscription_id".into(), json!("sub_1"));
    store.insert_subscription(&sub).await.unwrap();
    let config = WebhookConfig::new(SECRET)
        .unwrap()
        .with_clock(ManualClock::new(t0()));
    let url = serve(webhook_router(store.clone(), config)).await;
    (store, acme, url)
}

#[tokio::test]
async fn a_store_failure_answers_500_and_stripes_retry_is_applied() {
    let (store, acme, url) = flaky(true, 0).await;
    let body = event(
        "evt_1",
        "customer.subscription.deleted",
        t0(),
        json!({"id": "sub_1"}),
    );
    let signature = sign(t0().timestamp(), &body, SECRET);

    let (status, reply) = post(&url, Some(signature.clone()), &body).await;
    assert_eq!(status, 500);
    assert_eq!(reply["error"], "internal error", "no store details leak");
    assert_eq!(
        store.inner.subscriptions(&acme).await.unwrap()[0].1.ends_at,
        None
    );

    store.failing.store(false, Ordering::SeqCst);
    let (status, reply) = post(&url, Some(signature), &body).await;
    assert_eq!((status, reply["outcome"].as_str()), (200, Some("applied")));
    assert_eq!(
        store.inner.subscriptions(&acme).await.unwrap()[0].1.ends_at,
        Some(t0())
    );
}

#[tokio::test]
async fn a_write_from_another_instance_in_between_is_kept_not_overwritten() {
    let (store, acme, url) = flaky(false, 1).await;
    let body = event(
        "evt_race",
        "invoice.payment_failed",
        t0(),
        failed_invoice("in_1"),
    );
    let (status, reply) = post(&url, Some(sign(t0().timestamp(), &body, SECRET)), &body).await;
    assert_eq!((status, reply["outcome"].as_str()), (200, Some("applied")));

    assert_eq!(
        store.staged.load(Ordering::SeqCst),
        1,
        "the race was staged"
    );
    let (_, stored) = store.inner.subscriptions(&acme).await.unwrap().remove(0);
    assert_eq!(
        stored.meta.get("changed_elsewhere"),
        Some(&json!(1)),
        "the other instance's write was undone"
    );
    assert_eq!(stored.grace_ends_at, Some(t0() + Duration::days(7)));
}

#[tokio::test]
async fn a_subscription_that_keeps_changing_answers_500_for_stripe_to_retry() {
    let (store, acme, url) = flaky(false, usize::MAX).await;
    let body = event(
        "evt_busy",
        "invoice.payment_failed",
        t0(),
        failed_invoice("in_1"),
    );
    let signature = sign(t0().timestamp(), &body, SECRET);
    let (status, reply) = post(&url, Some(signature.clone()), &body).await;
    assert_eq!(status, 500);
    assert_eq!(reply["error"], "internal error");
    assert_eq!(
        store.staged.load(Ordering::SeqCst),
        8,
        "a bounded number of attempts"
    );
    let (_, stored) = store.inner.subscriptions(&acme).await.unwrap().remove(0);
    assert_eq!(
        stored.grace_ends_at, None,
        "nothing of the event was written"
    );

    // Stripe's retry, once the subscription is quiet, applies the event.
    store.races.store(0, Ordering::SeqCst);
    let (status, reply) = post(&url, Some(signature), &body).await;
    assert_eq!((status, reply["outcome"].as_str()), (200, Some("applied")));
    let (_, stored) = store.inner.subscriptions(&acme).await.unwrap().remove(0);
    assert_eq!(stored.grace_ends_at, Some(t0() + Duration::days(7)));
    assert_eq!(stored.meta.get("changed_elsewhere"), Some(&json!(8)));
}

#[tokio::test]
async fn instances_sharing_an_event_log_process_an_event_once() {
    let store = Arc::new(MemoryStore::new());
    let mut sub = Subscription::new(
        Billable::new("team", "acme"),
        "pro",
        t0() - Duration::days(3),
    );
    sub.meta
        .insert("stripe_subscription_id".into(), json!("sub_1"));
    store.insert_subscription(&sub).await.unwrap();
    let log = Arc::new(MemoryEventLog::new());
    let config = WebhookConfig::new(SECRET)
        .unwrap()
        .with_clock(ManualClock::new(t0()));
    let a = StripeWebhook::new(store.clone(), config.clone()).with_event_log(log.clone());
    let b = StripeWebhook::new(store.clone(), config).with_event_log(log.clone());
    let body = event(
        "evt_1",
        "invoice.payment_failed",
        t0(),
        failed_invoice("in_1"),
    );
    let signature = sign(t0().timestamp(), &body, SECRET);
    let first = a.handle(Some(&signature), body.as_bytes()).await.unwrap();
    let second = b.handle(Some(&signature), body.as_bytes()).await.unwrap();
    assert!(matches!(
        first,
        ai_metering_billing::webhook::WebhookOutcome::Applied { .. }
    ));
    assert!(matches!(
        second,
        ai_metering_billing::webhook::WebhookOutcome::Duplicate { .. }
    ));
    assert_eq!(log.len(), 1);
}

#[test]
fn an_empty_or_short_secret_is_refused_when_configured() {
    use ai_metering_billing::webhook::SecretError;
    assert_eq!(WebhookConfig::new("").unwrap_err(), SecretError::Empty);
    assert_eq!(
        WebhookConfig::new("whsec_").unwrap_err(),
        SecretError::Empty
    );
    assert!(matches!(
        WebhookConfig::new("whsec_1234").unwrap_err(),
        SecretError::TooShort { length: 4, .. }
    ));
    // One bad secret among good ones spoils the whole configuration.
    assert!(matches!(
        WebhookConfig::from_secrets([SECRET, "short"]).unwrap_err(),
        SecretError::TooShort { .. }
    ));
    let none: Vec<String> = Vec::new();
    assert_eq!(
        WebhookConfig::from_secrets(none).unwrap_err(),
        SecretError::NoSecrets
    );
}

#[tokio::test]
async fn during_a_secret_roll_either_active_secret_verifies() {
    const NEW: &str = "whsec_rolled_in_secret_0123456789";
    let store = Arc::new(MemoryStore::new());
    let mut sub = Subscription::new(
        Billable::new("team", "acme"),
        "pro",
        t0() - Duration::days(3),
    );
    sub.meta
        .insert("stripe_subscription_id".into(), json!("sub_1"));
    store.insert_subscription(&sub).await.unwrap();
    let config = WebhookConfig::from_secrets([NEW, SECRET])
        .unwrap()
        .with_clock(ManualClock::new(t0()));
    let hook = StripeWebhook::new(store, config);
    let t = t0().timestamp();
    for (id, secret) in [("evt_old", SECRET), ("evt_new", NEW)] {
        let body = event(id, "invoice.payment_failed", t0(), failed_invoice(id));
        let outcome = hook
            .handle(Some(&sign(t, &body, secret)), body.as_bytes())
            .await;
        assert!(outcome.is_ok(), "{id}: {outcome:?}");
    }
    // Both signatures in one header, as Stripe sends them while both are active.
    let body = event("evt_both", "invoice.paid", t0(), failed_invoice("in_b"));
    let both = format!(
        "{},{}",
        sign(t, &body, NEW),
        sign(t, &body, SECRET).split_once(',').unwrap().1
    );
    assert!(hook.handle(Some(&both), body.as_bytes()).await.is_ok());
    // A secret that was rolled out no longer verifies.
    let body = event("evt_retired", "invoice.paid", t0(), failed_invoice("in_r"));
    let retired = sign(t, &body, "whsec_retired_secret_0123456789");
    let err = hook
        .handle(Some(&retired), body.as_bytes())
        .await
        .unwrap_err();
    assert_eq!(err.status(), axum::http::StatusCode::BAD_REQUEST);
}
