//! The dashboard behind a login: an admin token (from the environment) exchanged for a
//! session cookie, and a logout that a cross-site form cannot trigger.
//!
//! - `GET /ai-metering/login`: a form asking for the token (and, once logged in, a logout
//!   button);
//! - `POST /ai-metering/login` (`token=...`): compared in constant time; a match sets the
//!   session cookie (`HttpOnly`, `SameSite=Strict`, path `/ai-metering`) and redirects to the
//!   dashboard, a mismatch answers 401; after 5 wrong tokens in a minute from one address
//!   (as the server reports it), sign-ins from it answer 429 until the minute is over;
//! - `POST /ai-metering/logout` (`csrf=...`): needs the session cookie and the session's own
//!   CSRF token (printed in the logout form); ends the session.
//!
//! Every dashboard page and JSON route asks the session: without one it answers 403 (the
//! page says where to log in). Sessions live in the gateway's memory for 12 hours; a restart
//! logs everybody out.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use ai_metering_dashboard::{Access, DashboardConfig};
use axum::Router;
use axum::extract::{ConnectInfo, Form, FromRequest, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Where the dashboard is mounted.
pub const DASHBOARD_PREFIX: &str = "/ai-metering";
/// The session cookie's name.
const COOKIE: &str = "ai_metering_session";
/// How long a session lasts.
const SESSION_TTL: Duration = Duration::from_secs(12 * 3600);
/// Wrong tokens allowed per client address in [`FAILURE_WINDOW`] before sign-ins from it
/// are refused (429) until the window ends.
const MAX_FAILURES: u32 = 5;
/// See [`MAX_FAILURES`].
const FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// The admin login: the token's digest and the open sessions.
#[derive(Clone)]
pub(crate) struct AdminLogin {
    token_digest: [u8; 32],
    /// Session id -> (its CSRF token, when it expires).
    sessions: Arc<Mutex<HashMap<String, (String, Instant)>>>,
    /// Wrong tokens per client address.
    failures: Arc<Mutex<Failures>>,
}

/// Wrong tokens per client address (`None` when the server gives none): how many, since when.
type Failures = HashMap<Option<IpAddr>, (u32, Instant)>;

impl AdminLogin {
    /// A login for `token`; `None` for an empty one (the dashboard stays closed).
    pub(crate) fn new(token: &str) -> Option<Self> {
        let token = token.trim();
        if token.is_empty() {
            return None;
        }
        Some(Self {
            token_digest: Sha256::digest(token.as_bytes()).into(),
            sessions: Arc::default(),
            failures: Arc::default(),
        })
    }

    /// The gate the dashboard asks: everything for a live session, nothing otherwise.
    pub(crate) fn dashboard_config(&self) -> DashboardConfig {
        let login = self.clone();
        DashboardConfig::new()
            .with_prefix(DASHBOARD_PREFIX)
            .with_gate(move |parts: &Parts| {
                if login.session(&parts.headers).is_some() {
                    Access::AllowAll
                } else {
                    Access::Deny
                }
            })
    }

    /// The login and logout routes.
    pub(crate) fn routes(&self) -> Router {
        Router::new()
            .route(&format!("{DASHBOARD_PREFIX}/login"), get(form).post(login))
            .route(&format!("{DASHBOARD_PREFIX}/logout"), post(logout))
            .with_state(self.clone())
    }

    /// The live session of `headers`' cookie: its id and CSRF token.
    fn session(&self, headers: &HeaderMap) -> Option<(String, String)> {
        let id = cookie(headers)?;
        let mut sessions = self.sessions.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        sessions.retain(|_, (_, expires)| *expires > now);
        sessions.get(&id).map(|(csrf, _)| (id, csrf.clone()))
    }
}

/// The session id in a `Cookie` header.
fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

fn random_token() -> Option<String> {
    let mut bytes = [0_u8; 32];
    getrandom::fill(&mut bytes).ok()?;
    Some(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn page(status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ai-metering: sign in</title></head>\
         <body style=\"font-family: sans-serif; max-width: 28rem; margin: 4rem auto\">{body}</body></html>"
    );
    (status, Html(html)).into_response()
}

async fn form(State(login): State<AdminLogin>, headers: HeaderMap) -> Response {
    if let Some((_, csrf)) = login.session(&headers) {
        return page(
            StatusCode::OK,
            &format!(
                "<p>You are signed in. <a href=\"{DASHBOARD_PREFIX}\">Open the dashboard</a>.</p>\
                 <form method=\"post\" action=\"{DASHBOARD_PREFIX}/logout\">\
                 <input type=\"hidden\" name=\"csrf\" value=\"{csrf}\">\
                 <button type=\"submit\">Sign out</button></form>"
            ),
        );
    }
    page(
        StatusCode::OK,
        &format!(
            "<h1>AI usage dashboard</h1><form method=\"post\" action=\"{DASHBOARD_PREFIX}/login\">\
             <label>Admin token <input type=\"password\" name=\"token\" autofocus></label> \
             <button type=\"submit\">Sign in</button></form>"
        ),
    )
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(State(login): State<AdminLogin>, request: Request) -> Response {
    // Counted per client address when the server says it (`serve` does), else together.
    let client = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let now = Instant::now();
    let blocked_for = {
        let mut failures = login
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        failures.retain(|_, (_, since)| now.duration_since(*since) < FAILURE_WINDOW);
        failures
            .get(&client)
            .filter(|(count, _)| *count >= MAX_FAILURES)
            .map(|(_, since)| FAILURE_WINDOW.saturating_sub(now.duration_since(*since)))
    };
    if let Some(wait) = blocked_for {
        let mut response = page(
            StatusCode::TOO_MANY_REQUESTS,
            "<p>Too many wrong tokens: try again in a minute.</p>",
        );
        if let Ok(v) = HeaderValue::from_str(&wait.as_secs().max(1).to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return response;
    }
    let Ok(Form(form)) = Form::<LoginForm>::from_request(request, &()).await else {
        return page(
            StatusCode::BAD_REQUEST,
            "<p>Send the form's <code>token</code>.</p>",
        );
    };
    let presented: [u8; 32] = Sha256::digest(form.token.trim().as_bytes()).into();
    if !bool::from(presented.ct_eq(&login.token_digest)) {
        let mut failures = login
            .failures
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let entry = failures.entry(client).or_insert((0, now));
        entry.0 = entry.0.saturating_add(1);
        drop(failures);
        return page(
            StatusCode::UNAUTHORIZED,
            &format!("<p>Wrong token. <a href=\"{DASHBOARD_PREFIX}/login\">Try again</a>.</p>"),
        );
    }
    login
        .failures
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&client);
    let (Some(id), Some(csrf)) = (random_token(), random_token()) else {
        return page(
            StatusCode::SERVICE_UNAVAILABLE,
            "<p>No session could be made: the system gave no random bytes.</p>",
        );
    };
    login
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(id.clone(), (csrf, Instant::now() + SESSION_TTL));
    let mut response = Redirect::to(DASHBOARD_PREFIX).into_response();
    let cookie = format!(
        "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path={DASHBOARD_PREFIX}; Max-Age={}",
        SESSION_TTL.as_secs()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Deserialize)]
struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(
    State(login): State<AdminLogin>,
    headers: HeaderMap,
    Form(form): Form<LogoutForm>,
) -> Response {
    let Some((id, csrf)) = login.session(&headers) else {
        return page(StatusCode::FORBIDDEN, "<p>Not signed in.</p>");
    };
    if !bool::from(form.csrf.as_bytes().ct_eq(csrf.as_bytes())) {
        return page(
            StatusCode::FORBIDDEN,
            "<p>The sign-out form is stale: sign out from the sign-in page.</p>",
        );
    }
    login
        .sessions
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .remove(&id);
    let mut response = Redirect::to(&format!("{DASHBOARD_PREFIX}/login")).into_response();
    let gone = format!("{COOKIE}=; HttpOnly; SameSite=Strict; Path={DASHBOARD_PREFIX}; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}
