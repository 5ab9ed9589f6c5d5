//! The JSON API: the same data as the pages (see the crate docs for the shapes).

use ai_metering_core::store::{ReportStore, Store};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, header};
use serde::Serialize;

use crate::access::Scope;
use crate::data;
use crate::error::{ApiError, DashboardError};
use crate::filters::UsageQuery;
use crate::pages::{billable_of, query};
use crate::state::App;

fn json<T: Serialize>(result: Result<T, DashboardError>) -> Response {
    let mut response = match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => ApiError(e).into_response(),
    };
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `GET /api/overview`.
pub(crate) async fn overview<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
) -> Response {
    json(data::overview(&app, &scope).await)
}

/// `GET /api/breakdown`.
pub(crate) async fn breakdown<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    json(
        async {
            let q = query(q)?;
            Ok(data::breakdown(&app, &scope, &q).await?.0)
        }
        .await,
    )
}

/// `GET /api/billables`.
pub(crate) async fn billables<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    json(
        async {
            let q = query(q)?;
            data::billables_page(&app, &scope, &q).await
        }
        .await,
    )
}

/// `GET /api/billables/{kind}/{id}`.
pub(crate) async fn billable<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    Path((kind, id)): Path<(String, String)>,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    json(
        async {
            let q = query(q)?;
            let billable = billable_of(kind, id)?;
            data::billable_detail(&app, &scope, billable, &q).await
        }
        .await,
    )
}

/// `GET /api/usage`.
pub(crate) async fn usage<S: Store + ReportStore>(
    State(app): State<App<S>>,
    scope: Scope,
    q: Result<Query<UsageQuery>, QueryRejection>,
) -> Response {
    json(
        async {
            let q = query(q)?;
            let filter = q.filter(&scope, None)?;
            let page = q.page(app.config.per_page)?;
            data::usage_page(&app.metering, &filter, page).await
        }
        .await,
    )
}
