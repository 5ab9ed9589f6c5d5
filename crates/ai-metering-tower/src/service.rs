//! [`QuotaService`]: the `tower::Service` the [`QuotaLayer`](crate::QuotaLayer) wraps
//! around a route.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::task::{Context, Poll};

use ai_metering_core::store::Store;
use ai_metering_core::{Billable, Tenant};
use axum::BoxError;
use axum::body::{Body, Bytes, HttpBody};
use http::{Request, Response};
use tower_service::Service;

use crate::future::ResponseFuture;
use crate::layer::Config;
use crate::problem::QuotaRejection;
use crate::resolve::{FromExtensions, Resolver};

/// Enforces usage quotas in front of an inner service. Built by
/// [`QuotaLayer`](crate::QuotaLayer); see there for the behaviour.
pub struct QuotaService<I, S, B = FromExtensions, T = FromExtensions> {
    inner: I,
    config: Arc<Config<S, B, T>>,
}

impl<I, S, B, T> QuotaService<I, S, B, T> {
    pub(crate) fn new(inner: I, config: Arc<Config<S, B, T>>) -> Self {
        Self { inner, config }
    }

    /// The inner service.
    pub fn get_ref(&self) -> &I {
        &self.inner
    }

    /// The inner service, mutably.
    pub fn get_mut(&mut self) -> &mut I {
        &mut self.inner
    }

    /// The inner service, consuming this one.
    pub fn into_inner(self) -> I {
        self.inner
    }
}

impl<I: Clone, S, B, T> Clone for QuotaService<I, S, B, T> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            config: Arc::clone(&self.config),
        }
    }
}

impl<I: fmt::Debug, S, B, T> fmt::Debug for QuotaService<I, S, B, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuotaService")
            .field("inner", &self.inner)
            .field("feature", &self.config.settings.feature)
            .finish_non_exhaustive()
    }
}

impl<I, S, B, T, ReqBody, ResBody> Service<Request<ReqBody>> for QuotaService<I, S, B, T>
where
    I: Service<Request<ReqBody>, Response = Response<ResBody>> + Clone + Send + 'static,
    I::Future: Send,
    S: Store,
    B: Resolver<Billable>,
    T: Resolver<Tenant>,
    ReqBody: Send + 'static,
    ResBody: HttpBody<Data = Bytes> + Send + 'static,
    ResBody::Error: Into<BoxError>,
{
    type Response = Response<Body>;
    type Error = I::Error;
    type Future = ResponseFuture<I, ReqBody, S>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let config = &self.config;
        let settings = &config.settings;
        // The span is made only for a tracing subscriber that records it. Otherwise it is
        // `Span::none()`: with tracing's `log` feature (on in most apps, through axum's
        // default `tower-log` or sqlx), a disabled span still checks the `log` filters at
        // every record, about 580 instructions a request (scripts/layer-instructions.sh).
        let span = if tracing::span_enabled!(target: "ai_metering", tracing::Level::INFO) {
            tracing::info_span!(
                target: "ai_metering",
                "quota",
                billable = tracing::field::Empty,
                feature = settings.feature.as_deref(),
                decision = tracing::field::Empty,
            )
        } else {
            tracing::Span::none()
        };
        let (parts, body) = request.into_parts();
        // The parties are borrowed from the request while the cache decides; they are
        // copied only when the store must be asked.
        let decided = config.billable.resolve_borrowed(&parts).map(|billable| {
            span.record("billable", tracing::field::display(&*billable));
            let tenant = config.tenant.resolve_borrowed(&parts);
            let now = settings.metering.now();
            match settings.decide_cached(&billable, tenant.as_deref(), now) {
                Some(decision) => Ok((decision, now)),
                None => Err((billable.into_owned(), tenant.map(Cow::into_owned))),
            }
        });
        let request = Request::from_parts(parts, body);

        match decided {
            // Decided now: the route is called now, on the service `poll_ready` readied.
            Some(Ok((decision, now))) => ResponseFuture::decided(
                decision,
                Arc::clone(settings),
                &mut self.inner,
                request,
                span,
                now,
            ),
            Some(Err(parties)) => {
                // The route is called later, from the future. `self.inner` was driven to
                // readiness by `poll_ready`; a clone may not be. Keep the ready one for this
                // request and leave the clone in its place (see
                // https://docs.rs/tower/latest/tower/trait.Service.html#be-careful-when-cloning-inner-services).
                let clone = self.inner.clone();
                let inner = std::mem::replace(&mut self.inner, clone);
                let check = Box::pin(Arc::clone(settings).decide(parties));
                ResponseFuture::checking(check, Arc::clone(settings), inner, request, span)
            }
            None if settings.allow_anonymous => {
                span.record("decision", "anonymous");
                ResponseFuture::call(&mut self.inner, request, None, span)
            }
            None => {
                span.record("decision", "no_billable");
                let response = settings.reject(QuotaRejection::MissingBillable, None, None);
                ResponseFuture::ready(response, span)
            }
        }
    }
}
