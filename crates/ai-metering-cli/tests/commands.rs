//! Every command against a temporary SQLite database, through the built binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use ai_metering_core::period::Period;
use ai_metering_core::store::{
    CreditStore, NewOverage, OverageStore, Page, ReportStore, SubscriptionStore, UsageFilter,
    UsageStore,
};
use ai_metering_core::{Billable, Currency, Money};
use common::{Workspace, at, entry, fixture, s, write};
use rust_decimal::Decimal;

#[test]
fn migrate_creates_the_schema_once() {
    let ws = Workspace::new();
    let first = ws.ok(&["migrate", "--format", "json"]).json();
    assert_eq!(first["applied"], true);
    let second = ws.ok(&["migrate"]);
    assert!(
        second.stdout.contains("Nothing to migrate"),
        "{}",
        second.stdout
    );
}

#[test]
fn commands_on_an_unmigrated_database_say_to_migrate() {
    let ws = Workspace::new();
    let r = ws.fails(&["report"], 1, "ai-metering migrate");
    // ... and exactly what to pass for another database.
    assert!(r.stderr.contains("--database-url"), "{}", r.stderr);
    // A read-only command leaves no empty database file behind.
    assert!(!ws.db.exists(), "report created {}", ws.db.display());
    for args in [
        &["validate"][..],
        &["plans", "list"],
        &["wallet", "balance", "user:1"],
    ] {
        ws.run(args);
        assert!(!ws.db.exists(), "{args:?} created {}", ws.db.display());
    }

    // An existing but empty database says it is not migrated.
    std::fs::write(&ws.db, b"").unwrap();
    let r = ws.fails(&["report"], 1, "is not migrated");
    assert!(r.stderr.contains("--database-url"), "{}", r.stderr);
}

#[test]
fn nothing_configured_report_creates_no_file_in_the_working_directory() {
    let ws = Workspace::new();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ai-metering"))
        .arg("report")
        .current_dir(ws.dir.path())
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(!ws.path("ai-metering.db").exists());
}

#[tokio::test]
async fn a_closed_pipe_ends_the_output_quietly() {
    use std::io::Read;
    let ws = fixture().await;
    for format in ["table", "csv", "json"] {
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ai-metering"))
            .args(["report", "--month", "2024-01", "--format", format])
            .current_dir(ws.dir.path())
            .env_clear()
            .env("AI_METERING_DATABASE_URL", &ws.url)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Like `| head -0`: the reader goes away before anything is written.
        drop(child.stdout.take());
        let mut stderr = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut stderr)
            .unwrap();
        let status = child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "{format}: {stderr}");
        assert!(!stderr.contains("panicked"), "{format}: {stderr}");
        assert!(stderr.is_empty(), "{format}: {stderr}");
    }
}

#[test]
fn nothing_configured_uses_the_embedded_sqlite_file_in_the_working_directory() {
    let ws = Workspace::new();
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_ai-metering"));
    let status = cmd
        .arg("migrate")
        .current_dir(ws.dir.path())
        .env_clear()
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert!(
        status.status.success(),
        "{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(ws.path("ai-metering.db").is_file());
}

#[tokio::test]
async fn report_shows_totals_and_the_full_breakdown() {
    let ws = fixture().await;
    let r = ws
        .ok(&["report", "--month", "2024-01", "--format", "json"])
        .json();
    assert_eq!(r["totals"]["calls"], 5);
    assert_eq!(r["totals"]["total_tokens"], 5_700);
    assert_eq!(r["totals"]["billables"], 2);
    let breakdown = r["breakdown"].as_array().unwrap();
    // The original showed one row here; every provider/model pair must be listed.
    assert_eq!(breakdown.len(), 3, "{breakdown:?}");
    assert_eq!(breakdown[0]["provider"], "openai");
    assert_eq!(breakdown[0]["model"], "gpt-4o-mini");
    assert_eq!(breakdown[0]["total_tokens"], 4_700);
    assert_eq!(breakdown[0]["calls"], 3);
    let models: Vec<&str> = breakdown
        .iter()
        .map(|b| b["model"].as_str().unwrap())
        .collect();
    assert!(models.contains(&"gpt-4o") && models.contains(&"claude-sonnet-4-5"));
    // Costs are exact decimal strings.
    assert!(
        r["totals"]["cost"]
            .as_str()
            .unwrap()
            .parse::<Decimal>()
            .unwrap()
            > Decimal::ZERO
    );

    let one = ws
        .ok(&[
            "report",
            "--month",
            "2024-01",
            "--billable",
            "user:1",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(one["totals"]["total_tokens"], 5_500);
    assert_eq!(one["billable"], "user:1");

    let table = ws.ok(&["report", "--month", "2024-01"]).stdout;
    assert!(table.contains("Breakdown by Provider/Model"), "{table}");
    assert!(
        table.contains("claude-sonnet-4-5") && table.contains("5,700"),
        "{table}"
    );
    assert!(
        table.contains("2024-01-01 00:00 to 2024-02-01 00:00"),
        "{table}"
    );

    let csv = ws
        .ok(&["report", "--month", "2024-01", "--format", "csv"])
        .stdout;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("provider,model,calls"), "{csv}");
    assert_eq!(lines.len(), 5, "{csv}");
    assert!(lines[4].starts_with("TOTAL,,5,"), "{csv}");

    let empty = ws.ok(&["report", "--month", "2023-06"]).stdout;
    assert!(empty.contains("No usage found"), "{empty}");
}

#[tokio::test]
async fn report_rejects_bad_input_clearly() {
    let ws = fixture().await;
    ws.fails(&["report", "--month", "2024-13"], 2, "01 to 12");
    ws.fails(&["report", "--month", "January"], 2, "YYYY-MM");
    ws.fails(&["report", "--billable", "user42"], 2, "TYPE:ID");
    ws.fails(
        &["report", "--billable", "user:999"],
        1,
        "unknown billable user:999",
    );
    ws.fails(&["report", "--format", "xml"], 2, "xml");
}

#[tokio::test]
async fn cleanup_counts_refuses_without_yes_and_deletes_only_old_rows() {
    let ws = fixture().await;
    // Cleanup counts back from now: keep everything since 2022 (the fixture's 2024 rows),
    // whatever today's date.
    let days = (chrono::Utc::now() - at(2022, 1, 1, 0))
        .num_days()
        .to_string();
    let days = days.as_str();
    let dry = ws.ok(&["cleanup", "--days", days, "--dry-run"]).stdout;
    assert!(
        dry.contains(&format!(
            "DRY RUN: Would delete 2 usage records older than {days} days"
        )),
        "{dry}"
    );
    // No terminal and no --yes: refuse, delete nothing.
    ws.fails(&["cleanup", "--days", days], 1, "--yes");
    let r = ws
        .ok(&["cleanup", "--days", days, "--yes", "--format", "json"])
        .json();
    assert_eq!(r["deleted"], 2);
    assert_eq!(r["matching"], 2);
    let store = ws.store().await;
    let left = store.sum_usage(&UsageFilter::default()).await.unwrap();
    assert_eq!(left.calls, 6);
    let again = ws.ok(&["cleanup", "--days", days, "--yes"]).stdout;
    assert!(
        again.contains("No old usage records to clean up."),
        "{again}"
    );
    ws.fails(&["cleanup", "--days", "0"], 2, "0");
}

#[tokio::test]
async fn cleanup_defaults_to_the_configured_retention() {
    let ws = fixture().await;
    // Everything in the fixture is older than a day.
    let r = ws.run_env(
        &["cleanup", "--dry-run", "--format", "json"],
        &[("AI_METERING_PRUNE_AFTER_DAYS", "1")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["days"], 1);
    assert_eq!(r.json()["matching"], 8);
}

#[tokio::test]
async fn sync_overages_fails_loudly_without_a_billing_driver() {
    let ws = fixture().await;
    let none = ws.ok(&["sync-overages"]).stdout;
    assert!(none.contains("No pending overages to sync."), "{none}");

    let store = ws.store().await;
    let usage = store
        .query_usage(
            &UsageFilter::default(),
            ai_metering_core::store::Page::first(1),
        )
        .await
        .unwrap();
    store
        .insert_overage(&NewOverage {
            billable: Billable::new("user", 1),
            usage_id: usage[0].id,
            period: Period::new(at(2024, 1, 1, 0), at(2024, 2, 1, 0)).unwrap(),
            tokens: 1_000,
            amount: Money::new(Decimal::new(2, 3), Currency::USD),
            created_at: at(2024, 1, 20, 0),
        })
        .await
        .unwrap();
    drop(store);
    let r = ws.fails(
        &["sync-overages", "--limit", "10"],
        1,
        "no billing driver is configured",
    );
    assert!(r.stdout.contains("user:1"), "{}", r.stdout);
    // Still pending: nothing was marked as synced.
    let store = ws.store().await;
    assert_eq!(store.pending_overages(None, 10).await.unwrap().len(), 1);
    ws.fails(&["sync-overages", "--limit", "0"], 2, "0");
}

#[tokio::test]
async fn validate_reports_and_exits_by_severity() {
    let ws = fixture().await;
    let ok = ws.ok(&["validate"]).stdout;
    assert!(ok.contains("All validations passed"), "{ok}");

    let bad = ws.run_env(&["validate"], &[("AI_METERING_PERIOD_TYPE", "fortnightly")]);
    assert_eq!(bad.code, 1);
    assert!(
        bad.stdout.contains("period.type") && bad.stdout.contains("monthly, weekly"),
        "{}",
        bad.stdout
    );

    let inert = ws.run_env(
        &["validate", "--format", "json"],
        &[("AI_METERING_RATE_LIMIT", "true")],
    );
    assert_eq!(inert.code, 0, "{}", inert.stderr);
    let j = inert.json();
    assert_eq!(j["ok"], true);
    assert!(
        j["warnings"][0]
            .as_str()
            .unwrap()
            .contains("security.rate_limit_enabled")
    );

    // An unreachable database is an error in the report, not a crash.
    let down = ws.run(&[
        "--database-url",
        "postgres://nobody@127.0.0.1:1/none",
        "validate",
    ]);
    assert_eq!(down.code, 1, "{}", down.stderr);
    assert!(
        down.stdout.contains("database connection failed"),
        "{}",
        down.stdout
    );
    assert!(down.stdout.contains("skipped"), "{}", down.stdout);

    let fresh = Workspace::new();
    let r = fresh.run(&["validate"]);
    assert_eq!(r.code, 1);
    assert!(r.stdout.contains("no database at"), "{}", r.stdout);
    assert!(r.stdout.contains("ai-metering migrate"), "{}", r.stdout);
}

#[test]
fn invalid_configuration_names_the_key_and_the_accepted_values() {
    let ws = Workspace::migrated();
    let r = ws.run_env(
        &["plans", "list"],
        &[("AI_METERING_OVERAGE_BEHAVIOR", "refund")],
    );
    assert_eq!(r.code, 2);
    assert!(
        r.stderr.contains("billing.overage_behavior"),
        "{}",
        r.stderr
    );
    assert!(
        r.stderr.contains("AI_METERING_OVERAGE_BEHAVIOR"),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("block, charge, allow"), "{}", r.stderr);

    write(&ws, "ai-metering.toml", "[period]\nkind = \"monthly\"\n");
    ws.fails(&["plans", "list"], 2, "unknown key `period.kind`");
}

#[test]
fn config_shows_values_and_their_sources() {
    let ws = Workspace::new();
    let file = write(
        &ws,
        "custom.toml",
        "[period]\ntype = \"weekly\"\ntimezone = \"Europe/Paris\"\n",
    );
    let r = ws.run_env(
        &["--config", s(&file), "config", "--format", "json"],
        &[("AI_METERING_PERIOD_TYPE", "daily")],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["period.type"]["value"], "daily");
    assert_eq!(j["period.type"]["source"], "env AI_METERING_PERIOD_TYPE");
    assert_eq!(j["period.timezone"]["value"], "Europe/Paris");
    assert_eq!(j["billing.currency"]["source"], "default");
    ws.fails(&["--config", "missing.toml", "config"], 2, "missing.toml");
}

#[test]
fn plans_create_list_and_sync() {
    let ws = Workspace::migrated();
    let empty = ws.ok(&["plans", "list"]).stdout;
    assert!(empty.contains("No plans yet"), "{empty}");
    ws.ok(&[
        "plans",
        "create",
        "starter",
        "--name",
        "Starter",
        "--token-limit",
        "1000",
        "--cost-limit",
        "2.50",
    ]);
    ws.fails(&["plans", "create", "starter"], 1, "already exists");
    ws.fails(&["plans", "create", "x", "--cost-limit=-1"], 2, "positive");
    let list = ws.ok(&["plans", "list", "--format", "json"]).json();
    assert_eq!(list[0]["slug"], "starter");
    assert_eq!(list[0]["token_limit"], 1000);
    assert_eq!(list[0]["cost_limit"], "2.50");

    let file = write(
        &ws,
        "plans.toml",
        r#"
        [[plans]]
        slug = "starter"
        name = "Starter"
        token_limit = 2000
        cost_limit = "2.50"

        [[plans]]
        slug = "pro"
        name = "Pro"
        token_limit = 100000
        overage_policy = "charge"
        overage_price_per_1k_tokens = "0.01"
        "#,
    );
    let dry = ws.ok(&["plans", "sync", s(&file), "--dry-run"]).stdout;
    assert!(
        dry.contains("would be updated") && dry.contains("would be created"),
        "{dry}"
    );
    assert_eq!(
        ws.ok(&["plans", "list", "--format", "json"])
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = ws
        .ok(&["plans", "sync", s(&file), "--format", "json"])
        .json();
    let actions: Vec<(&str, &str)> = r["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["slug"].as_str().unwrap(), p["action"].as_str().unwrap()))
        .collect();
    assert_eq!(actions, [("starter", "updated"), ("pro", "created")]);
    let again = ws
        .ok(&["plans", "sync", s(&file), "--format", "json"])
        .json();
    assert_eq!(again["plans"][1]["action"], "unchanged");
    let table = ws.ok(&["plans", "list"]).stdout;
    assert!(
        table.contains("100,000") && table.contains("charge"),
        "{table}"
    );
    let csv = ws.ok(&["plans", "list", "--format", "csv"]).stdout;
    assert_eq!(csv.lines().count(), 3, "{csv}");

    let bad = write(
        &ws,
        "bad.toml",
        "[[plans]]\nslug = \"x\"\ncost_limit = 1.5\n",
    );
    ws.fails(&["plans", "sync", s(&bad)], 1, "string");
    ws.fails(&["plans", "sync", "nope.toml"], 1, "nope.toml");
}

#[tokio::test]
async fn migrate_plan_moves_the_subscription_and_keeps_the_previous_plan() {
    let ws = fixture().await;
    ws.fails(&["migrate-plan", "user:1", "pro"], 1, "--yes");
    ws.fails(
        &["migrate-plan", "user:1", "gold", "--yes"],
        1,
        "Plan 'gold' not found.",
    );
    ws.fails(&["migrate-plan", "user1", "pro", "--yes"], 2, "TYPE:ID");
    ws.fails(
        &["migrate-plan", "user:77", "pro", "--yes"],
        1,
        "No active subscription found for user:77.",
    );
    ws.fails(
        &[
            "migrate-plan",
            "user:1",
            "pro",
            "--from-plan",
            "pro",
            "--yes",
        ],
        1,
        "Current plan does not match 'pro'. Current plan is 'starter'.",
    );
    let r = ws
        .ok(&[
            "migrate-plan",
            "user:1",
            "pro",
            "--from-plan",
            "starter",
            "--yes",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(r["changed"], true);
    assert_eq!(r["from"], "starter");
    assert_eq!(r["to"], "pro");
    assert_eq!(r["event"], "plan_changed");
    let store = ws.store().await;
    let (_, sub) = store
        .current_subscription(&Billable::new("user", 1), chrono::Utc::now())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(sub.plan.as_deref(), Some("pro"));
    assert_eq!(sub.previous_plan.as_deref(), Some("starter"));
    let same = ws.ok(&["migrate-plan", "user:1", "pro", "--yes"]).stdout;
    assert!(same.contains("already on plan 'pro'"), "{same}");
}

#[tokio::test]
async fn aggregate_rebuilds_rollups_per_period() {
    let ws = fixture().await;
    let r = ws
        .ok(&["aggregate", "--period", "month", "--format", "json"])
        .json();
    assert!(r["rows_written"].as_u64().unwrap() >= 6, "{r}");
    let periods: Vec<&str> = r["periods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["period"].as_str().unwrap())
        .collect();
    assert_eq!(periods, ["2020-03", "2024-01", "2024-02"]);
    assert_eq!(r["periods"][1]["total_tokens"], 5_700);
    let weeks = ws.ok(&["aggregate", "--period", "week"]).stdout;
    assert!(
        weeks.contains("2024-W01") && weeks.contains("Rebuilt"),
        "{weeks}"
    );
    ws.fails(&["aggregate", "--period", "hour"], 2, "hour");
}

#[tokio::test]
async fn gdpr_delete_and_anonymize() {
    let ws = fixture().await;
    ws.fails(&["gdpr", "delete", "user:2"], 1, "--yes");
    ws.fails(
        &["gdpr", "delete", "user:404", "--yes"],
        1,
        "unknown billable user:404",
    );
    ws.fails(&["gdpr", "anonymize", "nobody", "--yes"], 2, "TYPE:ID");
    let r = ws
        .ok(&["gdpr", "delete", "user:2", "--yes", "--format", "json"])
        .json();
    assert_eq!(r["rows"]["ai_usages"], 2);
    assert_eq!(r["rows"]["ai_subscriptions"], 1);
    ws.fails(&["report", "--billable", "user:2"], 1, "unknown billable");

    let before = ws
        .ok(&["report", "--month", "2024-01", "--format", "json"])
        .json();
    let r = ws
        .ok(&["gdpr", "anonymize", "user:1", "--yes", "--format", "json"])
        .json();
    assert_eq!(r["rows"]["ai_usages"], 6);
    assert!(r["tombstone"].as_str().unwrap().starts_with("anonymized:"));
    let after = ws
        .ok(&["report", "--month", "2024-01", "--format", "json"])
        .json();
    assert_eq!(
        before["totals"]["total_tokens"],
        after["totals"]["total_tokens"]
    );
    ws.fails(&["report", "--billable", "user:1"], 1, "unknown billable");
}

#[tokio::test]
async fn gdpr_delete_and_anonymize_a_user() {
    let ws = fixture().await;
    let store = ws.store().await;
    let team = Billable::new("user", 1);
    for (user, tokens) in [("alice", 100), ("alice", 200), ("bob", 50)] {
        let mut e = entry(&team, "openai", "gpt-4o", tokens, 0, at(2024, 1, 20, 0));
        e.user_id = Some(user.into());
        e.metadata
            .insert("email".into(), format!("{user}@example.com").into());
        store.insert_usage(&e).await.unwrap();
    }
    ws.fails(&["gdpr", "delete-user", "alice"], 1, "--yes");
    let before = ws
        .ok(&["report", "--month", "2024-01", "--format", "json"])
        .json();
    let r = ws
        .ok(&["gdpr", "anonymize-user", "bob", "--yes", "--format", "json"])
        .json();
    assert_eq!(
        (r["action"].as_str(), r["rows"]["ai_usages"].as_u64()),
        (Some("anonymized"), Some(1))
    );
    let after = ws
        .ok(&["report", "--month", "2024-01", "--format", "json"])
        .json();
    assert_eq!(before["totals"], after["totals"]);

    let out = ws.ok(&["gdpr", "delete-user", "alice", "--yes"]).stdout;
    assert!(
        out.contains("Deleted 2 usage rows of user \"alice\""),
        "{out}"
    );
    let after = ws
        .ok(&["report", "--month", "2024-01", "--format", "json"])
        .json();
    assert_eq!(
        before["totals"]["total_tokens"].as_u64().unwrap() - 300,
        after["totals"]["total_tokens"].as_u64().unwrap()
    );
    let left = store
        .query_usage(&UsageFilter::for_billable(team), Page::first(100))
        .await
        .unwrap();
    assert!(
        left.iter()
            .all(|r| r.entry.user_id.is_none() && r.entry.metadata.is_empty())
    );
}

#[tokio::test]
async fn wallet_add_and_balance() {
    let ws = fixture().await;
    let tx = ws
        .ok(&["wallet", "add", "user:1", "25", "--format", "json"])
        .json();
    assert_eq!(tx["balance_after"], "25");
    ws.ok(&["wallet", "add", "user:1", "4.99", "--reason", "promo"]);
    let b = ws
        .ok(&["wallet", "balance", "user:1", "--format", "json"])
        .json();
    assert_eq!(b["balance"], "29.99");
    assert_eq!(b["available"], "29.99");
    assert_eq!(b["transactions"][0]["reason"], "promo");
    let table = ws.ok(&["wallet", "balance", "user:1"]).stdout;
    assert!(
        table.contains("$29.99 ") && table.contains("promo"),
        "{table}"
    );
    ws.fails(&["wallet", "add", "user:1", "--", "-5"], 2, "positive");
    ws.fails(&["wallet", "add", "user:1", "ten"], 2, "decimal");
    ws.fails(
        &["wallet", "add", "user:1", "5", "--currency", "dollars"],
        2,
        "ISO 4217",
    );
    ws.fails(
        &["wallet", "add", "team:ghost", "5"],
        1,
        "unknown billable team:ghost",
    );
    ws.fails(&["wallet", "balance", "ghost"], 2, "TYPE:ID");
    let store = ws.store().await;
    let w = store
        .wallet(&Billable::new("user", 1), Currency::USD)
        .await
        .unwrap();
    assert_eq!(w.balance, Decimal::new(2999, 2));
}

#[tokio::test]
async fn wallet_grants_are_added_and_shown() {
    let ws = fixture().await;
    ws.ok(&["wallet", "add", "user:1", "10"]);
    let granted = ws
        .ok(&[
            "wallet",
            "grant",
            "user:1",
            "5",
            "--priority",
            "1",
            "--expires",
            "2099-01-01T00:00:00Z",
            "--rollover-min",
            "0",
            "--rollover-max",
            "2",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(granted["grant"]["amount"], "5");
    assert_eq!(granted["transaction"]["balance_after"], "15");
    let id = granted["grant"]["id"].clone();
    assert_eq!(granted["transaction"]["grants"][0]["grant"], id);
    // Expired long ago: part of the balance, not of what is available.
    ws.ok(&[
        "wallet",
        "grant",
        "user:1",
        "3",
        "--starts",
        "2020-01-01T00:00:00Z",
        "--expires",
        "2020-02-01T00:00:00Z",
        "--reason",
        "old promo",
    ]);
    let b = ws
        .ok(&["wallet", "balance", "user:1", "--format", "json"])
        .json();
    assert_eq!(b["balance"], "18");
    assert_eq!(b["unusable"], "3");
    assert_eq!(b["available"], "15");
    let grants = b["grants"].as_array().unwrap();
    assert_eq!(grants.len(), 2);
    // Burn-down order: priority 0 (the expired one) first.
    assert_eq!(grants[0]["status"], "expired");
    assert_eq!(grants[1]["id"], id);
    assert_eq!(grants[1]["remaining"], "5");
    assert_eq!(grants[1]["priority"], 1);
    assert_eq!(grants[1]["rollover"]["max"], "2");
    assert_eq!(grants[1]["status"], "active");
    let table = ws.ok(&["wallet", "balance", "user:1"]).stdout;
    assert!(
        table.contains("Grants") && table.contains("2099-01-01") && table.contains("expired"),
        "{table}"
    );
    ws.fails(
        &[
            "wallet",
            "grant",
            "user:1",
            "5",
            "--starts",
            "2030-01-01T00:00:00Z",
            "--expires",
            "2029-01-01T00:00:00Z",
        ],
        2,
        "expires before it starts",
    );
    ws.fails(
        &["wallet", "grant", "user:1", "5", "--rollover-min", "1"],
        2,
        "rollover",
    );
}

#[tokio::test]
async fn api_keys_are_created_listed_and_revoked_never_storing_the_secret() {
    let ws = fixture().await;
    let created = ws
        .ok(&[
            "keys",
            "create",
            "team:acme",
            "--name",
            "ci",
            "--tenant",
            "eu",
            "--model",
            "gpt-4o-mini",
            "--model",
            "gpt-4o",
            "--format",
            "json",
        ])
        .json();
    let secret = created["secret"].as_str().unwrap().to_owned();
    let id = created["key"]["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with(&format!("amk_{id}_")), "{secret}");
    assert_eq!(created["key"]["billable"], "team:acme");
    assert_eq!(created["key"]["tenant"], "eu");
    assert_eq!(created["key"]["allowed_models"][1], "gpt-4o");

    // The human format prints the key once, bare on its own line.
    let table = ws
        .ok(&["keys", "create", "team:acme", "--name", "laptop"])
        .stdout;
    assert!(table.contains("shown this once"), "{table}");
    let other = table
        .lines()
        .find(|l| l.starts_with("amk_"))
        .unwrap()
        .to_owned();
    assert_ne!(other, secret);

    // Neither secret is anywhere in the database's files (the WAL included), where the
    // key's public id is.
    let mut bytes = std::fs::read(&ws.db).unwrap();
    let wal = ws.db.with_extension("db-wal");
    if let Ok(more) = std::fs::read(&wal) {
        bytes.extend(more);
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.contains(&id), "the check must see the stored rows");
    for s in [&secret, &other] {
        let secret_part = s.rsplit('_').next().unwrap();
        assert!(!text.contains(secret_part), "a secret is stored in clear");
    }

    let listed = ws
        .ok(&["keys", "list", "team:acme", "--format", "json"])
        .json();
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(listed[0]["id"], id.as_str());
    assert!(!listed.to_string().contains("amk_"), "{listed}");
    let table = ws.ok(&["keys", "list"]).stdout;
    assert!(table.contains(&id) && table.contains("active"), "{table}");

    // Revoke by id or by the whole key; the second time says so.
    let r = ws.ok(&["keys", "revoke", &secret]);
    assert!(r.stdout.contains("Revoked"), "{}", r.stdout);
    let r = ws.ok(&["keys", "revoke", &id]);
    assert!(r.stdout.contains("already revoked"), "{}", r.stdout);
    let table = ws.ok(&["keys", "list", "team:acme"]).stdout;
    assert!(table.contains("revoked"), "{table}");
    ws.fails(&["keys", "revoke", "ffffffffffffffff"], 1, "no API key");
    ws.fails(&["keys", "create", "team:acme", "--name", " "], 2, "name");
}

/// `keys import` keeps a key issued elsewhere, read from standard input (never from the
/// command line), stores only its digest, and refuses it twice or empty.
#[test]
fn a_key_issued_elsewhere_is_imported_from_standard_input() {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let ws = Workspace::migrated();
    let import = |input: &str| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ai-metering"))
            .args([
                "keys",
                "import",
                "team:acme",
                "--name",
                "legacy",
                "--format",
                "json",
            ])
            .current_dir(ws.dir.path())
            .env_clear()
            .env("AI_METERING_DATABASE_URL", &ws.url)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let old = "sk-legacy-Q2hhbmdlTWUxMjM0NTY3ODk";
    let (code, stdout, stderr) = import(&format!("{old}\n"));
    assert_eq!(code, 0, "{stdout}{stderr}");
    let imported: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(imported["key"]["billable"], "team:acme");
    assert_eq!(imported["key"]["name"], "legacy");
    let listed = ws.ok(&["keys", "list", "--format", "json"]).json();
    assert_eq!(listed[0]["id"], imported["key"]["id"]);
    let mut bytes = std::fs::read(&ws.db).unwrap();
    if let Ok(more) = std::fs::read(ws.db.with_extension("db-wal")) {
        bytes.extend(more);
    }
    assert!(
        !String::from_utf8_lossy(&bytes).contains("Q2hhbmdlTWUx"),
        "the key is stored in clear"
    );
    let (code, _, stderr) = import(old);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("already stored"), "{stderr}");
    let (code, _, stderr) = import("");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("standard input"), "{stderr}");
    let (code, _, stderr) = import("amk_0123");
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn validate_checks_the_gateway_table_with_lines_and_serve_needs_one() {
    let ws = Workspace::migrated();
    ws.fails(&["serve"], 2, "[gateway] table");
    let config = ws.path("ai-metering.toml");
    std::fs::write(
        &config,
        "[gateway.upstreams.openai]\nbase_url = \"https://api.openai.com/v1\"\n\n[gateway.models]\n\"fast\" = { upstream = \"nowhere\" }\n",
    )
    .unwrap();
    let r = ws.run(&["validate"]);
    assert_eq!(r.code, 1, "{}{}", r.stdout, r.stderr);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(
        all.contains(
            "line 5: gateway.models.fast.upstream: no upstream named \"nowhere\" (known: openai)"
        ),
        "{all}"
    );
    ws.fails(&["serve"], 2, "line 5: gateway.models.fast.upstream");

    std::fs::write(
        &config,
        "[gateway.upstreams.openai]\nbase_url = \"https://api.openai.com/v1\"\napi_key_env = \"UPSTREAM_KEY\"\n\n[gateway.models]\n\"fast\" = { upstream = \"openai\", model = \"gpt-4o-mini\" }\n",
    )
    .unwrap();
    let r = ws.ok(&["validate"]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("1 upstream(s), 1 model route(s)"), "{all}");
    assert!(all.contains("UPSTREAM_KEY is not set"), "{all}");
    // The other commands are not disturbed by the gateway's table.
    ws.ok(&["plans", "list"]);
}

#[test]
fn serve_answers_with_the_keys_of_keys_create() {
    use std::io::{Read, Write};
    let ws = Workspace::migrated();
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    std::fs::write(
        ws.path("ai-metering.toml"),
        "[gateway.upstreams.local]\nbase_url = \"http://127.0.0.1:9/v1\"\n\n[gateway.models]\n\"fast\" = { upstream = \"local\", model = \"gpt-4o-mini\" }\n",
    )
    .unwrap();
    let key = ws
        .ok(&["keys", "create", "team:acme", "--format", "json"])
        .json()["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut server = std::process::Command::new(env!("CARGO_BIN_EXE_ai-metering"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .current_dir(ws.dir.path())
        .env_clear()
        .env("AI_METERING_DATABASE_URL", &ws.url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let get = |path: &str, key: Option<&str>| -> Option<String> {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
        let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
        write!(
            c,
            "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"
        )
        .ok()?;
        let mut out = String::new();
        c.read_to_string(&mut out).ok()?;
        Some(out)
    };
    // Polls until the server is up (no timing is asserted).
    let mut health = None;
    for _ in 0..500 {
        health = get("/healthz", None);
        if health.is_some() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let models = get("/v1/models", Some(&key));
    let metrics = get("/metrics", None);
    let anonymous = get("/v1/models", None);
    let _ = server.kill();
    let _ = server.wait();
    assert!(health.unwrap().starts_with("HTTP/1.1 200"));
    let models = models.unwrap();
    assert!(
        models.starts_with("HTTP/1.1 200") && models.contains("\"fast\""),
        "{models}"
    );
    assert!(anonymous.unwrap().starts_with("HTTP/1.1 401"));
    assert!(metrics.unwrap().starts_with("HTTP/1.1 200"));
}

#[test]
fn subscribe_starts_a_subscription_once() {
    let ws = Workspace::migrated();
    ws.fails(
        &["subscribe", "team:acme", "pro"],
        1,
        "Plan 'pro' not found",
    );
    ws.ok(&["plans", "create", "pro", "--token-limit", "1000"]);
    let r = ws
        .ok(&[
            "subscribe",
            "team:acme",
            "pro",
            "--credits",
            "--format",
            "json",
        ])
        .json();
    assert_eq!(
        (r["plan"].as_str(), r["billing_mode"].as_str()),
        (Some("pro"), Some("credits"))
    );
    ws.fails(
        &["subscribe", "team:acme", "pro"],
        1,
        "already has an active subscription",
    );
    let report = ws.ok(&["wallet", "balance", "team:acme"]);
    assert_eq!(report.code, 0);
}

/// One call of `who` through the store's money path: a reservation holding $1, settled
/// with its debit and, past 100 tokens, an overage row.
async fn settled_call(store: &ai_metering_seaorm::SeaOrmStore, who: &Billable, hour: u32) {
    use ai_metering_core::limit::{Limits, UsageTotals};
    use ai_metering_core::overage::OverageRule;
    use ai_metering_core::store::{
        CounterStore, HoldRequest, Overdraft, ReserveOutcome, ReserveRequest, Settlement,
    };
    let now = at(2024, 3, 1, hour);
    let march = Period::new(at(2024, 3, 1, 0), at(2024, 4, 1, 0)).unwrap();
    let mut request = ReserveRequest::new(
        who.clone(),
        march,
        Limits::UNLIMITED,
        UsageTotals::new(2_000, Decimal::ONE),
        now,
        now + chrono::Duration::minutes(10),
    );
    request.hold = Some(HoldRequest {
        amount: Money::new(Decimal::ONE, Currency::USD),
        overdraft: Overdraft::Disallowed,
    });
    let ReserveOutcome::Reserved { id, .. } = store.reserve(&request).await.unwrap() else {
        panic!("the reservation fits");
    };
    let settled = store
        .settle(&Settlement {
            reservation: id,
            entry: common::entry(who, "openai", "gpt-4o-mini", 1_000, 500, now),
            period: march,
            overage: Some(OverageRule::new(
                Limits {
                    tokens: Some(100),
                    cost: None,
                },
                Some(Decimal::ONE),
            )),
            debit_credits: true,
        })
        .await
        .unwrap();
    assert!(settled.debit.is_some() && settled.overage.is_some());
}

/// The kinds of the findings of `check --format json`, as (billable, kind).
fn finding_kinds(run: &common::Run) -> Vec<(String, String)> {
    let mut kinds: Vec<(String, String)> = run.json()["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let b = &f["billable"];
            (
                format!(
                    "{}:{}",
                    b["kind"].as_str().unwrap(),
                    b["id"].as_str().unwrap()
                ),
                f["kind"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    kinds.sort();
    kinds
}

#[tokio::test]
async fn check_passes_a_clean_database_and_finds_each_corruption() {
    use ai_metering_core::store::{Overdraft, USAGE_DEBIT_REASON};
    use sea_orm::ConnectionTrait;

    let ws = Workspace::migrated();
    let store = ws.store().await;
    let names = ["clean", "rows", "debit", "overage", "held"];
    for name in names {
        let who = Billable::new("team", name);
        store
            .add_credits(
                &who,
                Money::new(Decimal::TEN, Currency::USD),
                "top-up",
                at(2024, 3, 1, 0),
            )
            .await
            .unwrap();
        settled_call(&store, &who, 1).await;
        settled_call(&store, &who, 2).await;
    }
    let now = ["--now", "2024-03-01T03:00:00Z"];
    let clean = ws.ok(&[&["check", "--match-debits"][..], &now[..]].concat());
    assert!(
        clean.stdout.contains("Everything reconciles"),
        "{}",
        clean.stdout
    );
    let json = ws
        .ok(&[&["check", "--format", "json"][..], &now[..]].concat())
        .json();
    assert_eq!(json["checked"]["billables"], 5);
    assert_eq!(json["checked"]["usage_rows"], 10);
    assert_eq!(json["checked"]["overages"], 10);
    assert_eq!(json["findings"], serde_json::json!([]));

    // A row inserted behind the store's back: no counter, no debit saw it.
    let db = store.connection();
    let columns = "billable_type, billable_id, user_id, tenant_id, provider, model, feature, \
        input_tokens, cached_input_tokens, cache_write_tokens, cache_write_long_tokens, \
        output_tokens, reasoning_tokens, total_tokens, input_cost, cached_input_cost, \
        cache_write_cost, output_cost, reasoning_cost, total_cost, total_cost_nano, currency, \
        catalog_version, priced, metadata, occurred_at, estimated, created_at";
    db.execute_unprepared(&format!(
        "INSERT INTO ai_usages ({columns}) SELECT {columns} FROM ai_usages \
         WHERE billable_id = 'rows' ORDER BY id LIMIT 1"
    ))
    .await
    .unwrap();
    // A usage debit without its row.
    store
        .deduct_credits(
            &Billable::new("team", "debit"),
            Money::new(Decimal::ONE, Currency::USD),
            USAGE_DEBIT_REASON,
            Overdraft::Disallowed,
            at(2024, 3, 1, 2),
        )
        .await
        .unwrap();
    // An overage for a usage row that does not exist.
    store
        .insert_overage(&NewOverage {
            billable: Billable::new("team", "overage"),
            usage_id: 999_999,
            period: Period::new(at(2024, 3, 1, 0), at(2024, 4, 1, 0)).unwrap(),
            tokens: 10,
            amount: Money::new(Decimal::ONE, Currency::USD),
            created_at: at(2024, 3, 1, 2),
        })
        .await
        .unwrap();
    // A held amount that no hold accounts for.
    db.execute_unprepared("UPDATE ai_credit_wallets SET held = '3' WHERE billable_id = 'held'")
        .await
        .unwrap();

    let r = ws.run(&[&["check", "--format", "json"][..], &now[..]].concat());
    assert_eq!(r.code, 1, "{}\n{}", r.stdout, r.stderr);
    assert!(r.stderr.contains("the records disagree"), "{}", r.stderr);
    let s = |a: &str, b: &str| (a.to_owned(), b.to_owned());
    assert_eq!(
        finding_kinds(&r),
        vec![
            s("team:held", "held_mismatch"),
            s("team:overage", "overage_without_usage"),
            s("team:rows", "counter_mismatch"),
        ]
    );
    // Matching debits to rows finds the orphan debit, and the copied row without its debit.
    let r = ws.run(
        &[
            &["check", "--format", "json", "--match-debits"][..],
            &now[..],
        ]
        .concat(),
    );
    assert_eq!(r.code, 1);
    let kinds = finding_kinds(&r);
    assert!(
        kinds.contains(&s("team:debit", "usage_debits")),
        "{kinds:?}"
    );
    assert!(kinds.contains(&s("team:rows", "usage_debits")), "{kinds:?}");
    // The table names each finding; one billable can be checked alone.
    let table = ws.run(&[&["check"][..], &now[..]].concat());
    assert_eq!(table.code, 1);
    assert!(table.stdout.contains("held_mismatch"), "{}", table.stdout);
    ws.ok(&[
        &["check", "--billable", "team:clean", "--match-debits"][..],
        &now[..],
    ]
    .concat());
}

#[tokio::test]
async fn check_warns_of_reservations_nobody_swept() {
    use ai_metering_core::limit::{Limits, UsageTotals};
    use ai_metering_core::store::{CounterStore, ReserveRequest};

    let ws = Workspace::migrated();
    let store = ws.store().await;
    let now = at(2024, 3, 1, 1);
    let request = ReserveRequest::new(
        Billable::new("team", "crashed"),
        Period::new(at(2024, 3, 1, 0), at(2024, 4, 1, 0)).unwrap(),
        Limits::UNLIMITED,
        UsageTotals::new(100, Decimal::ZERO),
        now,
        now + chrono::Duration::minutes(10),
    );
    store.reserve(&request).await.unwrap();
    // Within the grace: nothing to say.
    ws.ok(&["check", "--now", "2024-03-01T01:15:00Z"]);
    // Past it: a warning, which fails only when denied.
    let r = ws.ok(&["check", "--now", "2024-03-01T02:00:00Z", "--format", "json"]);
    assert_eq!(
        finding_kinds(&r),
        vec![("team:crashed".to_owned(), "stale_reservations".to_owned())]
    );
    assert_eq!(r.json()["findings"][0]["severity"], "warning");
    ws.fails(
        &["check", "--now", "2024-03-01T02:00:00Z", "--deny-warnings"],
        1,
        "--deny-warnings",
    );
    ws.ok(&["check", "--now", "2024-03-01T02:00:00Z", "--grace", "7200"]);
}
