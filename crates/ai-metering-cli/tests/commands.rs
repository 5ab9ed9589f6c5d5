//! Every command against a temporary SQLite database, through the built binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use ai_metering_core::period::Period;
use ai_metering_core::store::{
    CreditStore, NewOverage, OverageStore, SubscriptionStore, UsageFilter, UsageStore,
};
use ai_metering_core::{Billable, Currency, Money};
use common::{Workspace, at, fixture, s, write};
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
