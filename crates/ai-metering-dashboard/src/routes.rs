//! The router: every route, behind the access gate.

use std::sync::Arc;

use ai_metering_core::Metering;
use ai_metering_core::store::{ReportStore, Store};
use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use http::StatusCode;
use http::request::Parts;

use crate::access::{Access, Scope};
use crate::config::DashboardConfig;
use crate::state::App;
use crate::{api, pages};

/// Adds the dashboard to `app` under `config.prefix()`, the usual way to install it:
///
/// ```
/// use ai_metering_core::Metering;
/// # use ai_metering_core::store::{ReportStore, Store};
/// use ai_metering_dashboard::DashboardConfig;
///
/// fn app<S: Store + ReportStore>(metering: Metering<S>) -> axum::Router {
///     let config = DashboardConfig::new().with_gate(|_: &http::request::Parts| {
///         ai_metering_dashboard::Access::AllowAll
///     });
///     ai_metering_dashboard::mount(axum::Router::new(), metering, config)
/// }
/// ```
///
/// The dashboard is nested at the prefix, and `{prefix}/` redirects (308) to `{prefix}`,
/// which axum's nesting alone leaves unanswered. With an empty prefix the dashboard is
/// merged at the root instead (axum cannot nest there); it then answers every path `app`
/// does not, so `app` must not have a fallback of its own.
pub fn mount<S: Store + ReportStore>(
    app: Router,
    metering: Metering<S>,
    config: DashboardConfig,
) -> Router {
    let prefix = config.prefix().to_owned();
    let dashboard = router(metering, config);
    if prefix.is_empty() {
        return app.merge(dashboard);
    }
    let overview = prefix.clone();
    app.route(
        &format!("{prefix}/"),
        get(move || async move { Redirect::permanent(&overview) }),
    )
    .nest(&prefix, dashboard)
}

/// The dashboard's router, for hosts that place it themselves (usually [`mount`] does):
/// nest it under `config.prefix()`.
///
/// Every request first goes through the configured [`Gate`](crate::Gate): without one, or
/// when it answers [`Access::Deny`], the answer is 403 Forbidden.
pub fn router<S: Store + ReportStore>(metering: Metering<S>, config: DashboardConfig) -> Router {
    let config = Arc::new(config);
    let app = App { metering, config };
    Router::new()
        .route("/", get(pages::overview::<S>))
        .route("/breakdown", get(pages::breakdown::<S>))
        .route("/billables", get(pages::billables::<S>))
        .route("/billables/{kind}/{id}", get(pages::billable::<S>))
        .route("/usage", get(pages::usage::<S>))
        .route("/usage.csv", get(pages::usage_csv::<S>))
        .route("/api/overview", get(api::overview::<S>))
        .route("/api/breakdown", get(api::breakdown::<S>))
        .route("/api/billables", get(api::billables::<S>))
        .route("/api/billables/{kind}/{id}", get(api::billable::<S>))
        .route("/api/usage", get(api::usage::<S>))
        .fallback(pages::not_found::<S>)
        .layer(middleware::from_fn_with_state(app.clone(), gate::<S>))
        .with_state(app)
}

/// Asks the gate; denies with 403, or passes the request on with its [`Scope`].
async fn gate<S: Store + ReportStore>(
    State(app): State<App<S>>,
    request: Request,
    next: Next,
) -> Response {
    let (mut parts, body) = request.into_parts();
    let access = match &app.config.gate {
        Some(gate) => gate.check(&parts),
        None => Access::Deny,
    };
    let Some(scope) = Scope::of(access) else {
        return forbidden();
    };
    parts.extensions.insert(scope);
    next.run(Request::from_parts(parts, body)).await
}

fn forbidden() -> Response {
    (
        StatusCode::FORBIDDEN,
        [(http::header::CACHE_CONTROL, "no-store")],
        "403 Forbidden: access to the AI usage dashboard is denied.",
    )
        .into_response()
}

impl<St: Send + Sync> FromRequestParts<St> for Scope {
    type Rejection = Response;

    /// The scope the gate granted; a request that did not pass the gate is forbidden.
    async fn from_request_parts(parts: &mut Parts, _state: &St) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Scope>()
            .cloned()
            .ok_or_else(forbidden)
    }
}
