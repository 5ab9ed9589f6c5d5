//! [`ResponseFuture`]: the future of [`QuotaService`](crate::QuotaService) responses.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use ai_metering_core::store::Store;
use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use chrono::{DateTime, Utc};
use http::{Request, Response};
use pin_project_lite::pin_project;
use tower_service::Service;

use crate::decide::{After, Decision};
use crate::layer::Settings;

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

pin_project! {
    /// Response future of [`QuotaService`](crate::QuotaService).
    ///
    /// When the cache decides (the common case) it is just the inner service's future plus
    /// a header write; the store is asked through boxed futures only before the route (a
    /// cache miss or a reservation) and after it (when usage may have changed).
    pub struct ResponseFuture<I, ReqBody, S>
    where
        I: Service<Request<ReqBody>>,
    {
        #[pin]
        state: State<I, ReqBody, S>,
        span: tracing::Span,
    }
}

pin_project! {
    #[project = StateProj]
    enum State<I, ReqBody, S>
    where
        I: Service<Request<ReqBody>>,
    {
        // Waiting for the quota decision from the store.
        Checking {
            check: BoxFuture<Decision<S>>,
            settings: Arc<Settings<S>>,
            inner: Option<I>,
            request: Option<Request<ReqBody>>,
        },
        // The route is running.
        Calling {
            #[pin]
            future: I::Future,
            after: Option<After<S>>,
        },
        // Re-reading the usage for the headers.
        Finishing {
            future: BoxFuture<Response<Body>>,
        },
        // Answered without the route (or done).
        Ready {
            response: Option<Response<Body>>,
        },
    }
}

impl<I, ReqBody, S> ResponseFuture<I, ReqBody, S>
where
    I: Service<Request<ReqBody>>,
    S: Store,
{
    pub(crate) fn ready(response: Response<Body>, span: tracing::Span) -> Self {
        Self {
            state: State::Ready {
                response: Some(response),
            },
            span,
        }
    }

    /// Calls `inner` now: the service `poll_ready` readied (or a clone when the call was
    /// deferred).
    // Inlined into `QuotaService::call`, the future is built in place rather than moved
    // through each constructor: about 120 instructions a request (callgrind,
    // scripts/layer-instructions.sh); `#[inline]` alone was not taken.
    #[inline(always)]
    pub(crate) fn call(
        inner: &mut I,
        request: Request<ReqBody>,
        after: Option<After<S>>,
        span: tracing::Span,
    ) -> Self {
        let future = {
            let _entered = span.enter();
            inner.call(request)
        };
        Self {
            state: State::Calling { future, after },
            span,
        }
    }

    #[inline(always)] // see `call`
    pub(crate) fn decided(
        decision: Decision<S>,
        settings: Arc<Settings<S>>,
        inner: &mut I,
        mut request: Request<ReqBody>,
        span: tracing::Span,
        now: DateTime<Utc>,
    ) -> Self {
        span.record("decision", decision.label());
        match decision {
            Decision::Proceed(ctx) => {
                crate::remaining::insert(request.extensions_mut(), &ctx);
                let after = After {
                    settings,
                    ctx,
                    decided_at: Some(now),
                };
                Self::call(inner, request, Some(after), span)
            }
            Decision::Reject {
                rejection,
                period,
                cached,
            } => Self::ready(settings.reject(rejection, period, cached), span),
        }
    }

    pub(crate) fn checking(
        check: BoxFuture<Decision<S>>,
        settings: Arc<Settings<S>>,
        inner: I,
        request: Request<ReqBody>,
        span: tracing::Span,
    ) -> Self {
        Self {
            state: State::Checking {
                check,
                settings,
                inner: Some(inner),
                request: Some(request),
            },
            span,
        }
    }
}

impl<I, ReqBody, ResBody, S> Future for ResponseFuture<I, ReqBody, S>
where
    I: Service<Request<ReqBody>, Response = Response<ResBody>>,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
    S: Store,
{
    type Output = Result<Response<Body>, I::Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let _entered = this.span.enter();
        loop {
            let next = match this.state.as_mut().project() {
                StateProj::Checking {
                    check,
                    settings,
                    inner,
                    request,
                } => {
                    let decision = ready!(check.as_mut().poll(cx));
                    this.span.record("decision", decision.label());
                    match decision {
                        Decision::Proceed(ctx) => match (inner.take(), request.take()) {
                            (Some(mut inner), Some(mut request)) => {
                                crate::remaining::insert(request.extensions_mut(), &ctx);
                                State::Calling {
                                    future: inner.call(request),
                                    after: Some(After {
                                        settings: Arc::clone(settings),
                                        ctx,
                                        decided_at: None,
                                    }),
                                }
                            }
                            // Taken only here, right before leaving this state.
                            _ => State::Ready { response: None },
                        },
                        Decision::Reject {
                            rejection,
                            period,
                            cached,
                        } => State::Ready {
                            response: Some(settings.reject(rejection, period, cached)),
                        },
                    }
                }
                StateProj::Calling { future, after } => {
                    let response = ready!(future.poll(cx))?.map(Body::new);
                    match after.take() {
                        None => return Poll::Ready(Ok(response)),
                        Some(after) if after.needs_store() => State::Finishing {
                            future: Box::pin(after.finish(response)),
                        },
                        Some(after) => return Poll::Ready(Ok(after.finish_now(response))),
                    }
                }
                StateProj::Finishing { future } => {
                    return Poll::Ready(Ok(ready!(future.as_mut().poll(cx))));
                }
                StateProj::Ready { response } => {
                    return Poll::Ready(Ok(response
                        .take()
                        .unwrap_or_else(polled_after_completion)));
                }
            };
            this.state.set(next);
        }
    }
}

/// The body of a future polled again after it completed: a 500 rather than a panic.
fn polled_after_completion() -> Response<Body> {
    tracing::error!(target: "ai_metering", "QuotaService response future polled after completion");
    let mut response = Response::new(Body::empty());
    *response.status_mut() = http::StatusCode::INTERNAL_SERVER_ERROR;
    response
}

impl<I, ReqBody, S> fmt::Debug for ResponseFuture<I, ReqBody, S>
where
    I: Service<Request<ReqBody>>,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseFuture").finish_non_exhaustive()
    }
}
