//! The gate: denied by default, allow-all on request, and tenant scoping everywhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_dashboard::{Access, DashboardConfig};
use common::*;
use http::StatusCode;

/// Every route, with a query where one matters.
/// (`""` is the overview; `{prefix}/` redirects there, see `pages.rs`.)
const ROUTES: &[&str] = &[
    "",
    "/breakdown",
    "/billables",
    "/billables/user/1",
    "/usage",
    "/usage?provider=openai&page=1",
    "/usage.csv",
    "/api/overview",
    "/api/breakdown",
    "/api/billables",
    "/api/billables/user/1",
    "/api/usage",
    "/no-such-page",
];

#[tokio::test]
async fn without_a_gate_every_route_is_forbidden() {
    let app = app(DashboardConfig::new()).await;
    for route in ROUTES {
        let r = get(&app, &format!("/ai-metering{route}")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{route}");
        assert!(!r.body.contains("user:1"), "{route} leaked data");
    }
}

#[tokio::test]
async fn a_gate_that_denies_forbids_every_route() {
    let app = app(header_gate()).await;
    for route in ROUTES {
        let r = get(&app, &format!("/ai-metering{route}")).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{route}");
    }
    let denied = DashboardConfig::new().with_gate(|_: &http::request::Parts| Access::Deny);
    let app = app_with(denied).await;
    assert_eq!(
        get(&app, "/ai-metering/api/overview").await.status,
        StatusCode::FORBIDDEN
    );
}

async fn app_with(config: DashboardConfig) -> axum::Router {
    app(config).await
}

#[tokio::test]
async fn allow_all_opens_every_route() {
    let app = app(DashboardConfig::allow_all()).await;
    for route in ROUTES {
        let r = get(&app, &format!("/ai-metering{route}")).await;
        let expected = if route.ends_with("no-such-page") {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::OK
        };
        assert_eq!(r.status, expected, "{route}: {}", r.body);
    }
}

#[tokio::test]
async fn a_custom_prefix_is_used_for_links() {
    let app = app(DashboardConfig::allow_all().with_prefix("/admin/ai/")).await;
    let r = get(&app, "/admin/ai").await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(r.body.contains(r#"href="/admin/ai/billables""#));
    assert!(r.body.contains(r#"href="/admin/ai/billables/user/2""#));
    assert!(!r.body.contains("/ai-metering/"));
}

const ACME: &[(&str, &str)] = &[("x-tenant", "acme")];

#[tokio::test]
async fn tenant_viewers_see_only_their_tenant_in_the_api() {
    let app = app(header_gate()).await;

    let o = get_with(&app, "/ai-metering/api/overview", ACME)
        .await
        .json();
    assert_eq!(o["tenant"], "acme");
    assert_eq!(o["totals"]["calls"], 4);
    assert_eq!(o["totals"]["total_tokens"], 21_100);
    assert_eq!(o["totals"]["cost"], "0.103");
    assert_eq!(o["active_billables"], 3);
    let top: Vec<&str> = o["top_billables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert!(!top.contains(&"team:globex"), "{top:?}");

    // Asking for another tenant does not widen the scope.
    let u = get_with(&app, "/ai-metering/api/usage?tenant=globex", ACME)
        .await
        .json();
    assert_eq!(u["total"], 4);
    for row in u["rows"].as_array().unwrap() {
        assert_eq!(row["tenant"], "acme");
    }
    let u = get_with(&app, "/ai-metering/api/usage?q=claude", ACME)
        .await
        .json();
    assert_eq!(u["total"], 0);

    let b = get_with(&app, "/ai-metering/api/breakdown", ACME)
        .await
        .json();
    let providers: Vec<&str> = b["providers"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["key"].as_str().unwrap())
        .collect();
    assert_eq!(providers, ["openai"]);

    let list = get_with(&app, "/ai-metering/api/billables", ACME)
        .await
        .json();
    let keys: Vec<String> = list["billables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            format!(
                "{}:{}",
                s["billable"]["kind"].as_str().unwrap(),
                s["billable"]["id"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(keys, ["user:2", "user:1", "org:eu/west 1"]);

    let r = get_with(&app, "/ai-metering/api/billables/team/globex", ACME).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.json()["error"].is_string());
    // user:5 has a subscription but no usage in the tenant.
    let r = get_with(&app, "/ai-metering/api/billables/user/5", ACME).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // user:3 has usage, but in no tenant.
    let r = get_with(&app, "/ai-metering/api/billables/user/3", ACME).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    let r = get_with(&app, "/ai-metering/api/billables/user/1", ACME).await;
    assert_eq!(r.status, StatusCode::OK);

    // The other tenant sees only its own.
    let o = get_with(&app, "/ai-metering/api/overview", &[("x-tenant", "globex")])
        .await
        .json();
    assert_eq!(o["totals"]["total_tokens"], 5_000);
}

#[tokio::test]
async fn tenant_viewers_see_only_their_tenant_in_pages_and_csv() {
    let app = app(header_gate()).await;
    for route in ["", "/billables", "/usage", "/breakdown", "/usage?q=summar"] {
        let r = get_with(&app, &format!("/ai-metering{route}"), ACME).await;
        assert_eq!(r.status, StatusCode::OK, "{route}");
        assert!(!r.body.contains("globex"), "{route} shows another tenant");
        assert!(
            !r.body.contains("anthropic"),
            "{route} shows another tenant"
        );
        assert!(
            !r.body.contains("user:3"),
            "{route} shows a billable of no tenant"
        );
    }
    let r = get_with(&app, "/ai-metering", ACME).await;
    assert!(r.body.contains("Tenant: <strong>acme</strong>"));
    // No tenant field in the filter form: it would be ignored anyway.
    let r = get_with(&app, "/ai-metering/usage", ACME).await;
    assert!(!r.body.contains(r#"name="tenant""#));

    let r = get_with(&app, "/ai-metering/billables/team/globex", ACME).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(!r.body.contains("claude"));

    let r = get_with(&app, "/ai-metering/usage.csv?tenant=globex", ACME).await;
    assert_eq!(r.status, StatusCode::OK);
    let mut reader = csv::Reader::from_reader(r.body.as_bytes());
    let tenants: Vec<String> = reader
        .records()
        .map(|rec| rec.unwrap()[3].to_owned())
        .collect();
    assert_eq!(tenants, ["acme"; 4]);
}

#[tokio::test]
async fn operators_may_filter_by_tenant() {
    let app = app(header_gate()).await;
    let u = get_with(
        &app,
        "/ai-metering/api/usage?tenant=globex",
        &[("x-operator", "1")],
    )
    .await
    .json();
    assert_eq!(u["total"], 1);
    let u = get_with(&app, "/ai-metering/api/usage", &[("x-operator", "1")])
        .await
        .json();
    assert_eq!(u["total"], 6);
}
