//! The HTML pages over a seeded store: structure, content, the chart, and escaping.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ai_metering_dashboard::DashboardConfig;
use common::*;
use http::StatusCode;

async fn page(uri: &str) -> String {
    let app = app(DashboardConfig::allow_all()).await;
    let r = get(&app, &format!("/ai-metering{uri}")).await;
    assert_eq!(r.status, StatusCode::OK, "{uri}: {}", r.body);
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    let csp = r.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert!(
        !csp.contains("script-src"),
        "scripts must stay forbidden: {csp}"
    );
    r.body
}

/// Checks the frame every page shares: language, landmarks, navigation, no script.
fn assert_accessible_frame(html: &str, current: &str) {
    assert!(html.starts_with("<!DOCTYPE html><html lang=\"en\">"));
    assert!(html.contains("<main id=\"main\">"));
    assert!(html.contains("<nav aria-label=\"Dashboard\">"));
    assert!(
        html.contains(&format!("aria-current=\"page\">{current}</a>")),
        "{current}"
    );
    assert!(html.contains("<h1>"));
    assert!(!html.contains("<script"), "pages carry no JavaScript");
}

#[tokio::test]
async fn overview_shows_totals_chart_top_billables_and_warnings() {
    let html = page("").await;
    assert_accessible_frame(&html, "Overview");
    assert!(html.contains("<dd>26,100</dd>"), "total tokens");
    assert!(html.contains("<dd>0.13 USD</dd>"), "total cost");
    assert!(html.contains("<dd>5</dd>"), "calls");
    assert!(html.contains("<dt>Active billables</dt><dd>4</dd>"));
    // The chart: an accessible SVG with one bar (and tooltip) per day with usage.
    assert!(html.contains(r#"<svg class="chart" id="daily-chart" role="img" aria-labelledby="daily-chart-title daily-chart-desc""#));
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 4);
    assert!(html.contains("<title>2024-05-10: 17,000 tokens, 2 calls, 0.06 USD</title>"));
    assert!(html.contains("Busiest day: 2024-05-10 with 17,000 tokens."));
    assert!(html.contains("<summary>Daily usage as a table</summary>"));
    // Top billables link to their pages, ids percent-encoded.
    assert!(html.contains(r#"<a href="/ai-metering/billables/user/2">user:2</a>"#));
    assert!(html.contains(r#"href="/ai-metering/billables/org/eu%2Fwest%201""#));
    // Warnings: user:2 over, user:1 approaching, with a native meter.
    let warnings = html
        .split("Approaching or over their limits")
        .nth(1)
        .unwrap();
    let over = warnings.find("user:2").unwrap();
    let approaching = warnings.find("user:1").unwrap();
    assert!(over < approaching, "most urgent first");
    assert!(warnings.contains(r#"<span class="state-over">Over limit</span>"#));
    assert!(warnings.contains(r#"<span class="state-approaching">Approaching</span>"#));
    assert!(warnings.contains(r#"<meter min="0" max="100""#));
    assert!(!warnings.contains("team:globex"));
}

#[tokio::test]
async fn breakdown_page_has_three_tables_and_a_labelled_form() {
    let html = page("/breakdown?provider=openai").await;
    assert_accessible_frame(&html, "Breakdown");
    for heading in ["By provider", "By model", "By feature"] {
        assert!(html.contains(&format!(">{heading}</h2>")), "{heading}");
    }
    assert!(html.contains(r#"<label>Provider<input type="text" name="provider" value="openai">"#));
    assert!(html.contains("<th scope=\"row\">openai/gpt-4o-mini</th>"));
    assert!(
        !html.contains("anthropic/claude"),
        "the provider filter applies"
    );
    assert!(html.contains("From 2024-05-01 00:00 UTC to 2024-06-01 00:00 UTC"));
}

#[tokio::test]
async fn billables_page_lists_plan_limits_usage_remaining_reset_and_wallet() {
    let html = page("/billables").await;
    assert_accessible_frame(&html, "Billables");
    for header in [
        "Plan",
        "Used / limit",
        "Usage",
        "Remaining",
        "Resets",
        "Wallet",
    ] {
        assert!(
            html.contains(&format!("<th scope=\"col\">{header}</th>"))
                || html.contains(&format!("<th class=\"num\" scope=\"col\">{header}</th>")),
            "{header}"
        );
    }
    assert!(
        html.contains("9,000 / 10,000 tokens"),
        "user:1 tokens against its limit"
    );
    assert!(
        html.contains("5,000 / 1,000,000 tokens<br>0.03 USD / 100.00 USD"),
        "globex"
    );
    assert!(html.contains("1,000 tokens"), "user:1 remaining");
    assert!(html.contains(r#"<time datetime="2024-06-01T00:00:00+00:00" title="2024-06-01 00:00 UTC">2024-06-01</time>"#));
    assert!(html.contains("50.00 USD"), "globex wallet");
    assert!(html.contains("Page 1 of 1"));

    let html = page("/billables?per_page=2&page=2").await;
    assert!(html.contains("Page 2 of 3"));
    assert!(html.contains(r#"href="/ai-metering/billables?page=3&amp;per_page=2" rel="next""#));
    assert!(html.contains(r#"href="/ai-metering/billables?per_page=2" rel="prev""#));
}

#[tokio::test]
async fn billable_page_shows_standing_chart_subscriptions_credits_and_history() {
    let html = page("/billables/team/globex").await;
    assert_accessible_frame(&html, "Billables");
    assert!(html.contains("<h1>Billable team:globex</h1>"));
    assert!(html.contains("Pro (pro)"));
    assert_eq!(html.matches("<rect class=\"bar\"").count(), 1);
    assert!(html.contains(">Subscriptions</h2>"));
    assert!(html.contains("<td>top-up</td>"));
    assert!(html.contains(r#"href="/ai-metering/usage?billable=team%3Aglobex""#));

    let app = app(DashboardConfig::allow_all()).await;
    let r = get(&app, "/ai-metering/billables/user/404").await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    assert!(r.body.contains("<h1>Not found</h1>"));
}

#[tokio::test]
async fn usage_page_filters_searches_pages_and_links_the_csv() {
    let html = page("/usage?feature=chat&per_page=2").await;
    assert_accessible_frame(&html, "Usage history");
    assert!(html.contains(r#"role="search""#));
    assert!(
        html.contains(r#"<label>Search (feature, model, metadata)<input type="search" name="q""#)
    );
    assert_eq!(html.matches("<tr><td><time").count(), 2);
    assert!(html.contains("Page 1 of 2"));
    assert!(html.contains(
        r#"href="/ai-metering/usage?feature=chat&amp;page=2&amp;per_page=2" rel="next""#
    ));
    assert!(html.contains(r#"href="/ai-metering/usage.csv?feature=chat" download"#));

    let html = page("/usage?q=T-2002").await;
    assert_eq!(html.matches("<tr><td><time").count(), 1);
    assert!(html.contains("gpt-4o-mini"));

    let app = app(DashboardConfig::allow_all()).await;
    let r = get(&app, "/ai-metering/usage?from=garbage").await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.body.contains("`from`"));
}

#[tokio::test]
async fn hostile_features_and_metadata_are_escaped_everywhere() {
    for uri in [
        "/usage",
        "/breakdown",
        "/billables/team/globex",
        "/usage?q=pwned",
    ] {
        let html = page(uri).await;
        assert!(!html.contains("<img"), "{uri}: raw feature");
        assert!(!html.contains("<script"), "{uri}: raw metadata");
        assert!(html.contains("&lt;img src=x onerror=alert(1)&gt;"), "{uri}");
    }
    let html = page("/usage").await;
    assert!(
        html.contains("&lt;script&gt;alert(\\&quot;pwned\\&quot;)&lt;/script&gt;"),
        "{html}"
    );
    // Hostile values in the query string are escaped in the form too.
    let html = page("/usage?q=%22%3E%3Cscript%3E").await;
    assert!(html.contains(r#"value="&quot;&gt;&lt;script&gt;""#));
}

#[tokio::test]
async fn the_prefix_with_a_trailing_slash_redirects_to_the_overview() {
    let app = app(DashboardConfig::allow_all().with_prefix("/admin/ai")).await;
    let r = get(&app, "/admin/ai/").await;
    assert_eq!(r.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(r.headers["location"], "/admin/ai");
    assert_eq!(get(&app, "/admin/ai").await.status, StatusCode::OK);
    assert_eq!(get(&app, "/admin/ai/usage").await.status, StatusCode::OK);
}

#[tokio::test]
async fn an_empty_prefix_mounts_the_dashboard_at_the_root() {
    let app = app(DashboardConfig::allow_all().with_prefix("")).await;
    let r = get(&app, "/").await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert!(r.body.contains("<html"), "{}", r.body);
    assert_eq!(get(&app, "/usage").await.status, StatusCode::OK);
    assert_eq!(
        get(&app, "/no-such-page").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn out_of_range_pages_are_a_400_page_not_a_dropped_connection() {
    let app = app(DashboardConfig::allow_all()).await;
    for uri in [
        "/ai-metering/usage?page=18446744073709551615",
        "/ai-metering/billables?page=18446744073709551615",
    ] {
        let r = get(&app, uri).await;
        assert_eq!(r.status, StatusCode::BAD_REQUEST, "{uri}");
        assert!(r.body.contains("out of range"), "{uri}: {}", r.body);
    }
}
