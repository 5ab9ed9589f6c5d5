//! The router's shared state: the metering service and the configuration.

use std::sync::Arc;

use ai_metering_core::Metering;

use crate::config::DashboardConfig;

/// What every handler gets: cheap to clone (two `Arc`s).
pub(crate) struct App<S> {
    /// The metering service: the store, the price catalog's currency, the period rules and
    /// the clock.
    pub(crate) metering: Metering<S>,
    /// The dashboard's settings.
    pub(crate) config: Arc<DashboardConfig>,
}

impl<S> Clone for App<S> {
    fn clone(&self) -> Self {
        Self {
            metering: self.metering.clone(),
            config: Arc::clone(&self.config),
        }
    }
}
