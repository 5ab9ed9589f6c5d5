//! The demo's accounts: API keys, the billables they stand for, and their situation.

use ai_metering_core::Billable;

/// One demo account.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    /// The API key (`Authorization: Bearer <key>`), imported into the demo database's keys
    /// (published, so the demo serves loopback only).
    pub key: &'static str,
    /// Billable kind.
    pub kind: &'static str,
    /// Billable id.
    pub id: &'static str,
    /// Plan slug.
    pub plan: &'static str,
    /// Credits mode.
    pub credits: bool,
    /// Usage seeded in the current period, in per mille of the plan's token limit (or
    /// tokens, for plans without one).
    pub used_per_mille: u64,
    /// What to expect, for the banner.
    pub story: &'static str,
}

impl Account {
    /// The billable.
    pub fn billable(&self) -> Billable {
        Billable::new(self.kind, self.id)
    }
}

/// Every demo account.
pub const ACCOUNTS: &[Account] = &[
    Account {
        key: "sk-demo-alice",
        kind: "user",
        id: "alice",
        plan: "starter",
        credits: false,
        used_per_mille: 900,
        story: "starter plan, 90% used: a few calls until 429",
    },
    Account {
        key: "sk-demo-bob",
        kind: "user",
        id: "bob",
        plan: "starter",
        credits: false,
        used_per_mille: 1_050,
        story: "starter plan, over its limit: every call gets 429",
    },
    Account {
        key: "sk-demo-acme",
        kind: "team",
        id: "acme",
        plan: "payg",
        credits: true,
        used_per_mille: 400,
        story: "pay-as-you-go, credits mode: each call is paid from its wallet",
    },
    Account {
        key: "sk-demo-globex",
        kind: "team",
        id: "globex",
        plan: "pro",
        credits: false,
        used_per_mille: 300,
        story: "pro plan, 30% used",
    },
    Account {
        key: "sk-demo-initech",
        kind: "team",
        id: "initech",
        plan: "growth",
        credits: false,
        used_per_mille: 1_100,
        story: "growth plan, over its limit with overage charged",
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique() {
        for (i, a) in ACCOUNTS.iter().enumerate() {
            assert!(
                ACCOUNTS[i + 1..]
                    .iter()
                    .all(|b| b.key != a.key && b.billable() != a.billable())
            );
        }
    }
}
