//! Events: what happened, for sinks the host registers and for `tracing`.
//!
//! Every event is logged as a `tracing` event (target `ai_metering`) and handed to each
//! registered [`EventSink`]. A sink is any `Fn(&MeterEvent)`, or a [`BroadcastSink`] that
//! forwards events to async subscribers through a `tokio::sync::broadcast` channel.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::billable::Billable;
use crate::limit::{LimitCheck, LimitKind};
use crate::money::Money;
use crate::period::Period;
use crate::plan::BillingMode;
use crate::store::UsageRecord;

/// Something that happened while metering.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
#[non_exhaustive]
pub enum MeterEvent {
    /// A call's usage was recorded.
    UsageRecorded {
        /// The stored row.
        record: Box<UsageRecord>,
        /// The limit check after this usage.
        check: Box<LimitCheck>,
    },
    /// Usage reached an approaching threshold; fires once per threshold, period and billable.
    LimitApproaching {
        /// Whose usage.
        billable: Billable,
        /// The threshold reached, in percent.
        threshold: Decimal,
        /// The usage percentage.
        usage_percentage: Decimal,
        /// The period.
        period: Period,
    },
    /// A hard limit was reached (a call was refused, or usage went past it under the
    /// `charge` or `allow` policy).
    LimitReached {
        /// Whose usage.
        billable: Billable,
        /// Which limit.
        limit: LimitKind,
        /// The usage percentage.
        usage_percentage: Decimal,
        /// The period.
        period: Option<Period>,
    },
    /// The provider call failed; nothing was charged.
    ProviderCallFailed {
        /// Who would have paid.
        billable: Billable,
        /// Provider name.
        provider: String,
        /// Model name.
        model: String,
        /// The error's message.
        error: String,
    },
    /// Usage beyond a limit was recorded as overage.
    OverageCharged {
        /// Who is charged.
        billable: Billable,
        /// The usage row that caused it.
        usage_id: i64,
        /// Tokens beyond the limit.
        tokens: u64,
        /// The amount.
        amount: Money,
    },
    /// A billable moved to another plan.
    PlanChanged {
        /// Whose plan.
        billable: Billable,
        /// The old plan's slug.
        from: Option<String>,
        /// The new plan's slug.
        to: String,
    },
    /// Credits were added to a wallet.
    CreditsAdded {
        /// Whose wallet.
        billable: Billable,
        /// The amount.
        amount: Money,
        /// Why.
        reason: String,
        /// The balance afterwards.
        balance_after: Decimal,
    },
    /// Credits were deducted from a wallet.
    CreditsDeducted {
        /// Whose wallet.
        billable: Billable,
        /// The amount.
        amount: Money,
        /// Why.
        reason: String,
        /// The balance afterwards.
        balance_after: Decimal,
    },
    /// A subscription's billing mode was switched
    /// ([`Metering::set_billing_mode`](crate::Metering::set_billing_mode)).
    BillingModeChanged {
        /// Whose subscription.
        billable: Billable,
        /// The mode before.
        from: BillingMode,
        /// The mode now.
        to: BillingMode,
    },
    /// A subscription ended.
    SubscriptionExpired {
        /// Whose subscription.
        billable: Billable,
        /// When it ended.
        ended_at: DateTime<Utc>,
    },
}

impl MeterEvent {
    /// The event's name, as in the serialised `event` field (`usage_recorded`...).
    pub fn name(&self) -> &'static str {
        match self {
            Self::UsageRecorded { .. } => "usage_recorded",
            Self::LimitApproaching { .. } => "limit_approaching",
            Self::LimitReached { .. } => "limit_reached",
            Self::ProviderCallFailed { .. } => "provider_call_failed",
            Self::OverageCharged { .. } => "overage_charged",
            Self::PlanChanged { .. } => "plan_changed",
            Self::CreditsAdded { .. } => "credits_added",
            Self::CreditsDeducted { .. } => "credits_deducted",
            Self::BillingModeChanged { .. } => "billing_mode_changed",
            Self::SubscriptionExpired { .. } => "subscription_expired",
        }
    }

    /// The billable the event concerns.
    pub fn billable(&self) -> &Billable {
        match self {
            Self::UsageRecorded { record, .. } => &record.entry.billable,
            Self::LimitApproaching { billable, .. }
            | Self::LimitReached { billable, .. }
            | Self::ProviderCallFailed { billable, .. }
            | Self::OverageCharged { billable, .. }
            | Self::PlanChanged { billable, .. }
            | Self::CreditsAdded { billable, .. }
            | Self::CreditsDeducted { billable, .. }
            | Self::BillingModeChanged { billable, .. }
            | Self::SubscriptionExpired { billable, .. } => billable,
        }
    }
}

/// Receives events. Implemented for every `Fn(&MeterEvent) + Send + Sync`.
///
/// Sinks run inline on the metering path: keep them quick and hand slow work to a task (the
/// [`BroadcastSink`] does exactly that).
pub trait EventSink: Send + Sync + 'static {
    /// Handles one event.
    fn handle(&self, event: &MeterEvent);
}

impl<F> EventSink for F
where
    F: Fn(&MeterEvent) + Send + Sync + 'static,
{
    fn handle(&self, event: &MeterEvent) {
        self(event)
    }
}

/// Forwards events to a `tokio::sync::broadcast` channel.
///
/// ```
/// use ai_metering_core::events::BroadcastSink;
/// let (sink, mut rx) = BroadcastSink::new(64);
/// # drop((sink, rx.try_recv()));
/// ```
#[derive(Debug, Clone)]
pub struct BroadcastSink(tokio::sync::broadcast::Sender<MeterEvent>);

impl BroadcastSink {
    /// A sink with a channel of `capacity` events, and a first receiver.
    pub fn new(capacity: usize) -> (Self, tokio::sync::broadcast::Receiver<MeterEvent>) {
        let (tx, rx) = tokio::sync::broadcast::channel(capacity.max(1));
        (Self(tx), rx)
    }

    /// Another receiver of the same events.
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<MeterEvent> {
        self.0.subscribe()
    }
}

impl EventSink for BroadcastSink {
    fn handle(&self, event: &MeterEvent) {
        // No receiver is not an error: nobody is listening right now.
        let _ = self.0.send(event.clone());
    }
}

/// The registered sinks; emits to `tracing` and to each sink.
#[derive(Clone, Default)]
pub(crate) struct Events {
    sinks: Vec<Arc<dyn EventSink>>,
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("sinks", &self.sinks.len())
            .finish()
    }
}

impl Events {
    pub(crate) fn add(&mut self, sink: Arc<dyn EventSink>) {
        self.sinks.push(sink);
    }

    pub(crate) fn emit(&self, event: MeterEvent) {
        let billable = event.billable().to_string();
        match &event {
            MeterEvent::ProviderCallFailed { error, .. } => {
                tracing::warn!(target: "ai_metering", event = event.name(), %billable, %error, "AI provider call failed");
            }
            MeterEvent::LimitReached { limit, .. } => {
                tracing::info!(target: "ai_metering", event = event.name(), %billable, %limit, "AI usage limit reached");
            }
            _ => tracing::info!(target: "ai_metering", event = event.name(), %billable),
        }
        for sink in &self.sinks {
            sink.handle(&event);
        }
    }
}
