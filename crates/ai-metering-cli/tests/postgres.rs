//! The CLI against PostgreSQL, when `AI_METERING_TEST_POSTGRES_URL` names a server (CI
//! starts one and requires it); skipped with a note on stderr otherwise. The test creates (and recreates on each run)
//! its own database on that server.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly

mod common;

use common::{Workspace, seed_fixture};

#[tokio::test]
async fn commands_work_on_postgresql() {
    let Some(url) = ai_metering_test_env::fresh_postgres_database(
        "commands_work_on_postgresql",
        "aim_cli_commands",
    )
    .await
    else {
        return;
    };
    let ws = Workspace::new();
    let with_pg = |args: &[&str]| {
        let mut all = vec!["--database-url", url.as_str()];
        all.extend_from_slice(args);
        ws.run(&all)
    };
    let r = with_pg(&["migrate", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["applied"], true);

    let store = ai_metering_seaorm::SeaOrmStore::connect(&url)
        .await
        .unwrap();
    seed_fixture(&store).await;
    drop(store);

    let r = with_pg(&["report", "--month", "2024-01", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let j = r.json();
    assert_eq!(j["totals"]["total_tokens"], 5_700);
    assert_eq!(j["breakdown"].as_array().unwrap().len(), 3);

    let r = with_pg(&["validate"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    let r = with_pg(&["check", "--match-debits", "--format", "json"]);
    assert_eq!(r.code, 0, "{}\n{}", r.stdout, r.stderr);
    assert_eq!(r.json()["checked"]["billables"], 2);
    assert_eq!(r.json()["findings"], serde_json::json!([]));
    let r = with_pg(&["wallet", "add", "user:1", "12.345", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["balance_after"], "12.345");
    let r = with_pg(&[
        "wallet",
        "grant",
        "user:1",
        "2.5",
        "--expires",
        "2099-01-01T00:00:00Z",
        "--format",
        "json",
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["transaction"]["balance_after"], "14.845");
    let r = with_pg(&["wallet", "balance", "user:1", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["grants"][0]["remaining"], "2.5");
    assert_eq!(r.json()["grants"][0]["status"], "active");
    let r = with_pg(&["aggregate", "--period", "month", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["periods"][1]["total_tokens"], 5_700);
    let r = with_pg(&["gdpr", "delete", "user:2", "--yes", "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.json()["rows"]["ai_usages"], 2);
}
