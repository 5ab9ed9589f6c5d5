//! Usage quotas for tower and axum services: [`QuotaLayer`] in front of AI routes,
//! [`RemainingQuota`] in their handlers.
#![warn(missing_docs)]

pub mod cache;
mod decide;
mod future;
pub mod headers;
mod layer;
pub mod problem;
mod remaining;
mod resolve;
mod service;

pub use future::ResponseFuture;
pub use headers::HeaderStyle;
pub use layer::{DEFAULT_CACHE_TTL, QuotaLayer};
pub use problem::QuotaRejection;
pub use remaining::{RemainingQuota, RemainingQuotaRejection};
pub use resolve::{FromExtensions, FromHeader, HeaderNameArg, Resolver};
pub use service::QuotaService;
