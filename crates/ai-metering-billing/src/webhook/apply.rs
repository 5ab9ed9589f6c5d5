//! What each handled event does to a [`Subscription`]: pure functions, so every rule is
//! tested without HTTP or a store. The rules are documented on the
//! [module](crate::webhook#what-each-event-does).

use ai_metering_core::plan::Subscription;
use chrono::{DateTime, Duration, Utc};
use serde_json::Value;

use crate::webhook::event::{StripeSubscription, timestamp};

/// `meta` key: the `created` time (Unix seconds) of the last event applied.
pub const LAST_EVENT_META_KEY: &str = "stripe_event_created";
/// `meta` key: when the payment failure being graced happened (Unix seconds).
pub const PAYMENT_FAILED_AT_META_KEY: &str = "stripe_payment_failed_at";
/// `meta` key: `ends_at` before the payment failure (Unix seconds, or null for none), put
/// back when the payment recovers.
pub const ENDS_BEFORE_FAILURE_META_KEY: &str = "stripe_ends_at_before_payment_failure";

/// True when an event created at `created` is older than the last one applied.
pub(crate) fn is_stale(sub: &Subscription, created: i64) -> bool {
    sub.meta
        .get(LAST_EVENT_META_KEY)
        .and_then(Value::as_i64)
        .is_some_and(|last| created < last)
}

/// Remembers that an event created at `created` was applied.
pub(crate) fn mark_event(sub: &mut Subscription, created: i64) {
    sub.meta
        .insert(LAST_EVENT_META_KEY.to_owned(), Value::from(created));
}

fn in_payment_failure(sub: &Subscription) -> bool {
    sub.meta.contains_key(PAYMENT_FAILED_AT_META_KEY)
}

fn end_no_earlier_than_start(sub: &Subscription, end: DateTime<Utc>) -> DateTime<Utc> {
    end.max(sub.started_at)
}

/// Ends a payment-failure episode: grace cleared, markers removed. Returns the `ends_at`
/// saved when it started (`None` also when there was no episode).
fn end_payment_failure(sub: &mut Subscription) -> Option<DateTime<Utc>> {
    sub.meta.remove(PAYMENT_FAILED_AT_META_KEY)?;
    sub.grace_ends_at = None;
    sub.meta
        .remove(ENDS_BEFORE_FAILURE_META_KEY)
        .and_then(|v| v.as_i64())
        .and_then(timestamp)
}

/// `customer.subscription.updated`.
pub(crate) fn subscription_updated(
    sub: &mut Subscription,
    stripe: &StripeSubscription,
    now: DateTime<Utc>,
) {
    if let Some(end) = stripe.current_period_end() {
        sub.renews_at = Some(end);
    }
    if let Some(trial_end) = stripe.trial_end.and_then(timestamp) {
        sub.trial_ends_at = Some(trial_end);
    }
    let scheduled = stripe
        .scheduled_end()
        .map(|e| end_no_earlier_than_start(sub, e));
    let period_end_unknown =
        stripe.cancel_at_period_end == Some(true) && stripe.current_period_end().is_none();
    match stripe.status.as_deref() {
        Some("canceled" | "incomplete_expired") => {
            end_canceled(sub, stripe, now);
        }
        Some("active" | "trialing") => {
            // Paid up: a payment-failure grace is over; the end is Stripe's schedule.
            end_payment_failure(sub);
            if !(period_end_unknown && scheduled.is_none()) {
                sub.ends_at = scheduled;
            }
        }
        _ => {
            // past_due, unpaid, incomplete, paused: never extend access here. A scheduled
            // end applies, but cannot postpone a payment-failure end.
            if let Some(end) = scheduled {
                if in_payment_failure(sub) {
                    sub.meta.insert(
                        ENDS_BEFORE_FAILURE_META_KEY.to_owned(),
                        Value::from(end.timestamp()),
                    );
                    sub.ends_at = Some(sub.ends_at.map_or(end, |e| e.min(end)));
                } else {
                    sub.ends_at = Some(end);
                }
            }
        }
    }
}

/// `customer.subscription.deleted`; returns the end applied.
pub(crate) fn subscription_deleted(
    sub: &mut Subscription,
    stripe: &StripeSubscription,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    let end = end_canceled(sub, stripe, now);
    sub.renews_at = None;
    end
}

/// Ends `sub` as Stripe canceled it: at `ended_at`, else `canceled_at`, else `now`, never
/// before its start; a payment-failure episode ends with it. Returns the end applied.
fn end_canceled(
    sub: &mut Subscription,
    stripe: &StripeSubscription,
    now: DateTime<Utc>,
) -> DateTime<Utc> {
    end_payment_failure(sub);
    let end = stripe
        .ended_at
        .or(stripe.canceled_at)
        .and_then(timestamp)
        .unwrap_or(now);
    let end = end_no_earlier_than_start(sub, end);
    sub.ends_at = Some(end);
    end
}

/// `invoice.payment_failed`; true when the subscription changed.
pub(crate) fn payment_failed(sub: &mut Subscription, now: DateTime<Utc>, grace_days: u32) -> bool {
    if in_payment_failure(sub) {
        // A repeated failure: the grace stays first failure + grace_days.
        return false;
    }
    if !sub.is_active(now) {
        return false;
    }
    sub.meta.insert(
        ENDS_BEFORE_FAILURE_META_KEY.to_owned(),
        sub.ends_at
            .map_or(Value::Null, |e| Value::from(e.timestamp())),
    );
    sub.meta.insert(
        PAYMENT_FAILED_AT_META_KEY.to_owned(),
        Value::from(now.timestamp()),
    );
    sub.ends_at = Some(sub.ends_at.map_or(now, |e| e.min(now)));
    sub.grace_ends_at = (grace_days > 0).then(|| {
        now.checked_add_signed(Duration::days(i64::from(grace_days)))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    });
    true
}

/// `invoice.paid`: ends a payment-failure episode; true when the subscription changed.
pub(crate) fn payment_recovered(sub: &mut Subscription) -> bool {
    if !in_payment_failure(sub) {
        return false;
    }
    sub.ends_at = end_payment_failure(sub);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_metering_core::Billable;
    use chrono::TimeZone;
    use serde_json::json;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 5, day, 0, 0, 0).unwrap()
    }

    fn sub() -> Subscription {
        Subscription::new(Billable::new("team", "acme"), "pro", t(1))
    }

    fn stripe(v: serde_json::Value) -> StripeSubscription {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn cancel_at_period_end_ends_at_the_period_end_not_at_canceled_at() {
        let mut s = sub();
        let obj = stripe(json!({
            "id": "sub_1", "status": "active", "cancel_at_period_end": true,
            "canceled_at": t(10).timestamp(),
            "items": {"data": [{"current_period_end": t(31).timestamp()}]}
        }));
        subscription_updated(&mut s, &obj, t(10));
        assert_eq!(s.ends_at, Some(t(31)));
        assert_eq!(s.renews_at, Some(t(31)));
        assert_eq!(s.started_at, t(1), "the start is never overwritten");
        assert!(s.is_active(t(30)));
    }

    #[test]
    fn reactivation_clears_the_end_and_the_payment_grace() {
        let mut s = sub();
        assert!(payment_failed(&mut s, t(5), 7));
        let obj = stripe(
            json!({"id": "sub_1", "status": "active", "current_period_end": t(31).timestamp()}),
        );
        subscription_updated(&mut s, &obj, t(6));
        assert_eq!(s.ends_at, None);
        assert_eq!(s.grace_ends_at, None);
        assert!(!s.meta.contains_key(PAYMENT_FAILED_AT_META_KEY));
    }

    #[test]
    fn past_due_never_extends_a_payment_failure() {
        let mut s = sub();
        assert!(payment_failed(&mut s, t(5), 7));
        let obj = stripe(json!({
            "id": "sub_1", "status": "past_due", "cancel_at": t(20).timestamp()
        }));
        subscription_updated(&mut s, &obj, t(6));
        assert_eq!(s.ends_at, Some(t(5)));
        assert_eq!(s.grace_ends_at, Some(t(12)));
        // When the payment recovers, the scheduled cancellation is what remains.
        assert!(payment_recovered(&mut s));
        assert_eq!(s.ends_at, Some(t(20)));
    }

    #[test]
    fn canceled_status_ends_at_ended_at() {
        let mut s = sub();
        let obj = stripe(json!({
            "id": "sub_1", "status": "canceled", "ended_at": t(9).timestamp(), "canceled_at": t(8).timestamp()
        }));
        subscription_updated(&mut s, &obj, t(10));
        assert_eq!(s.ends_at, Some(t(9)));
    }

    #[test]
    fn deletion_never_reopens_and_falls_back_to_now() {
        let mut s = sub();
        let end = subscription_deleted(&mut s, &stripe(json!({"id": "sub_1"})), t(10));
        assert_eq!((end, s.ends_at), (t(10), Some(t(10))));
        let mut s = sub();
        let obj = stripe(json!({"id": "sub_1", "canceled_at": t(3).timestamp()}));
        assert_eq!(subscription_deleted(&mut s, &obj, t(10)), t(3));
    }

    #[test]
    fn payment_failure_grace_takes_effect_and_is_capped() {
        let mut s = sub();
        assert!(payment_failed(&mut s, t(5), 7));
        assert_eq!(s.ends_at, Some(t(5)));
        assert_eq!(s.grace_ends_at, Some(t(12)));
        assert!(s.is_active(t(11)), "grace keeps it active");
        assert!(!s.is_active(t(12)), "and ends");
        // A second failure does not push the grace further out.
        assert!(!payment_failed(&mut s, t(9), 7));
        assert_eq!(s.grace_ends_at, Some(t(12)));
        // Recovery puts back the open end.
        assert!(payment_recovered(&mut s));
        assert_eq!((s.ends_at, s.grace_ends_at), (None, None));
        assert!(!payment_recovered(&mut s));
    }

    #[test]
    fn no_grace_days_ends_at_once_and_ended_subscriptions_stay_ended() {
        let mut s = sub();
        assert!(payment_failed(&mut s, t(5), 0));
        assert_eq!((s.ends_at, s.grace_ends_at), (Some(t(5)), None));
        let mut ended = sub().ending_at(t(3));
        assert!(!payment_failed(&mut ended, t(5), 7));
        assert_eq!(ended.grace_ends_at, None);
    }

    #[test]
    fn stale_events_are_detected() {
        let mut s = sub();
        assert!(!is_stale(&s, 10));
        mark_event(&mut s, 10);
        assert!(!is_stale(&s, 10));
        assert!(is_stale(&s, 9));
    }
}
