//! What can go wrong while answering a request, and how it is shown.

use ai_metering_core::store::{StoreError, StoreErrorKind};
use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

/// A request that cannot be answered with data.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DashboardError {
    /// A query parameter or path segment that cannot be used; the message names it.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing to show under this address (or nothing the viewer may see).
    #[error("{0}")]
    NotFound(String),
    /// The store or the metering service failed.
    #[error("{message}")]
    Internal {
        /// The status to answer with (500, or 503 when the store is unavailable).
        status: StatusCode,
        /// A message safe to show: the kind of failure, not the backend's details.
        message: String,
    },
}

impl DashboardError {
    /// The HTTP status of this error.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Internal { status, .. } => *status,
        }
    }

    /// A short heading for the error page.
    pub(crate) fn heading(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "Bad request",
            Self::NotFound(_) => "Not found",
            Self::Internal { .. } => "Something went wrong",
        }
    }
}

impl From<StoreError> for DashboardError {
    fn from(e: StoreError) -> Self {
        let status = if e.kind() == StoreErrorKind::Unavailable {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        // The backend's message may hold SQL or connection details: show only the kind.
        Self::Internal {
            status,
            message: format!("the usage store failed: {}", e.kind()),
        }
    }
}

impl From<ai_metering_core::Error> for DashboardError {
    fn from(e: ai_metering_core::Error) -> Self {
        match e {
            ai_metering_core::Error::Store(e) => e.into(),
            other => Self::Internal {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: other.to_string(),
            },
        }
    }
}

/// An error answered as JSON: `{"error": "..."}` with the error's status.
pub(crate) struct ApiError(pub(crate) DashboardError);

impl From<DashboardError> for ApiError {
    fn from(e: DashboardError) -> Self {
        Self(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.0.to_string() });
        (self.0.status(), Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_hide_backend_details() {
        let e: DashboardError =
            StoreError::new(StoreErrorKind::Other, "SELECT secret FROM t failed").into();
        assert_eq!(e.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!e.to_string().contains("secret"), "{e}");
        let e: DashboardError = StoreError::new(StoreErrorKind::Unavailable, "down").into();
        assert_eq!(e.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[test]
    fn api_errors_are_json_with_the_status() {
        let r = ApiError(DashboardError::BadRequest("bad `from`".into())).into_response();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[http::header::CONTENT_TYPE], "application/json");
    }
}
