//! The page frame (head, header, navigation, main, footer), the response headers of every
//! page, and the error page.

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use maud::{DOCTYPE, Markup, html};

use crate::access::Scope;
use crate::config::DashboardConfig;
use crate::error::DashboardError;

/// The sections of the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Overview,
    Breakdown,
    Billables,
    Usage,
    None,
}

/// No scripts at all, styles only inline, forms only to this origin, no framing.
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; \
                   form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

const CSS: &str = r#"
:root{--fg:#1b1f24;--muted:#57606a;--line:#d0d7de;--bg:#fff;--soft:#f6f8fa;--accent:#1f5f9e;--warn:#8a5a00;--bad:#a40e26}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:var(--fg);background:var(--bg)}
a{color:var(--accent)}
.skip{position:absolute;left:-999px}.skip:focus{left:1rem;top:1rem;background:#fff;padding:.5rem}
header{display:flex;flex-wrap:wrap;align-items:center;gap:1rem 2rem;padding:.75rem 1.5rem;border-bottom:1px solid var(--line);background:var(--soft)}
header .brand{font-weight:600;margin:0}
nav ul{display:flex;flex-wrap:wrap;gap:1.25rem;list-style:none;margin:0;padding:0}
nav a{text-decoration:none}nav a[aria-current=page]{font-weight:600;text-decoration:underline}
.scope{margin-left:auto;color:var(--muted)}
main{max-width:1400px;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.5rem;margin:.5rem 0}h2{font-size:1.15rem;margin:2rem 0 .5rem}
.lead{color:var(--muted);margin-top:0}
dl.stats{display:grid;grid-template-columns:repeat(auto-fit,minmax(11rem,1fr));gap:.75rem;margin:1rem 0}
dl.stats div{border:1px solid var(--line);border-radius:6px;padding:.6rem .9rem}
dl.stats dt{color:var(--muted);font-size:.85rem}dl.stats dd{margin:0;font-size:1.35rem;font-weight:600}
table{border-collapse:collapse;width:100%;margin:.5rem 0;font-size:.92rem}
caption{text-align:left;color:var(--muted);padding:.25rem 0}
th,td{padding:.35rem .6rem;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
th{background:var(--soft);font-weight:600}
tbody th{background:none;font-weight:500}
.nowrap{white-space:nowrap}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.scroll{overflow-x:auto}
code{font-size:.85em;word-break:break-all}
.state-over{color:var(--bad);font-weight:600}.state-approaching{color:var(--warn);font-weight:600}
form.filters{margin-bottom:1rem;display:flex;flex-wrap:wrap;gap:.6rem 1rem;align-items:flex-end;padding:.75rem;border:1px solid var(--line);border-radius:6px;background:var(--soft)}
form.filters label{display:flex;flex-direction:column;font-size:.85rem;color:var(--muted)}
form.filters input{font:inherit;padding:.25rem .4rem;border:1px solid #8c959f;border-radius:4px;min-width:9rem}
button{font:inherit;padding:.3rem .9rem;border-radius:4px;border:1px solid var(--accent);background:var(--accent);color:#fff;cursor:pointer}
nav.pages{display:flex;gap:1rem;align-items:center;margin:.75rem 0}
figure{margin:1rem 0}figcaption{color:var(--muted);font-size:.9rem}
svg.chart{width:100%;height:auto;max-height:320px;display:block}
svg.chart text{font:11px system-ui,sans-serif;fill:var(--muted)}
svg.chart .bar{fill:var(--accent)}svg.chart .bar:hover{fill:#0b3d6e}
svg.chart .grid{stroke:var(--line);stroke-width:1}
details{margin:.5rem 0}
meter{width:4.5rem}
.empty{color:var(--muted);font-style:italic}
footer{max-width:1400px;margin:0 auto;padding:0 1.5rem 2rem;color:var(--muted);font-size:.85rem}
"#;

/// A full page around `content`.
pub(crate) fn page(
    config: &DashboardConfig,
    scope: &Scope,
    current: Section,
    title: &str,
    content: Markup,
) -> Markup {
    let p = config.prefix();
    let home = if p.is_empty() { "/" } else { p };
    let links = [
        (Section::Overview, home.to_owned(), "Overview"),
        (Section::Breakdown, format!("{p}/breakdown"), "Breakdown"),
        (Section::Billables, format!("{p}/billables"), "Billables"),
        (Section::Usage, format!("{p}/usage"), "Usage history"),
    ];
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="robots" content="noindex";
                title { (title) " · " (config.title) }
                style { (maud::PreEscaped(CSS)) }
            }
            body {
                a.skip href="#main" { "Skip to content" }
                header {
                    p.brand { (config.title) }
                    nav aria-label="Dashboard" {
                        ul {
                            @for (section, href, label) in &links {
                                li {
                                    @if *section == current {
                                        a href=(href) aria-current="page" { (label) }
                                    } @else {
                                        a href=(href) { (label) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(t) = scope.tenant() {
                        p.scope { "Tenant: " strong { (t) } }
                    }
                }
                main #main {
                    h1 { (title) }
                    (content)
                }
                footer { "ai-metering dashboard. Times are UTC; costs are rounded for display." }
            }
        }
    }
}

/// A page as a response, with the dashboard's security and caching headers.
pub(crate) fn respond(markup: Markup) -> Response {
    let mut response = markup.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The error page for `err`, with its status.
pub(crate) fn error_page(
    config: &DashboardConfig,
    scope: &Scope,
    err: &DashboardError,
) -> Response {
    let markup = page(
        config,
        scope,
        Section::None,
        err.heading(),
        html! { p { (err.to_string()) } },
    );
    let mut response = respond(markup);
    *response.status_mut() = err.status();
    response
}

/// Shorthand for handlers: the page, or the error page.
pub(crate) fn render(
    config: &DashboardConfig,
    scope: &Scope,
    result: Result<Markup, DashboardError>,
) -> Response {
    match result {
        Ok(markup) => respond(markup),
        Err(e) => error_page(config, scope, &e),
    }
}
