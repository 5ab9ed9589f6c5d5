//! The JSON API over a seeded store: every route, filters, search and pagination.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_dashboard::DashboardConfig;
use common::*;
use http::StatusCode;
use serde_json::Value;

async fn api(uri: &str) -> Value {
    let app = app(DashboardConfig::allow_all()).await;
    let r = get(&app, &format!("/ai-metering/api{uri}")).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
    assert_eq!(r.headers["content-type"], "application/json");
    r.json()
}

async fn api_error(uri: &str) -> (StatusCode, String) {
    let app = app(DashboardConfig::allow_all()).await;
    let r = get(&app, &format!("/ai-metering/api{uri}")).await;
    let message = r.json()["error"].as_str().unwrap().to_owned();
    (r.status, message)
}

fn keys(groups: &Value) -> Vec<String> {
    groups
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap().to_owned())
        .collect()
}

fn ids(page: &Value) -> Vec<i64> {
    page["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn overview_covers_the_current_period() {
    let o = api("/overview").await;
    assert_eq!(o["period"]["start"], "2024-05-01T00:00:00Z");
    assert_eq!(o["period"]["end"], "2024-06-01T00:00:00Z");
    assert_eq!(o["generated_at"], "2024-05-20T12:00:00Z");
    assert_eq!(o["currency"], "USD");
    assert_eq!(o["totals"]["calls"], 5);
    assert_eq!(o["totals"]["total_tokens"], 26_100);
    assert_eq!(o["totals"]["cost"], "0.130");
    // April's user:3 is not active this period.
    assert_eq!(o["active_billables"], 4);
    assert_eq!(
        keys(&o["top_billables"]),
        ["user:2", "user:1", "team:globex", "org:eu/west 1"]
    );

    let daily = o["daily"].as_array().unwrap();
    assert_eq!(daily.len(), 31);
    assert_eq!(daily[0]["day"], "2024-05-01");
    assert_eq!(daily[9]["day"], "2024-05-10");
    assert_eq!(daily[9]["total_tokens"], 17_000);
    assert_eq!(daily[9]["calls"], 2);
    assert_eq!(daily[30]["total_tokens"], 0);

    // Over first, then approaching; the others are within their limits or unlimited.
    let attention = o["attention"].as_array().unwrap();
    let states: Vec<(&str, &str)> = attention
        .iter()
        .map(|s| {
            (
                s["billable"]["id"].as_str().unwrap(),
                s["state"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(states, [("2", "over"), ("1", "approaching")]);
    assert_eq!(attention[1]["limit"]["usage_percentage"], "90");
    assert_eq!(attention[1]["limit"]["remaining_tokens"], 1_000);
    assert_eq!(attention[1]["limit"]["reset_at"], "2024-06-01T00:00:00Z");
    assert_eq!(attention[1]["plan"]["slug"], "basic");
    assert_eq!(o["checked_billables"], 4);
}

#[tokio::test]
async fn breakdown_groups_by_provider_model_and_feature() {
    let b = api("/breakdown").await;
    assert_eq!(keys(&b["providers"]["rows"]), ["openai", "anthropic"]);
    assert_eq!(
        keys(&b["models"]["rows"]),
        [
            "openai/gpt-4o-mini",
            "openai/gpt-4o",
            "anthropic/claude-sonnet-4"
        ]
    );
    assert_eq!(b["models"]["groups"], 3);
    assert_eq!(
        keys(&b["features"]["rows"]),
        ["chat", HOSTILE_FEATURE, "search"]
    );
    assert_eq!(b["totals"]["total_tokens"], 26_100);

    // Filters apply, and explicit dates replace the current period.
    let b = api("/breakdown?provider=openai&from=2024-04-01&until=2024-05-09").await;
    assert_eq!(b["from"], "2024-04-01T00:00:00Z");
    assert_eq!(b["until"], "2024-05-10T00:00:00Z");
    assert_eq!(b["totals"]["calls"], 2); // user:3 in April, user:1 on May 3
    assert_eq!(keys(&b["models"]["rows"]), ["openai/gpt-4o"]);
}

#[tokio::test]
async fn billables_list_shows_plan_limits_and_wallet() {
    let list = api("/billables").await;
    assert_eq!(list["total"], 5);
    assert_eq!(list["window"]["start"], "2024-02-20T12:00:00Z");
    let rows = list["billables"].as_array().unwrap();
    let ids: Vec<&str> = rows
        .iter()
        .map(|s| s["billable"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["2", "1", "globex", "3", "eu/west 1"]);

    let globex = &rows[2];
    assert_eq!(globex["plan"]["name"], "Pro");
    assert_eq!(globex["state"], "ok");
    assert_eq!(globex["limit"]["limits"]["tokens"], 1_000_000);
    assert_eq!(globex["limit"]["remaining_cost"], "99.973");
    assert_eq!(globex["wallet"]["available"], "50");
    assert_eq!(globex["billing_mode"], "plan");
    let user3 = &rows[3];
    assert_eq!(user3["state"], "unlimited");
    assert!(user3["plan"].is_null());
    // Plan-mode billables without credits have no wallet (not an empty one).
    assert!(user3["wallet"].is_null(), "{user3}");
    assert!(rows[0]["wallet"].is_null(), "{}", rows[0]);

    // Search by KIND:ID, and pagination.
    let found = api("/billables?q=TEAM:").await;
    assert_eq!(found["total"], 1);
    let page = api("/billables?per_page=2&page=2").await;
    assert_eq!(
        (page["page"].as_u64(), page["pages"].as_u64()),
        (Some(2), Some(3))
    );
    let ids: Vec<&str> = page["billables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["billable"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["globex", "3"]);
}

#[tokio::test]
async fn billable_detail_has_standing_history_and_subscriptions() {
    let d = api("/billables/team/globex").await;
    assert_eq!(d["status"]["usage"]["total_tokens"], 5_000);
    assert_eq!(d["window"]["start"], "2024-05-01T00:00:00Z");
    assert_eq!(d["daily"].as_array().unwrap().len(), 31);
    assert_eq!(keys(&d["models"]), ["anthropic/claude-sonnet-4"]);
    assert_eq!(d["subscriptions"][0]["plan"], "pro");
    assert_eq!(d["subscriptions"][0]["active"], true);
    assert_eq!(d["transactions"][0]["reason"], "top-up");
    assert_eq!(d["history"]["total"], 1);
    assert_eq!(d["history"]["rows"][0]["feature"], HOSTILE_FEATURE);

    // Percent-encoded ids reach the right billable.
    let d = api("/billables/org/eu%2Fwest%201").await;
    assert_eq!(d["status"]["billable"]["id"], "eu/west 1");
    assert_eq!(d["history"]["total"], 1);

    // History pages.
    let d = api("/billables/user/1?per_page=1&page=2").await;
    assert_eq!(d["history"]["pages"], 2);
    assert_eq!(
        d["history"]["rows"][0]["occurred_at"],
        "2024-05-03T10:00:00Z"
    );

    // Subscribed without usage: shown to operators (not listed, since the list is of usage).
    let d = api("/billables/user/5").await;
    assert_eq!(d["status"]["plan"]["slug"], "pro");
    assert_eq!(d["history"]["total"], 0);

    let (status, message) = api_error("/billables/user/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(message.contains("user:999"), "{message}");
}

#[tokio::test]
async fn usage_history_filters_by_every_field() {
    let all = api("/usage").await;
    assert_eq!(all["total"], 6);
    // Newest first.
    let times: Vec<&str> = all["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["occurred_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted);

    for (query, total) in [
        ("billable=user:1", 2),
        ("provider=anthropic", 1),
        ("model=gpt-4o", 4),
        ("feature=chat", 4),
        ("from=2024-05-10", 4),
        ("until=2024-05-10", 4),
        ("from=2024-05-10&until=2024-05-10", 2),
        ("from=2024-05-10T10:00:00Z&until=2024-05-10T10:00:00Z", 0),
        ("billable=user:1&from=2024-05-04", 1),
        ("provider=openai&feature=search", 1),
    ] {
        let page = api(&format!("/usage?{query}")).await;
        assert_eq!(page["total"], total, "{query}");
        assert_eq!(
            page["rows"].as_array().unwrap().len() as u64,
            total,
            "{query}"
        );
    }
}

#[tokio::test]
async fn usage_search_looks_in_feature_model_and_metadata() {
    for (q, total) in [
        ("t-1001", 1), // metadata, case-insensitive
        ("MINI", 1),   // model
        ("search", 1), // feature
        ("pwned", 1),  // metadata text
        ("nothing-like-this", 0),
    ] {
        let page = api(&format!("/usage?q={q}")).await;
        assert_eq!(page["total"], total, "{q}");
    }
}

#[tokio::test]
async fn usage_history_pages_are_bounded() {
    let first = api("/usage?per_page=4").await;
    let second = api("/usage?per_page=4&page=2").await;
    assert_eq!(
        (first["pages"].as_u64(), first["total"].as_u64()),
        (Some(2), Some(6))
    );
    let (a, b) = (ids(&first), ids(&second));
    assert_eq!((a.len(), b.len()), (4, 2));
    assert!(a.iter().all(|id| !b.contains(id)));
    // Sums cover every matching row, not just the page.
    assert_eq!(second["sums"]["calls"], 6);
    // Past the end: an empty page, not an error.
    let past = api("/usage?per_page=4&page=9").await;
    assert!(past["rows"].as_array().unwrap().is_empty());
    // per_page is capped.
    let capped = api("/usage?per_page=1000000").await;
    assert_eq!(capped["per_page"], 1_000);
}

#[tokio::test]
async fn bad_parameters_are_400_with_a_message() {
    for (uri, field) in [
        ("/usage?from=last-week", "from"),
        ("/usage?page=0", "page"),
        ("/usage?per_page=many", "per_page"),
        ("/usage?billable=user", "billable"),
        ("/breakdown?until=2024-02-30", "until"),
        ("/billables?page=-1", "page"),
        ("/usage?page=18446744073709551615", "page"),
        ("/billables?page=18446744073709551615", "page"),
        ("/usage?page=9223372036854775807&per_page=2", "page"),
    ] {
        let (status, message) = api_error(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(message.contains(field), "{uri}: {message}");
    }
}

#[tokio::test]
async fn out_of_range_pages_and_long_values_are_400_with_a_short_message() {
    let (status, message) = api_error("/usage?page=18446744073709551615").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message.contains("out of range"), "{message}");
    let long = "x".repeat(10_000);
    for uri in [
        format!("/usage?billable={long}"),
        format!("/usage?from={long}"),
        format!("/usage?page={long}"),
    ] {
        let (status, message) = api_error(&uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(message.len() < 200, "{message}");
    }
}
