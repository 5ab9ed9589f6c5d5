//! [`QuotaRejection`]: why the layer answered instead of the route, and its RFC 9457
//! `application/problem+json` response.
//!
//! | rejection | status | problem `type` |
//! |---|---|---|
//! | [`MissingBillable`](QuotaRejection::MissingBillable) | 401 | `about:blank` |
//! | [`QuotaExceeded`](QuotaRejection::QuotaExceeded) | 429 | [`QUOTA_EXCEEDED_TYPE`] |
//! | [`InsufficientCredits`](QuotaRejection::InsufficientCredits) | 402 | [`INSUFFICIENT_CREDITS_TYPE`] |
//! | [`SubscriptionRequired`](QuotaRejection::SubscriptionRequired) | 403 | `about:blank` |
//! | [`CallInFlight`](QuotaRejection::CallInFlight) | 429, `Retry-After: 1` | `about:blank` |
//! | [`IdempotencyKeyInFlight`](QuotaRejection::IdempotencyKeyInFlight) | 409 | `about:blank` |
//! | [`Unavailable`](QuotaRejection::Unavailable) | 503 | `about:blank` |
//! | [`Internal`](QuotaRejection::Internal) | 500 | `about:blank` |
//! | [`ProviderFailed`](QuotaRejection::ProviderFailed) | 502 | `about:blank` |
//! | [`NotRecorded`](QuotaRejection::NotRecorded) | 500 | `about:blank` |
//! | [`AlreadyRecorded`](QuotaRejection::AlreadyRecorded) | 409 | `about:blank` |
//!
//! The last three come only from a handler's metered call: `QuotaRejection` converts from
//! [`Error`] and from [`MeterError`], so a handler returning
//! `Result<_, QuotaRejection>` writes `quota.meter()...call(...).await?` and answers every
//! refusal exactly as the layer does:
//!
//! - a refusal before the provider runs ([`MeterError::Metering`]) is mapped as [`Error`]
//!   is: 429, 402, 403, 409, 503 or 500, with the same bodies and headers as the layer's;
//! - the provider's own error ([`MeterError::Provider`]) is a **502** whose body says only
//!   that the provider failed: its text may carry internal details (URLs, keys, request
//!   ids), so it is kept as the [source](std::error::Error::source) for logs instead;
//! - [`MeterError::NotRecorded`] (the provider answered, but its usage could not be
//!   determined or stored, so nothing was charged) is a **500**, and the response is
//!   dropped: serving an answer nobody paid for is the handler's decision to make, by
//!   matching `MeterError::NotRecorded { response, .. }` before `?`;
//! - [`MeterError::AlreadyRecorded`] (a repeated idempotency key: the provider was not
//!   called again) is a **409**: the stored row is kept in the rejection for a handler that
//!   wants to answer from it.
//!
//! The 429 body also carries the fields `error`, `message`, `remaining_tokens`,
//! `remaining_cost` and `usage_percentage`, so that existing clients reading them keep
//! working. The values are the real ones: `remaining_tokens` may be above 0 when the route's estimate is what does
//! not fit, and a dimension without a limit is `null`. Amounts are exact JSON numbers
//! (never rounded through a float).

use std::fmt;

use ai_metering_core::limit::{LimitCheck, LimitKind};
use ai_metering_core::store::UsageRecord;
use ai_metering_core::{Error, MeterError, Money};
use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use http::header::{CONTENT_TYPE, HeaderValue};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

use crate::headers::format_decimal;

/// The problem type of a 429: the one registered by draft-ietf-httpapi-ratelimit-headers
/// ("quota-exceeded"), whose `violated-policies` member names the policies of the
/// `RateLimit` field (`"tokens"`, `"cost"`).
pub const QUOTA_EXCEEDED_TYPE: &str =
    "https://iana.org/assignments/http-problem-types#quota-exceeded";

/// The problem type of a 402 for a credits-mode billable whose wallet cannot cover the
/// request. An identifier (RFC 9457 does not require it to resolve).
pub const INSUFFICIENT_CREDITS_TYPE: &str = "https://ai-metering.dev/problems/insufficient-credits";

/// The media type of every body the layer writes.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// Why the [`QuotaLayer`](crate::QuotaLayer) answered a request itself instead of passing
/// it to the route. Converted into a response by its [`IntoResponse`] impl, or by the
/// layer's [`on_rejection`](crate::QuotaLayer::on_rejection) handler.
#[derive(Debug)]
#[non_exhaustive]
pub enum QuotaRejection {
    /// No billable could be found for the request (401).
    MissingBillable,
    /// A limit is reached, or the route's estimate does not fit what is left (429).
    QuotaExceeded {
        /// The evaluation that refused the request.
        check: Box<LimitCheck>,
        /// Seconds until the period resets (the `Retry-After` value), when known.
        retry_after: Option<u64>,
    },
    /// A credits-mode billable's wallet cannot cover the route's estimate (402).
    InsufficientCredits {
        /// The estimated cost.
        required: Money,
        /// What the wallet had available.
        available: Decimal,
    },
    /// The billable has no active subscription and the metering requires one (403;
    /// [`MeteringConfig::require_subscription`](ai_metering_core::MeteringConfig::require_subscription)).
    /// A refusal, not a failure: it is not let through by
    /// [`fail_open`](crate::QuotaLayer::fail_open).
    SubscriptionRequired,
    /// The call could not be estimated and another unestimated call of the billable is in
    /// flight ([`Error::CallInFlight`]): 429 with `Retry-After: 1`, which the OpenAI and
    /// Anthropic SDKs retry by themselves.
    CallInFlight,
    /// A call with the request's idempotency key is in flight
    /// ([`Error::IdempotencyKeyInFlight`]): 409 Conflict; retried once the first is done,
    /// the request gets that call's stored result.
    IdempotencyKeyInFlight,
    /// The store failed and the layer fails closed (503).
    Unavailable(Error),
    /// The quota check failed for another reason: a subscription naming a missing plan,
    /// an invalid feature name... (500).
    Internal(Error),
    /// The provider call of a handler's meter failed ([`MeterError::Provider`]): 502; the
    /// provider's error is the [source](std::error::Error::source), not shown to the client.
    ProviderFailed(Box<dyn std::error::Error + Send + Sync>),
    /// The provider answered but the usage could not be determined or stored
    /// ([`MeterError::NotRecorded`]; nothing was charged): 500.
    NotRecorded(Error),
    /// The idempotency key was already recorded and the provider was not called again
    /// ([`MeterError::AlreadyRecorded`]): 409 Conflict.
    AlreadyRecorded(Box<UsageRecord>),
}

impl QuotaRejection {
    /// The HTTP status of the default response.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingBillable => StatusCode::UNAUTHORIZED,
            Self::QuotaExceeded { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::InsufficientCredits { .. } => StatusCode::PAYMENT_REQUIRED,
            Self::SubscriptionRequired => StatusCode::FORBIDDEN,
            Self::CallInFlight => StatusCode::TOO_MANY_REQUESTS,
            Self::IdempotencyKeyInFlight => StatusCode::CONFLICT,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) | Self::NotRecorded(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::ProviderFailed(_) => StatusCode::BAD_GATEWAY,
            Self::AlreadyRecorded(_) => StatusCode::CONFLICT,
        }
    }

    /// The problem's `detail`: a sentence for the client (store and internal errors are not
    /// disclosed; they are logged).
    pub fn detail(&self) -> String {
        match self {
            Self::MissingBillable => "No billable could be determined for this request.".into(),
            Self::QuotaExceeded { check, .. } => {
                let which = match check.exceeded {
                    Some(LimitKind::Tokens) => "token",
                    Some(LimitKind::Cost) => "cost",
                    None => "usage",
                };
                let reached = if check.remaining_tokens == Some(0)
                    || check.remaining_cost == Some(Decimal::ZERO)
                {
                    "is reached"
                } else {
                    "would be exceeded by this request"
                };
                match check.reset_at {
                    Some(at) => format!(
                        "The {which} limit for this period {reached}; it resets at {}.",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ),
                    None => format!("The {which} limit for this period {reached}."),
                }
            }
            Self::InsufficientCredits {
                required,
                available,
            } => format!(
                "The credit balance cannot cover this request (estimated {} {}, available {} {}).",
                format_decimal(required.amount),
                required.currency,
                format_decimal(*available),
                required.currency
            ),
            Self::SubscriptionRequired => {
                "An active subscription is required for this request.".into()
            }
            Self::CallInFlight => "Another request of this account whose usage cannot be estimated is in progress; retry in a second, or set max_tokens.".into(),
            Self::IdempotencyKeyInFlight => {
                "A request with this idempotency key is in progress; retry once it is done."
                    .into()
            }
            Self::Unavailable(_) => {
                "Usage limits cannot be checked right now; try again later.".into()
            }
            Self::Internal(_) => "Usage limits could not be checked.".into(),
            Self::ProviderFailed(_) => "The AI provider failed to answer this request.".into(),
            Self::NotRecorded(_) => {
                "The AI provider answered, but its usage could not be recorded; nothing was charged."
                    .into()
            }
            Self::AlreadyRecorded(_) => {
                "A request with this idempotency key was already processed.".into()
            }
        }
    }

    /// The response body: the problem document as JSON.
    pub fn body_text(&self) -> String {
        let status = self.status();
        let detail = self.detail();
        let json = match self {
            Self::QuotaExceeded { check, retry_after } => {
                let policies: Vec<&'static str> =
                    check.exceeded.iter().map(|k| k.as_str()).collect();
                serde_json::to_string(&QuotaExceededBody {
                    type_: QUOTA_EXCEEDED_TYPE,
                    title: "AI usage quota exceeded",
                    status: status.as_u16(),
                    detail,
                    violated_policies: policies,
                    limit: check.exceeded.map(|k| k.as_str()),
                    reset_at: check
                        .reset_at
                        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    retry_after: *retry_after,
                    error: "AI usage limit exceeded",
                    message: "You have reached your AI usage limit for this period.",
                    remaining_tokens: check.remaining_tokens,
                    remaining_cost: check.remaining_cost.map(Number),
                    usage_percentage: Number(check.usage_percentage),
                })
            }
            Self::InsufficientCredits {
                required,
                available,
            } => serde_json::to_string(&InsufficientCreditsBody {
                type_: INSUFFICIENT_CREDITS_TYPE,
                title: "Insufficient AI credits",
                status: status.as_u16(),
                detail,
                required: Number(required.amount),
                available: Number(*available),
                currency: required.currency.as_str(),
                error: "Insufficient AI credits",
                message: "Your credit balance is too low for this request.",
            }),
            _ => serde_json::to_string(&BasicProblem {
                type_: "about:blank",
                title: status.canonical_reason().unwrap_or("Error"),
                status: status.as_u16(),
                detail,
            }),
        };
        // Serialising these plain structs cannot fail; keep a valid body regardless.
        json.unwrap_or_else(|_| {
            format!(
                "{{\"type\":\"about:blank\",\"status\":{}}}",
                status.as_u16()
            )
        })
    }
}

impl fmt::Display for QuotaRejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Unavailable(e) => write!(f, "usage store unavailable: {e}"),
            Self::Internal(e) => write!(f, "quota check failed: {e}"),
            Self::ProviderFailed(e) => write!(f, "provider call failed: {e}"),
            Self::NotRecorded(e) => write!(
                f,
                "the provider answered but the usage was not recorded: {e}"
            ),
            other => f.write_str(&other.detail()),
        }
    }
}

impl std::error::Error for QuotaRejection {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Unavailable(e) | Self::Internal(e) | Self::NotRecorded(e) => Some(e),
            Self::ProviderFailed(e) => Some(e.as_ref()),
            _ => None,
        }
    }
}

impl IntoResponse for QuotaRejection {
    fn into_response(self) -> Response {
        let mut response = Response::new(Body::from(self.body_text()));
        *response.status_mut() = self.status();
        response
            .headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        let retry_after = match &self {
            Self::QuotaExceeded { retry_after, .. } => *retry_after,
            Self::CallInFlight => Some(1),
            _ => None,
        };
        if let Some(secs) = retry_after {
            response
                .headers_mut()
                .insert(http::header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

impl From<Error> for QuotaRejection {
    /// The rejection a handler answers with when a [`Meter`](ai_metering_core::Meter)
    /// refuses a call: the same statuses and bodies as the layer's own refusals.
    ///
    /// ```
    /// use ai_metering_core::{Billable, Error};
    /// use ai_metering_tower::QuotaRejection;
    /// let busy = QuotaRejection::from(Error::CallInFlight { billable: Billable::new("user", 1) });
    /// assert_eq!(busy.status(), http::StatusCode::TOO_MANY_REQUESTS);
    /// ```
    fn from(error: Error) -> Self {
        match error {
            Error::LimitExceeded { check } => {
                let retry_after = check.reset_at.map(|at| {
                    u64::try_from((at - chrono::Utc::now()).num_seconds().max(1)).unwrap_or(1)
                });
                Self::QuotaExceeded { check, retry_after }
            }
            Error::InsufficientCredits {
                required,
                available,
            } => Self::InsufficientCredits {
                required,
                available,
            },
            Error::NoSubscription { .. } => Self::SubscriptionRequired,
            Error::CallInFlight { .. } => Self::CallInFlight,
            Error::IdempotencyKeyInFlight { .. } => Self::IdempotencyKeyInFlight,
            Error::Store(_) => Self::Unavailable(error),
            other => Self::Internal(other),
        }
    }
}

impl<T, E> From<MeterError<T, E>> for QuotaRejection
where
    E: std::error::Error + Send + Sync + 'static,
{
    /// The rejection a handler answers with when its metered call does not produce a
    /// response; see the [module docs](self) for the mapping.
    ///
    /// ```
    /// use ai_metering_core::MeterError;
    /// use ai_metering_tower::QuotaRejection;
    /// let failed: MeterError<(), std::io::Error> =
    ///     MeterError::Provider(std::io::Error::other("upstream 10.0.0.5 timed out"));
    /// let rejection = QuotaRejection::from(failed);
    /// assert_eq!(rejection.status(), 502);
    /// assert!(!rejection.body_text().contains("10.0.0.5"));
    /// ```
    fn from(error: MeterError<T, E>) -> Self {
        match error {
            MeterError::Metering(e) => Self::from(e),
            MeterError::Provider(e) => {
                tracing::warn!(target: "ai_metering", error = %e, "the provider call of a metered request failed");
                Self::ProviderFailed(Box::new(e))
            }
            MeterError::NotRecorded { error, .. } => Self::NotRecorded(error),
            MeterError::AlreadyRecorded(record) => Self::AlreadyRecorded(record),
            // `MeterError` is non-exhaustive: a future variant is a server error until it
            // gets its own mapping.
            other => Self::Internal(ai_metering_core::Error::InvalidInput(other.to_string())),
        }
    }
}

/// A decimal written as an exact JSON number.
struct Number(Decimal);

impl Serialize for Number {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let raw = serde_json::value::RawValue::from_string(format_decimal(self.0))
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

#[derive(Serialize)]
struct BasicProblem<'a> {
    #[serde(rename = "type")]
    type_: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
}

#[derive(Serialize)]
struct QuotaExceededBody<'a> {
    #[serde(rename = "type")]
    type_: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    #[serde(rename = "violated-policies")]
    violated_policies: Vec<&'static str>,
    limit: Option<&'static str>,
    reset_at: Option<String>,
    retry_after: Option<u64>,
    error: &'a str,
    message: &'a str,
    remaining_tokens: Option<u64>,
    remaining_cost: Option<Number>,
    usage_percentage: Number,
}

#[derive(Serialize)]
struct InsufficientCreditsBody<'a> {
    #[serde(rename = "type")]
    type_: &'a str,
    title: &'a str,
    status: u16,
    detail: String,
    required: Number,
    available: Number,
    currency: &'a str,
    error: &'a str,
    message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_metering_core::Currency;
    use ai_metering_core::limit::{Limits, Thresholds, UsageTotals, evaluate};
    use chrono::{TimeZone, Utc};

    #[test]
    fn quota_exceeded_is_a_429_problem_with_the_originals_fields() {
        let check = evaluate(
            &Limits {
                tokens: Some(1_000),
                cost: Some(Decimal::new(5, 0)),
            },
            UsageTotals::new(1_000, Decimal::new(125, 2)),
            UsageTotals::ZERO,
            &Thresholds::default(),
        )
        .with_reset_at(Utc.with_ymd_and_hms(2024, 2, 1, 0, 0, 0).unwrap());
        let rejection = QuotaRejection::QuotaExceeded {
            check: Box::new(check),
            retry_after: Some(3600),
        };
        assert_eq!(rejection.status(), StatusCode::TOO_MANY_REQUESTS);
        let body: serde_json::Value = serde_json::from_str(&rejection.body_text()).unwrap();
        assert_eq!(body["type"], QUOTA_EXCEEDED_TYPE);
        assert_eq!(body["status"], 429);
        assert_eq!(body["violated-policies"], serde_json::json!(["tokens"]));
        assert_eq!(body["limit"], "tokens");
        assert_eq!(body["reset_at"], "2024-02-01T00:00:00Z");
        assert_eq!(body["error"], "AI usage limit exceeded");
        assert_eq!(
            body["message"],
            "You have reached your AI usage limit for this period."
        );
        assert_eq!(body["remaining_tokens"], 0);
        assert_eq!(body["usage_percentage"], 100);
        // Exact decimal, written as a JSON number.
        assert!(rejection.body_text().contains("\"remaining_cost\":3.75"));
        assert!(body["detail"].as_str().unwrap().contains("token limit"));

        let response = rejection.into_response();
        assert_eq!(response.headers()[CONTENT_TYPE], PROBLEM_JSON);
        assert_eq!(response.headers()[http::header::RETRY_AFTER], "3600");
    }

    #[test]
    fn insufficient_credits_is_a_402_problem() {
        let rejection = QuotaRejection::InsufficientCredits {
            required: Money::new(Decimal::new(50, 2), Currency::USD),
            available: Decimal::ZERO,
        };
        assert_eq!(rejection.status(), StatusCode::PAYMENT_REQUIRED);
        let text = rejection.body_text();
        let body: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(body["type"], INSUFFICIENT_CREDITS_TYPE);
        assert_eq!(body["currency"], "USD");
        assert!(text.contains("\"required\":0.5"));
        assert!(text.contains("\"available\":0"));
    }

    #[test]
    fn store_failures_are_not_disclosed_to_clients() {
        let error = Error::Store(ai_metering_core::store::StoreError::new(
            ai_metering_core::store::StoreErrorKind::Unavailable,
            "connection refused to 10.0.0.5",
        ));
        let rejection = QuotaRejection::Unavailable(error);
        assert_eq!(rejection.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(!rejection.body_text().contains("10.0.0.5"));
        // ...but the server-side message and source keep it.
        assert!(rejection.to_string().contains("10.0.0.5"));
        assert!(std::error::Error::source(&rejection).is_some());
        let body: serde_json::Value = serde_json::from_str(&rejection.body_text()).unwrap();
        assert_eq!(body["title"], "Service Unavailable");
    }
}
