//! The parts of Stripe's event payloads the webhook reads.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

/// A Stripe event envelope.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct StripeEvent {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Unix seconds.
    pub(crate) created: i64,
    pub(crate) data: EventData,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct EventData {
    pub(crate) object: Value,
}

/// A Stripe subscription object (only the fields used).
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct StripeSubscription {
    pub(crate) id: String,
    pub(crate) status: Option<String>,
    pub(crate) cancel_at_period_end: Option<bool>,
    pub(crate) cancel_at: Option<i64>,
    pub(crate) canceled_at: Option<i64>,
    pub(crate) ended_at: Option<i64>,
    /// On the subscription in API versions before 2025-03-31.
    pub(crate) current_period_end: Option<i64>,
    pub(crate) trial_end: Option<i64>,
    pub(crate) items: Option<ItemList>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ItemList {
    #[serde(default)]
    pub(crate) data: Vec<SubscriptionItem>,
}

/// On each item from API version 2025-03-31.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct SubscriptionItem {
    pub(crate) current_period_end: Option<i64>,
}

impl StripeSubscription {
    /// The current period's end: the subscription's own field, else (newer API versions) the
    /// latest end among its items.
    pub(crate) fn current_period_end(&self) -> Option<DateTime<Utc>> {
        self.current_period_end
            .or_else(|| {
                self.items
                    .as_ref()
                    .and_then(|items| items.data.iter().filter_map(|i| i.current_period_end).max())
            })
            .and_then(timestamp)
    }

    /// When the subscription is scheduled to end: `cancel_at`, else the current period's end
    /// when it cancels at period end.
    pub(crate) fn scheduled_end(&self) -> Option<DateTime<Utc>> {
        self.cancel_at.and_then(timestamp).or_else(|| {
            if self.cancel_at_period_end == Some(true) {
                self.current_period_end()
            } else {
                None
            }
        })
    }
}

/// The invoice fields used: which subscription and customer it bills.
#[derive(Debug, Clone)]
pub(crate) struct StripeInvoice {
    /// The subscription id, from `parent.subscription_details.subscription` (API versions
    /// from 2025-03-31) or `subscription` (before).
    pub(crate) subscription: Option<String>,
    /// True when the payload has one of those fields, even null: then a missing
    /// subscription means a one-off invoice, not an unknown shape.
    pub(crate) has_subscription_field: bool,
    pub(crate) customer: Option<String>,
}

impl StripeInvoice {
    pub(crate) fn from_object(object: &Value) -> Self {
        let parent = object.get("parent");
        let new_style = parent
            .and_then(|p| p.get("subscription_details"))
            .and_then(|d| d.get("subscription"));
        let old_style = object.get("subscription");
        Self {
            subscription: new_style
                .and_then(expandable_id)
                .or_else(|| old_style.and_then(expandable_id)),
            has_subscription_field: parent.is_some() || old_style.is_some(),
            customer: object.get("customer").and_then(expandable_id),
        }
    }
}

/// The id of an expandable field: a string, or an expanded object with an `id`.
pub(crate) fn expandable_id(value: &Value) -> Option<String> {
    match value {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Object(o) => o.get("id").and_then(Value::as_str).map(str::to_owned),
        _ => None,
    }
}

pub(crate) fn timestamp(seconds: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(seconds, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn period_end_comes_from_the_subscription_or_its_items() {
        let old: StripeSubscription =
            serde_json::from_value(json!({"id": "sub_1", "current_period_end": 100})).unwrap();
        assert_eq!(old.current_period_end(), timestamp(100));
        let new: StripeSubscription = serde_json::from_value(json!({
            "id": "sub_1",
            "items": {"object": "list", "data": [
                {"id": "si_1", "current_period_end": 200},
                {"id": "si_2", "current_period_end": 300}
            ]}
        }))
        .unwrap();
        assert_eq!(new.current_period_end(), timestamp(300));
    }

    #[test]
    fn invoices_name_their_subscription_in_either_shape() {
        let new = StripeInvoice::from_object(&json!({
            "customer": "cus_1",
            "parent": {"type": "subscription_details", "subscription_details": {"subscription": "sub_new"}}
        }));
        assert_eq!(new.subscription.as_deref(), Some("sub_new"));
        let old = StripeInvoice::from_object(
            &json!({"customer": {"id": "cus_1"}, "subscription": "sub_old"}),
        );
        assert_eq!(old.subscription.as_deref(), Some("sub_old"));
        assert_eq!(old.customer.as_deref(), Some("cus_1"));
        let one_off = StripeInvoice::from_object(&json!({"customer": "cus_1", "parent": null}));
        assert!(one_off.subscription.is_none() && one_off.has_subscription_field);
        let unknown = StripeInvoice::from_object(&json!({"customer": "cus_1"}));
        assert!(!unknown.has_subscription_field);
    }
}
