//! The CSV export: headers, filters, quoting that survives hostile values, and the cap.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_dashboard::DashboardConfig;
use common::*;
use http::StatusCode;

async fn export(config: DashboardConfig, query: &str) -> common::Reply {
    let app = app(config).await;
    let r = get(&app, &format!("/ai-metering/usage.csv{query}")).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    r
}

fn records(body: &str) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let header = reader.headers().unwrap().clone();
    let rows = reader.records().map(Result::unwrap).collect();
    (header, rows)
}

#[tokio::test]
async fn export_is_an_attachment_with_every_matching_row() {
    let r = export(DashboardConfig::allow_all(), "").await;
    assert_eq!(r.headers["content-type"], "text/csv; charset=utf-8");
    assert_eq!(
        r.headers["content-disposition"],
        "attachment; filename=\"ai-usage.csv\""
    );
    assert!(!r.headers.contains_key("x-ai-metering-truncated"));
    let (header, rows) = records(&r.body);
    assert_eq!(&header[0], "id");
    assert_eq!(&header[18], "metadata");
    assert_eq!(rows.len(), 6);
    // Newest first; numbers as plain numbers.
    assert_eq!(&rows[0][1], "2024-05-18T10:00:00+00:00");
    assert_eq!(&rows[0][2], "org:eu/west 1");
    assert_eq!(&rows[0][13], "100");
    assert_eq!(&rows[0][14], "0.001");
    assert_eq!(&rows[0][15], "USD");
}

#[tokio::test]
async fn export_applies_filters_and_ignores_paging() {
    let r = export(
        DashboardConfig::allow_all(),
        "?provider=openai&q=chat&page=2&per_page=1",
    )
    .await;
    let (_, rows) = records(&r.body);
    assert_eq!(rows.len(), 4);
    assert!(
        rows.iter()
            .all(|row| &row[5] == "openai" && &row[7] == "chat")
    );
}

#[tokio::test]
async fn hostile_values_survive_a_round_trip_and_formulas_are_inert() {
    let r = export(DashboardConfig::allow_all(), "?billable=team:globex").await;
    let (_, rows) = records(&r.body);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(&row[7], HOSTILE_FEATURE);
    let metadata: serde_json::Value = serde_json::from_str(&row[18]).unwrap();
    assert_eq!(metadata["tricky"], CSV_TRICKY);
    assert_eq!(metadata["note"], HOSTILE_SCRIPT);
    assert_eq!(metadata["formula"], CSV_FORMULA);
    // The raw text quotes the field holding quotes, commas and a new line.
    assert!(r.body.contains(r#""{""formula"":"#), "{}", r.body);
}

#[tokio::test]
async fn a_cell_starting_like_a_formula_is_prefixed() {
    // A feature made of a formula (stores accept what validation would refuse upstream).
    let store = seeded_store().await;
    use ai_metering_core::store::UsageStore;
    store
        .insert_usage(&entry(
            &user(7),
            None,
            "openai",
            "gpt-4o",
            Some("=1+2"),
            (1, 1),
            "0",
            at(19, 5),
            serde_json::json!({}),
        ))
        .await
        .unwrap();
    let metering = ai_metering_core::Metering::builder(store)
        .clock(ai_metering_core::clock::ManualClock::new(now()))
        .build();
    let app = axum::Router::new().nest(
        "/ai-metering",
        ai_metering_dashboard::router(metering, DashboardConfig::allow_all()),
    );
    let r = get(&app, "/ai-metering/usage.csv?billable=user:7").await;
    let (_, rows) = records(&r.body);
    assert_eq!(&rows[0][7], "'=1+2");
}

#[tokio::test]
async fn large_exports_are_cut_and_flagged() {
    let r = export(DashboardConfig::allow_all().with_csv_max_rows(2), "").await;
    assert_eq!(r.headers["x-ai-metering-truncated"], "true");
    let (_, rows) = records(&r.body);
    assert_eq!(rows.len(), 2);
    let r = export(DashboardConfig::allow_all().with_csv_max_rows(6), "").await;
    assert!(!r.headers.contains_key("x-ai-metering-truncated"));
    assert_eq!(records(&r.body).1.len(), 6);
}

#[tokio::test]
async fn bad_filters_are_refused_not_exported() {
    let app = app(DashboardConfig::allow_all()).await;
    let r = get(&app, "/ai-metering/usage.csv?until=tomorrow").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
}
