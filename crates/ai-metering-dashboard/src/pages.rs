//! The HTML handlers (and the CSV export), one per page.

use ai_metering_core::Billable;
use ai_metering_core::store::{ReportStore, Store};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};

use crate::access::Scope;
use crate::csv_export::CsvExport;
use crate::data;
use crate::error::DashboardError;
use crate::filters::UsageQuery;
use crate::html::{self, Section};
use crate::state::App;

/// The query string, or a bad request naming what is wrong with it.
pub(crate) fn query(
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Result<UsageQuery, DashboardError> {
    q.map(|Query(q)| q)
        .map_err(|e| DashboardError::BadRequest(format!("bad query string: {}", e.body_text())))
}

/// The billable of a `{kind}/{id}` path.
pub(crate) fn billable_of(kind: String, id: String) -> Result<Billable, DashboardError> {
    if kind.is_empty() || id.is_empty() {
        return Err(DashboardError::NotFound("no such billable".to_owned()));
    }
    Ok(Billable { kind, id })
}

/// `GET /`.
pub(crate) async fn overview<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
) -> Response {
    let config = &app.config;
    let result = data::overview(&app, &scope).await.map(|o| {
        html::page(
            config,
            &scope,
            Section::Overview,
            "Overview",
            html::overview_page(config, &o),
        )
    });
    html::render(config, &scope, result)
}

/// `GET /breakdown`.
pub(crate) async fn breakdown<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    let config = &app.config;
    let result = async {
        let q = query(q)?;
        let (b, _) = data::breakdown(&app, &scope, &q).await?;
        Ok(html::page(
            config,
            &scope,
            Section::Breakdown,
            "Breakdown by provider, model and feature",
            html::breakdown_page(config, &scope, &q, &b),
        ))
    }
    .await;
    html::render(config, &scope, result)
}

/// `GET /billables`.
pub(crate) async fn billables<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    let config = &app.config;
    let result = async {
        let q = query(q)?;
        let b = data::billables_page(&app, &scope, &q).await?;
        Ok(html::page(
            config,
            &scope,
            Section::Billables,
            "Billables",
            html::billables_page(config, &q, &b),
        ))
    }
    .await;
    html::render(config, &scope, result)
}

/// `GET /billables/{kind}/{id}`.
pub(crate) async fn billable<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    Path((kind, id)): Path<(String, String)>,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    let config = &app.config;
    let result = async {
        let q = query(q)?;
        let billable = billable_of(kind, id)?;
        let d = data::billable_detail(&app, &scope, billable, &q).await?;
        let title = format!("Billable {}", d.status.billable);
        Ok(html::page(
            config,
            &scope,
            Section::Billables,
            &title,
            html::billable_page(config, &q, &d),
        ))
    }
    .await;
    html::render(config, &scope, result)
}

/// `GET /usage`.
pub(crate) async fn usage<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    let config = &app.config;
    let result = async {
        let q = query(q)?;
        let filter = q.filter(&scope, None)?;
        let page = q.page(config.per_page)?;
        let u = data::usage_page(&app.metering, &filter, page).await?;
        Ok(html::page(
            config,
            &scope,
            Section::Usage,
            "Usage history",
            html::usage_page(config, &scope, &q, &u),
        ))
    }
    .await;
    html::render(config, &scope, result)
}

/// `GET /usage.csv`: every row the filters select (no paging), up to the configured cap.
pub(crate) async fn usage_csv<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    let result = async {
        let q = query(q)?;
        let filter = q.filter(&scope, None)?;
        let mut csv = CsvExport::new()?;
        let truncated =
            data::for_each_usage_row(&app.metering, &filter, app.config.csv_max_rows, |row| {
                csv.push(row)
            })
            .await?;
        Ok((csv.finish()?, truncated))
    }
    .await;
    match result {
        Ok((bytes, truncated)) => {
            let mut response = bytes.into_response();
            let headers = response.headers_mut();
            headers.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/csv; charset=utf-8"),
            );
            headers.insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment; filename=\"ai-usage.csv\""),
            );
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            headers.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            );
            if truncated {
                headers.insert("x-ai-metering-truncated", HeaderValue::from_static("true"));
            }
            response
        }
        Err(e) => html::error_page(&app.config, &scope, &e),
    }
}

/// Any other path under the prefix (after the gate let the request through).
pub(crate) async fn not_found<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
) -> Response {
    html::error_page(
        &app.config,
        &scope,
        &DashboardError::NotFound("there is no page at this address".to_owned()),
    )
}
