//! Plans, subscriptions and limit overrides: what a billable is entitled to.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::billable::Billable;
use crate::error::{Error, Result};

/// What happens to usage beyond a plan's limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OveragePolicy {
    /// Refuse calls once the limit is reached (the default).
    #[default]
    Block,
    /// Let calls through and record the usage beyond the limit as billable overage.
    Charge,
    /// Let calls through without charging anything extra.
    Allow,
}

impl OveragePolicy {
    /// The configuration name: `block`, `charge` or `allow`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Block => "block",
            Self::Charge => "charge",
            Self::Allow => "allow",
        }
    }
}

impl fmt::Display for OveragePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OveragePolicy {
    type Err = Error;

    /// An unknown policy is an error, never silently treated as `allow`.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "block" => Ok(Self::Block),
            "charge" => Ok(Self::Charge),
            "allow" => Ok(Self::Allow),
            _ => Err(Error::InvalidInput(format!(
                "overage policy {s:?} is not one of block, charge, allow"
            ))),
        }
    }
}

/// How a subscription pays for its usage.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BillingMode {
    /// Usage counts against the plan's limits.
    #[default]
    Plan,
    /// Usage is paid from a prepaid credit wallet (the plan's limits still apply).
    Credits,
}

impl BillingMode {
    /// The configuration name: `plan` or `credits`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Credits => "credits",
        }
    }
}

impl fmt::Display for BillingMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BillingMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "plan" => Ok(Self::Plan),
            "credits" => Ok(Self::Credits),
            _ => Err(Error::InvalidInput(format!(
                "billing mode {s:?} is not one of plan, credits"
            ))),
        }
    }
}

/// A plan: the limits a subscription gets each period.
///
/// ```
/// use ai_metering_core::plan::{OveragePolicy, Plan};
/// use rust_decimal::Decimal;
///
/// let pro = Plan::new("pro", "Pro")
///     .with_token_limit(1_000_000)
///     .with_cost_limit(Decimal::from(100))
///     .with_overage(OveragePolicy::Charge, Some(Decimal::new(1, 2)));
/// assert_eq!(pro.token_limit, Some(1_000_000));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Unique, stable key of the plan (`basic`, `pro`).
    pub slug: String,
    /// Name shown to people.
    pub name: String,
    /// Tokens allowed per period; `None` means no token limit.
    pub token_limit: Option<u64>,
    /// Cost allowed per period (in the catalog's currency); `None` means no cost limit.
    pub cost_limit: Option<Decimal>,
    /// Price per 1,000 tokens of overage; `None` bills overage at the usage's own cost.
    pub overage_price_per_1k_tokens: Option<Decimal>,
    /// The plan's overage policy; `None` uses the global default.
    pub overage_policy: Option<OveragePolicy>,
    /// An inactive plan imposes no limits.
    pub active: bool,
}

impl Plan {
    /// An active plan without limits.
    pub fn new(slug: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            slug: slug.into(),
            name: name.into(),
            token_limit: None,
            cost_limit: None,
            overage_price_per_1k_tokens: None,
            overage_policy: None,
            active: true,
        }
    }

    /// Sets the token limit per period.
    ///
    /// ```
    /// # use ai_metering_core::plan::Plan;
    /// assert_eq!(Plan::new("a", "A").with_token_limit(10).token_limit, Some(10));
    /// ```
    pub fn with_token_limit(mut self, tokens: u64) -> Self {
        self.token_limit = Some(tokens);
        self
    }

    /// Sets the cost limit per period.
    ///
    /// ```
    /// # use ai_metering_core::plan::Plan;
    /// # use rust_decimal::Decimal;
    /// assert!(Plan::new("a", "A").with_cost_limit(Decimal::TEN).cost_limit.is_some());
    /// ```
    pub fn with_cost_limit(mut self, cost: Decimal) -> Self {
        self.cost_limit = Some(cost);
        self
    }

    /// Sets the overage policy and, optionally, the overage price per 1,000 tokens.
    ///
    /// ```
    /// # use ai_metering_core::plan::{OveragePolicy, Plan};
    /// let p = Plan::new("a", "A").with_overage(OveragePolicy::Allow, None);
    /// assert_eq!(p.overage_policy, Some(OveragePolicy::Allow));
    /// ```
    pub fn with_overage(mut self, policy: OveragePolicy, price_per_1k: Option<Decimal>) -> Self {
        self.overage_policy = Some(policy);
        self.overage_price_per_1k_tokens = price_per_1k;
        self
    }

    /// Marks the plan inactive (no limits apply).
    ///
    /// ```
    /// # use ai_metering_core::plan::Plan;
    /// assert!(!Plan::new("a", "A").inactive().active);
    /// ```
    pub fn inactive(mut self) -> Self {
        self.active = false;
        self
    }

    /// Checks the plan's own values: a slug and a name, no negative money.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the offending field.
    pub fn validate(&self) -> Result<()> {
        if self.slug.trim().is_empty() || self.slug.len() > 100 {
            return Err(Error::InvalidInput(
                "plan slug must be 1 to 100 characters".into(),
            ));
        }
        if self.name.trim().is_empty() {
            return Err(Error::InvalidInput(format!(
                "plan {:?} needs a name",
                self.slug
            )));
        }
        for (field, value) in [
            ("cost_limit", self.cost_limit),
            (
                "overage_price_per_1k_tokens",
                self.overage_price_per_1k_tokens,
            ),
        ] {
            if value.is_some_and(|v| v.is_sign_negative()) {
                return Err(Error::InvalidInput(format!(
                    "plan {:?}: {field} must not be negative",
                    self.slug
                )));
            }
        }
        Ok(())
    }
}

/// A billable's subscription to a plan.
///
/// All instants are UTC. A subscription is active from `started_at` (a future-dated one is not
/// active yet) until `ends_at`, or until `grace_ends_at` when that is later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subscription {
    /// Who is subscribed.
    pub billable: Billable,
    /// Slug of the plan; `None` means no limits (plan mode only: credits mode needs a plan).
    pub plan: Option<String>,
    /// How usage is paid for.
    pub billing_mode: BillingMode,
    /// When the subscription starts; also the anchor of subscription-anchored periods.
    pub started_at: DateTime<Utc>,
    /// Next renewal, informational.
    pub renews_at: Option<DateTime<Utc>>,
    /// When the subscription ends; `None` for open-ended.
    pub ends_at: Option<DateTime<Utc>>,
    /// End of the trial, if any (limits apply during a trial too).
    pub trial_ends_at: Option<DateTime<Utc>>,
    /// End of a grace period (after a failed payment, say) during which it stays active.
    pub grace_ends_at: Option<DateTime<Utc>>,
    /// The plan before the last plan change.
    pub previous_plan: Option<String>,
    /// When the plan last changed ([`Subscription::with_plan`]): in the period containing
    /// that instant, the new plan's limits apply to the usage since it, and what was used
    /// before counted against the old plan's.
    #[serde(default)]
    pub plan_changed_at: Option<DateTime<Utc>>,
    /// The billable's own time zone for its periods (a daily plan resets at its midnight);
    /// `None` uses the metering's period settings.
    #[serde(default, with = "zone_name")]
    pub time_zone: Option<chrono_tz::Tz>,
    /// Free-form data, such as the payment provider's subscription and customer ids.
    pub meta: serde_json::Map<String, serde_json::Value>,
}

impl Subscription {
    /// An open-ended plan-mode subscription of `billable` to `plan`, starting at `started_at`.
    ///
    /// ```
    /// use ai_metering_core::{Billable, plan::Subscription};
    /// use chrono::{TimeZone, Utc};
    ///
    /// let start = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    /// let sub = Subscription::new(Billable::new("user", 1), "pro", start);
    /// assert!(sub.is_active(start));
    /// ```
    pub fn new(billable: Billable, plan: impl Into<String>, started_at: DateTime<Utc>) -> Self {
        Self {
            billable,
            plan: Some(plan.into()),
            billing_mode: BillingMode::Plan,
            started_at,
            renews_at: None,
            ends_at: None,
            trial_ends_at: None,
            grace_ends_at: None,
            previous_plan: None,
            plan_changed_at: None,
            time_zone: None,
            meta: serde_json::Map::new(),
        }
    }

    /// Computes this subscription's periods in `zone`: a customer in Tokyo on a daily plan
    /// resets at Tokyo's midnight.
    ///
    /// ```
    /// # use ai_metering_core::{Billable, plan::Subscription};
    /// # let t = chrono::Utc::now();
    /// let s = Subscription::new(Billable::new("team", "a"), "pro", t).in_time_zone(chrono_tz::Asia::Tokyo);
    /// assert_eq!(s.time_zone, Some(chrono_tz::Asia::Tokyo));
    /// ```
    pub fn in_time_zone(mut self, zone: chrono_tz::Tz) -> Self {
        self.time_zone = Some(zone);
        self
    }

    /// This subscription moved to `plan` at `at`: the old plan becomes
    /// [`previous_plan`](Self::previous_plan), and [`plan_changed_at`](Self::plan_changed_at)
    /// is `at`. Use [`Metering::change_plan`](crate::Metering::change_plan) to store it and
    /// emit `PlanChanged`.
    ///
    /// ```
    /// # use ai_metering_core::{Billable, plan::Subscription};
    /// # let t = chrono::Utc::now();
    /// let s = Subscription::new(Billable::new("team", "a"), "basic", t).with_plan("pro", t);
    /// assert_eq!((s.plan.as_deref(), s.previous_plan.as_deref()), (Some("pro"), Some("basic")));
    /// ```
    pub fn with_plan(&self, plan: impl Into<String>, at: DateTime<Utc>) -> Self {
        let mut moved = self.clone();
        moved.previous_plan = self.plan.clone();
        moved.plan = Some(plan.into());
        moved.plan_changed_at = Some(at);
        moved
    }

    /// Switches to credits mode.
    ///
    /// ```
    /// # use ai_metering_core::{Billable, plan::{BillingMode, Subscription}};
    /// # let t = chrono::Utc::now();
    /// let s = Subscription::new(Billable::new("team", "a"), "pro", t).with_billing_mode(BillingMode::Credits);
    /// assert_eq!(s.billing_mode, BillingMode::Credits);
    /// ```
    pub fn with_billing_mode(mut self, mode: BillingMode) -> Self {
        self.billing_mode = mode;
        self
    }

    /// Sets the end.
    ///
    /// ```
    /// # use ai_metering_core::{Billable, plan::Subscription};
    /// # let t = chrono::Utc::now();
    /// let s = Subscription::new(Billable::new("team", "a"), "pro", t).ending_at(t);
    /// assert!(!s.is_active(t));
    /// ```
    pub fn ending_at(mut self, at: DateTime<Utc>) -> Self {
        self.ends_at = Some(at);
        self
    }

    /// True when the subscription has started and neither ended nor run out of grace at `at`.
    pub fn is_active(&self, at: DateTime<Utc>) -> bool {
        if at < self.started_at {
            return false;
        }
        let not_ended = self.ends_at.is_none_or(|end| at < end);
        not_ended || self.is_in_grace_period(at)
    }

    /// When the subscription stops being active: its end, or the end of its grace period
    /// when that is later; `None` for an open-ended one.
    ///
    /// ```
    /// # use ai_metering_core::{Billable, plan::Subscription};
    /// # let t = chrono::Utc::now();
    /// let s = Subscription::new(Billable::new("team", "a"), "pro", t).ending_at(t);
    /// assert_eq!(s.ended_at(), Some(t));
    /// ```
    pub fn ended_at(&self) -> Option<DateTime<Utc>> {
        let end = self.ends_at?;
        Some(self.grace_ends_at.map_or(end, |grace| grace.max(end)))
    }

    /// True when the subscription started, and has ended, by `at` (grace included).
    pub fn is_expired(&self, at: DateTime<Utc>) -> bool {
        at >= self.started_at && !self.is_active(at)
    }

    /// True while a trial runs at `at`.
    pub fn is_in_trial(&self, at: DateTime<Utc>) -> bool {
        at >= self.started_at && self.trial_ends_at.is_some_and(|end| at < end)
    }

    /// True while a grace period runs at `at`.
    pub fn is_in_grace_period(&self, at: DateTime<Utc>) -> bool {
        at >= self.started_at && self.grace_ends_at.is_some_and(|end| at < end)
    }

    /// Checks the subscription's own consistency.
    ///
    /// # Errors
    /// [`Error::InvalidInput`]: credits mode without a plan (the plan defines the limits), or an
    /// end before the start.
    pub fn validate(&self) -> Result<()> {
        if self.billing_mode == BillingMode::Credits && self.plan.is_none() {
            return Err(Error::InvalidInput(
                "credits mode subscriptions must have a plan: the plan defines the limits".into(),
            ));
        }
        if self.ends_at.is_some_and(|end| end < self.started_at) {
            return Err(Error::InvalidInput(
                "a subscription cannot end before it starts".into(),
            ));
        }
        Ok(())
    }
}

/// A time zone as its IANA name (`"Asia/Tokyo"`) in serialised subscriptions.
pub(crate) mod zone_name {
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(
        zone: &Option<chrono_tz::Tz>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match zone {
            Some(zone) => serializer.serialize_some(zone.name()),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<chrono_tz::Tz>, D::Error> {
        Option::<String>::deserialize(deserializer)?
            .map(|name| {
                name.parse()
                    .map_err(|_| serde::de::Error::custom(format!("unknown time zone {name:?}")))
            })
            .transpose()
    }
}

/// How a limit override changes one limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "value")]
pub enum LimitValue<T> {
    /// Keep the plan's limit.
    #[default]
    Inherit,
    /// Remove the limit for the period.
    Unlimited,
    /// Replace the limit (raise or lower it).
    Set(T),
}

impl<T: Copy> LimitValue<T> {
    /// Applies this change to the plan's limit.
    ///
    /// ```
    /// # use ai_metering_core::plan::LimitValue;
    /// assert_eq!(LimitValue::Set(5).apply(Some(10)), Some(5));
    /// assert_eq!(LimitValue::<u64>::Unlimited.apply(Some(10)), None);
    /// assert_eq!(LimitValue::<u64>::Inherit.apply(Some(10)), Some(10));
    /// ```
    pub fn apply(self, plan_limit: Option<T>) -> Option<T> {
        match self {
            Self::Inherit => plan_limit,
            Self::Unlimited => None,
            Self::Set(v) => Some(v),
        }
    }
}

/// A change of a billable's limits for a window of time.
///
/// It applies to evaluations at instants `t` with `starts_at <= t < ends_at`, whatever the
/// period's boundaries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitOverride {
    /// Whose limits change.
    pub billable: Billable,
    /// First instant the override applies.
    pub starts_at: DateTime<Utc>,
    /// First instant it no longer applies.
    pub ends_at: DateTime<Utc>,
    /// The token limit change.
    pub token_limit: LimitValue<u64>,
    /// The cost limit change.
    pub cost_limit: LimitValue<Decimal>,
}

impl LimitOverride {
    /// True when the override is in force at `at`.
    pub fn applies_at(&self, at: DateTime<Utc>) -> bool {
        self.starts_at <= at && at < self.ends_at
    }

    /// Checks that the window is not empty.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `ends_at <= starts_at` or a cost limit is negative.
    pub fn validate(&self) -> Result<()> {
        if self.ends_at <= self.starts_at {
            return Err(Error::InvalidInput(
                "a limit override must end after it starts".into(),
            ));
        }
        if matches!(self.cost_limit, LimitValue::Set(c) if c.is_sign_negative()) {
            return Err(Error::InvalidInput(
                "a limit override's cost limit must not be negative".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn t(day: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, day, 0, 0, 0).unwrap()
    }

    fn sub() -> Subscription {
        Subscription::new(Billable::new("user", 1), "pro", t(10))
    }

    #[test]
    fn future_dated_subscription_is_not_active_yet() {
        let s = sub();
        assert!(!s.is_active(t(9)));
        assert!(!s.is_expired(t(9)));
        assert!(s.is_active(t(10)));
    }

    #[test]
    fn ended_subscription_is_expired_unless_in_grace() {
        let mut s = sub().ending_at(t(20));
        assert!(s.is_active(t(19)));
        assert!(s.is_expired(t(20)));
        s.grace_ends_at = Some(t(25));
        assert!(s.is_active(t(22)));
        assert!(s.is_in_grace_period(t(22)));
        assert!(s.is_expired(t(25)));
    }

    #[test]
    fn trial_is_reported_but_active() {
        let mut s = sub();
        s.trial_ends_at = Some(t(17));
        assert!(s.is_in_trial(t(12)));
        assert!(s.is_active(t(12)));
        assert!(!s.is_in_trial(t(17)));
    }

    #[test]
    fn credits_mode_needs_a_plan() {
        let mut s = sub().with_billing_mode(BillingMode::Credits);
        assert!(s.validate().is_ok());
        s.plan = None;
        let err = s.validate().unwrap_err().to_string();
        assert!(err.contains("must have a plan"), "{err}");
    }

    #[test]
    fn override_window_is_half_open() {
        let o = LimitOverride {
            billable: Billable::new("user", 1),
            starts_at: t(1),
            ends_at: t(1) + Duration::days(31),
            token_limit: LimitValue::Set(20_000),
            cost_limit: LimitValue::Inherit,
        };
        assert!(o.applies_at(t(1)));
        assert!(o.applies_at(t(31)));
        assert!(!o.applies_at(t(1) + Duration::days(31)));
        assert!(o.validate().is_ok());
    }

    #[test]
    fn policies_parse_strictly() {
        assert_eq!(
            "CHARGE".parse::<OveragePolicy>().unwrap(),
            OveragePolicy::Charge
        );
        assert!("whatever".parse::<OveragePolicy>().is_err());
        assert_eq!(
            "credits".parse::<BillingMode>().unwrap(),
            BillingMode::Credits
        );
        assert!("free".parse::<BillingMode>().is_err());
    }

    #[test]
    fn plan_validation_names_the_field() {
        let p = Plan::new("x", "X").with_cost_limit(Decimal::NEGATIVE_ONE);
        assert!(p.validate().unwrap_err().to_string().contains("cost_limit"));
        assert!(Plan::new("", "X").validate().is_err());
    }
}
