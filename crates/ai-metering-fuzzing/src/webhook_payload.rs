//! Arbitrary Stripe webhook deliveries.

use std::sync::OnceLock;

use ai_metering_billing::webhook::{StripeWebhook, WebhookConfig, verify_signature};
use ai_metering_core::clock::ManualClock;
use ai_metering_core::plan::Subscription;
use ai_metering_core::store::{MemoryStore, SubscriptionStore};
use ai_metering_core::{Billable, Metering};
use chrono::{DateTime, Duration, TimeZone, Utc};
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

const SECRET: &str = "whsec_fuzz_target_secret_0123456789";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 6, 10, 12, 0, 0)
        .single()
        .unwrap_or(DateTime::UNIX_EPOCH)
}

fn runtime() -> Option<&'static tokio::runtime::Runtime> {
    static RUNTIME: OnceLock<Option<tokio::runtime::Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| tokio::runtime::Builder::new_current_thread().build().ok())
        .as_ref()
}

fn sign(body: &[u8]) -> Option<String> {
    let t = now().timestamp();
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).ok()?;
    mac.update(format!("{t}.").as_bytes());
    mac.update(body);
    Some(format!(
        "t={t},v1={}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// The first line is a `Stripe-Signature` header for `verify_signature`; the rest is a body
/// that is signed correctly and handed to `StripeWebhook::handle` with a subscription to act
/// on, so event parsing and application run on arbitrary JSON. Every outcome is a value or
/// a typed error.
pub fn webhook_payload(data: &[u8]) {
    let (header, body) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &[][..]),
    };
    if let Ok(header) = std::str::from_utf8(header) {
        let _ = verify_signature(header, body, SECRET, Duration::seconds(300), now());
    }
    let (Some(runtime), Some(signature)) = (runtime(), sign(body)) else {
        return;
    };
    runtime.block_on(async {
        let metering = Metering::builder(MemoryStore::new())
            .clock(ManualClock::new(now()))
            .build();
        let mut sub = Subscription::new(
            Billable::new("team", "acme"),
            "pro",
            now() - Duration::days(40),
        );
        sub.meta
            .insert("stripe_subscription_id".into(), "sub_1".into());
        sub.meta.insert("stripe_customer_id".into(), "cus_1".into());
        if metering.store().insert_subscription(&sub).await.is_err() {
            return;
        }
        let Ok(config) = WebhookConfig::new(SECRET) else {
            return;
        };
        let webhook = StripeWebhook::new(metering, config.with_clock(ManualClock::new(now())));
        let _ = webhook.handle(Some(&signature), body).await;
    });
}
