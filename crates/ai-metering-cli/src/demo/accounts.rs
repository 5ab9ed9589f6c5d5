//! The demo's accounts: API keys, the billables they stand for, and their situation.

use ai_metering_cli::demo_request::bearer_key;
use ai_metering_core::Billable;
use axum::http::header;
use axum::http::request::Parts;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// One demo account.
#[derive(Debug, Clone, Copy)]
pub struct Account {
    /// The API key (`Authorization: Bearer <key>`).
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

/// The account whose key is in the request's `Authorization: Bearer` header.
pub fn account_for(parts: &Parts) -> Option<&'static Account> {
    let value = parts.headers.get(header::AUTHORIZATION)?;
    account_with_key(bearer_key(value.as_bytes())?)
}

/// The account whose API key is `key`. Keys are compared as SHA-256 digests, in constant
/// time and against every account, so the time an answer takes tells nothing about how much
/// of a key was right.
pub fn account_with_key(key: &str) -> Option<&'static Account> {
    let presented = Sha256::digest(key.as_bytes());
    let mut found = None;
    for account in ACCOUNTS {
        let expected = Sha256::digest(account.key.as_bytes());
        if bool::from(presented.as_slice().ct_eq(expected.as_slice())) {
            found = Some(account);
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(auth: Option<&str>) -> Parts {
        let mut b = axum::http::Request::builder();
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn bearer_keys_resolve_to_their_billables() {
        let a = account_for(&parts(Some("Bearer sk-demo-alice"))).unwrap();
        assert_eq!(a.billable(), Billable::new("user", "alice"));
        assert!(account_for(&parts(Some("bearer  sk-demo-bob "))).is_some());
        assert!(account_for(&parts(Some("Bearer sk-wrong"))).is_none());
        assert!(account_for(&parts(Some("Basic sk-demo-alice"))).is_none());
        assert!(account_for(&parts(None)).is_none());
    }

    #[test]
    fn only_the_exact_key_matches() {
        assert_eq!(account_with_key("sk-demo-acme").map(|a| a.id), Some("acme"));
        for wrong in [
            "",
            "sk-demo-acm",
            "sk-demo-acmee",
            "SK-DEMO-ACME",
            "sk-demo-acme\0",
        ] {
            assert!(account_with_key(wrong).is_none(), "{wrong:?}");
        }
    }

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
