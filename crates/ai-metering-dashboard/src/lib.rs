//! The **ai-metering dashboard**: an axum [`Router`](axum::Router) with server-rendered HTML
//! pages and a JSON API over a [`Metering`](ai_metering_core::Metering) service and its
//! store. The host mounts it under a prefix (default `/ai-metering`):
//!
//! ```
//! use ai_metering_core::Metering;
//! use ai_metering_core::store::{ReportStore, Store};
//! use ai_metering_dashboard::{Access, DashboardConfig};
//!
//! fn with_dashboard<S: Store + ReportStore>(
//!     app: axum::Router,
//!     metering: Metering<S>,
//! ) -> axum::Router {
//!     // Operators see everything; the gate reads what the host's auth middleware stored.
//!     let config = DashboardConfig::new().with_gate(|parts: &http::request::Parts| {
//!         if parts.extensions.get::<IsOperator>().is_some() { Access::AllowAll } else { Access::Deny }
//!     });
//!     ai_metering_dashboard::mount(app, metering, config)
//! }
//! # #[derive(Clone)] struct IsOperator;
//! ```
//!
//! # Access
//!
//! Every request goes through the [`Gate`] of the [`DashboardConfig`]: a closure over the
//! request's [`Parts`](http::request::Parts) (or any type implementing the trait) returning
//! [`Access::Deny`] (403), [`Access::AllowAll`], or [`Access::Tenant`]. **Without a gate every
//! request is denied**; [`DashboardConfig::allow_all`] opts into letting everyone in (for
//! demos, or when the host guards the prefix itself).
//!
//! A tenant-scoped viewer sees only usage recorded under its tenant: the tenant is applied to
//! every usage query of every page, API document and CSV export, whatever `tenant` parameter
//! was sent, and a billable without usage in that tenant is not found (404). For a billable it
//! can see, the plan, limit status and wallet are the billable's own (they are not per
//! tenant), so its limit usage counts all of its usage.
//!
//! # Pages
//!
//! HTML, no JavaScript (the daily chart is inline SVG drawn on the server, with a tooltip per
//! bar and the same data as a table), a Content-Security-Policy that forbids scripts, every
//! value escaped.
//!
//! | Path | Page |
//! |---|---|
//! | `/` | overview of the current period: tokens, cost, calls, active billables, usage per day, top billables, billables approaching or over their limits |
//! | `/breakdown` | sums by provider, model and feature (current period unless `from`/`until` say otherwise; same filters as `/usage`) |
//! | `/billables` | billables with usage in the last 90 days (configurable), heaviest first: plan, limits, usage %, remaining, reset date, wallet; `q` finds billables by `KIND:ID` |
//! | `/billables/{kind}/{id}` | one billable: standing, daily chart, models, features, subscriptions, credit transactions, history |
//! | `/usage` | usage history, newest first, filtered, searched and paginated |
//! | `/usage.csv` | the rows `/usage` selects (all pages, up to 100,000 by default) as CSV |
//!
//! # Query parameters
//!
//! `/usage`, `/usage.csv`, `/breakdown` and their API twins accept, all optional (blank means
//! unset): `billable` (`KIND:ID`), `tenant` (ignored for tenant-scoped viewers), `provider`,
//! `model`, `feature`, `from` and `until` (a date `YYYY-MM-DD`, `until` inclusive, or an
//! RFC 3339 instant, `until` exclusive), `q` (text searched case-insensitively in feature,
//! model and metadata), `page` (from 1) and `per_page` (default 50, at most
//! [`Page::MAX_LIMIT`](ai_metering_core::store::Page::MAX_LIMIT)). A value that cannot be used
//! is answered with 400 and a message naming the parameter.
//!
//! # JSON API
//!
//! Under the same prefix and gate. Money amounts are decimal **strings** at full precision
//! (`"0.001234"`), instants RFC 3339 in UTC, days `YYYY-MM-DD`. Errors are
//! `{"error": "message"}` with the status (400, 404, 500 or 503). A *sums* object is
//! `{"calls", "input_tokens", "cached_input_tokens", "cache_write_tokens", "output_tokens",
//! "reasoning_tokens", "total_tokens", "cost"}`; a *group* is `{"key", "sums"}` (keys:
//! provider, `provider/model`, feature (`""` for none), or `kind:id`).
//!
//! - `GET /api/overview`: `{"period": {"start", "end"}, "generated_at", "tenant",
//!   "currency", "totals": sums, "active_billables", "daily": [{"day", ...sums}],
//!   "top_billables": [group], "attention": [status], "checked_billables"}`.
//! - `GET /api/breakdown`: `{"from", "until", "tenant", "currency", "totals": sums,
//!   "providers", "models", "features"}`, each `{"rows": [group], "groups"}` (the largest
//!   100 rows, and how many groups there are).
//! - `GET /api/billables`: `{"window": {"start", "end"}, "tenant", "currency", "page",
//!   "per_page", "total", "pages", "billables": [status]}`.
//! - `GET /api/billables/{kind}/{id}`: `{"status", "window", "daily", "models", "features",
//!   "subscriptions", "transactions", "history"}`; `history` as `/api/usage`, paged with
//!   `page`/`per_page`.
//! - `GET /api/usage`: `{"page", "per_page", "total", "pages", "currency", "sums", "rows"}`,
//!   each row a stored usage record (`id`, `billable` `{kind, id}`, `user_id`, `tenant`,
//!   `provider`, `model`, `feature`, `usage`, `cost`, `metadata`, `idempotency_key`,
//!   `occurred_at`, `estimated`).
//!
//! A *status* is `{"billable", "usage": sums, "plan": {"slug", "name"} | null,
//! "billing_mode", "overage_policy", "period", "state": "over" | "approaching" | "ok" |
//! "unlimited" | "unknown", "limit": {"allowed", "approaching", "threshold_reached",
//! "exceeded", "remaining_tokens", "remaining_cost", "usage_percentage", "reset_at",
//! "limits", "used"} | null, "wallet": {"currency", "balance", "held", "available"} | null,
//! "error"}`.
//!
//! # Scale
//!
//! Pages read the store's sums and grouped sums (which a database store answers from its
//! aggregates and indexes) and fetch at most one bounded page of rows; the CSV export reads
//! bounded pages too, up to [`DashboardConfig::with_csv_max_rows`], and flags a cut export
//! with the `x-ai-metering-truncated: true` header.
#![warn(missing_docs)]

mod access;
mod api;
mod config;
mod csv_export;
mod data;
mod error;
mod filters;
mod format;
mod html;
mod pages;
mod routes;
mod state;

pub use access::{Access, Gate};
pub use config::DashboardConfig;
pub use routes::{mount, router};
