//! The app that the load runs (`scripts/load.sh`), the overspend test
//! (`scripts/overspend.sh`) and the memory run (`scripts/memory.sh`) start: one axum app
//! in a configuration chosen on the command line. See `docs/PERFORMANCE.md`.
//!
//! Routes: `GET /hello` answers `hello` (a limit check only); `POST /chat` meters an exact
//! usage per request through [`RemainingQuota::meter`](ai_metering_tower::RemainingQuota),
//! settling the reservation the layer made for its estimate.
#![warn(missing_docs)]

mod app;
mod options;
pub mod raw;

pub use app::{app, prepare};
pub use options::{Headers, Options, StoreKind};
