//! Helpers shared by the integration tests: a temporary workspace with its own SQLite
//! database, and a way to run the built `ai-metering` binary in it.

#![allow(dead_code)] // each test file uses a part of the helpers
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use ai_metering_core::plan::{BillingMode, Plan, Subscription};
use ai_metering_core::pricing::PriceCatalog;
use ai_metering_core::store::{PlanStore, SubscriptionStore, UsageEntry, UsageStore};
use ai_metering_core::{Billable, TokenUsage};
use ai_metering_seaorm::SeaOrmStore;
use chrono::{DateTime, TimeZone, Utc};

/// A temporary directory with a database URL pointing into it.
pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub db: PathBuf,
    pub url: String,
}

/// The result of one run of the binary.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// The stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr: {}",
                self.stdout, self.stderr
            )
        })
    }
}

impl Workspace {
    /// An empty workspace (no database file yet).
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("test.db");
        let url = format!("sqlite://{}?mode=rwc", db.display());
        Self { dir, db, url }
    }

    /// A workspace whose database is migrated.
    pub fn migrated() -> Self {
        let ws = Self::new();
        ws.ok(&["migrate"]);
        ws
    }

    /// Runs the binary with `args`, in the workspace directory, with a clean environment
    /// (only `env` set) and no stdin.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ai-metering"));
        cmd.args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .env("AI_METERING_DATABASE_URL", &self.url)
            .stdin(Stdio::null());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let Output {
            status,
            stdout,
            stderr,
        } = cmd.output().expect("run ai-metering");
        Run {
            code: status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: String::from_utf8_lossy(&stderr).into_owned(),
        }
    }

    /// Runs the binary with `args`.
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_env(args, &[])
    }

    /// Runs and asserts success.
    pub fn ok(&self, args: &[&str]) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, 0,
            "{args:?} failed:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        r
    }

    /// Runs and asserts failure with `code`, and that stderr contains `needle`.
    pub fn fails(&self, args: &[&str], code: i32, needle: &str) -> Run {
        let r = self.run(args);
        assert_eq!(
            r.code, code,
            "{args:?}:\nstdout: {}\nstderr: {}",
            r.stdout, r.stderr
        );
        assert!(
            r.stderr.contains(needle),
            "{args:?}: stderr lacks {needle:?}:\n{}",
            r.stderr
        );
        r
    }

    /// A file path in the workspace.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Opens the store (the database must be migrated).
    pub async fn store(&self) -> SeaOrmStore {
        SeaOrmStore::connect(&self.url).await.expect("connect")
    }
}

/// A UTC instant.
pub fn at(y: i32, m: u32, d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, 0, 0)
        .single()
        .expect("valid instant")
}

/// A usage row priced with the built-in catalog.
pub fn entry(
    billable: &Billable,
    provider: &str,
    model: &str,
    input: u64,
    output: u64,
    occurred_at: DateTime<Utc>,
) -> UsageEntry {
    let usage = TokenUsage::new(input, output).expect("usage");
    let cost = PriceCatalog::builtin()
        .cost(provider, model, &usage)
        .expect("priced");
    UsageEntry {
        billable: billable.clone(),
        user_id: None,
        tenant: None,
        provider: provider.into(),
        model: model.into(),
        feature: Some("chat".into()),
        usage,
        cost,
        metadata: serde_json::Map::new(),
        idempotency_key: None,
        occurred_at,
        estimated: false,
        time_zone: None,
    }
}

/// The standard fixture: plans starter and pro; user:1 on starter, user:2 on pro (from
/// 2023); January 2024 usage on three models for user:1 and one for user:2; February 2024
/// usage for user:1; and two rows from 2020 (old enough for any cleanup).
pub async fn seed_fixture(store: &SeaOrmStore) {
    store
        .upsert_plan(&Plan::new("starter", "Starter").with_token_limit(50_000))
        .await
        .expect("plan");
    store
        .upsert_plan(&Plan::new("pro", "Pro").with_token_limit(1_000_000))
        .await
        .expect("plan");
    let u1 = Billable::new("user", 1);
    let u2 = Billable::new("user", 2);
    let since = at(2023, 1, 1, 0);
    store
        .insert_subscription(&Subscription::new(u1.clone(), "starter", since))
        .await
        .expect("sub");
    store
        .insert_subscription(
            &Subscription::new(u2.clone(), "pro", since).with_billing_mode(BillingMode::Plan),
        )
        .await
        .expect("sub");
    let rows = vec![
        entry(&u1, "openai", "gpt-4o-mini", 1000, 500, at(2024, 1, 5, 10)),
        entry(&u1, "openai", "gpt-4o-mini", 2000, 1000, at(2024, 1, 6, 10)),
        entry(&u1, "openai", "gpt-4o", 300, 200, at(2024, 1, 7, 10)),
        entry(
            &u1,
            "anthropic",
            "claude-sonnet-4-5",
            400,
            100,
            at(2024, 1, 8, 10),
        ),
        entry(&u2, "openai", "gpt-4o-mini", 100, 100, at(2024, 1, 31, 23)),
        entry(&u1, "openai", "gpt-4o-mini", 10, 10, at(2024, 2, 1, 0)),
        entry(&u1, "openai", "gpt-4o-mini", 7, 3, at(2020, 3, 1, 0)),
        entry(&u2, "openai", "gpt-4o", 5, 5, at(2020, 3, 2, 0)),
    ];
    store.insert_usage_batch(&rows).await.expect("usage");
}

/// A migrated workspace with [`seed_fixture`] in it.
pub async fn fixture() -> Workspace {
    let ws = Workspace::migrated();
    let store = ws.store().await;
    seed_fixture(&store).await;
    drop(store);
    ws
}

/// Writes `text` to `name` in the workspace and returns its path.
pub fn write(ws: &Workspace, name: &str, text: &str) -> PathBuf {
    let p = ws.path(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// The path as a `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}
