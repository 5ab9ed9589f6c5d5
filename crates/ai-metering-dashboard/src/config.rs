//! [`DashboardConfig`]: the prefix, the access gate and a few limits.

use std::fmt;
use std::sync::Arc;

use ai_metering_core::store::Page;

use crate::access::{Access, Gate};

/// Settings of the dashboard router.
///
/// The default has **no gate**, so every request is denied with 403 until the host supplies
/// one with [`with_gate`](Self::with_gate) or opts into [`allow_all`](Self::allow_all).
///
/// ```
/// use ai_metering_dashboard::DashboardConfig;
/// let config = DashboardConfig::new().with_prefix("/admin/ai/");
/// assert_eq!(config.prefix(), "/admin/ai");
/// assert!(!config.has_gate());
/// ```
#[derive(Clone)]
pub struct DashboardConfig {
    pub(crate) prefix: String,
    pub(crate) gate: Option<Arc<dyn Gate>>,
    pub(crate) title: String,
    pub(crate) per_page: u64,
    pub(crate) top_billables: usize,
    pub(crate) billables_window_days: i64,
    pub(crate) max_status_checks: usize,
    pub(crate) csv_max_rows: u64,
}

impl DashboardConfig {
    /// The prefix used when none is set.
    pub const DEFAULT_PREFIX: &'static str = "/ai-metering";

    /// The defaults: prefix `/ai-metering`, no gate (everything denied), 50 rows a page,
    /// 10 top billables, billables listed when active in the last 90 days, at most 200 limit
    /// checks on the overview, at most 100,000 rows a CSV export.
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// assert_eq!(DashboardConfig::new().prefix(), "/ai-metering");
    /// ```
    pub fn new() -> Self {
        Self {
            prefix: Self::DEFAULT_PREFIX.to_owned(),
            gate: None,
            title: "AI usage".to_owned(),
            per_page: 50,
            top_billables: 10,
            billables_window_days: 90,
            max_status_checks: 200,
            csv_max_rows: 100_000,
        }
    }

    /// The defaults with a gate that lets every request see everything. Only for demos and
    /// for hosts that protect the prefix themselves (behind their own auth middleware).
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// assert!(DashboardConfig::allow_all().has_gate());
    /// ```
    pub fn allow_all() -> Self {
        Self::new().with_gate(|_: &http::request::Parts| Access::AllowAll)
    }

    /// Sets the gate deciding what each request may see (a closure over the request parts
    /// or any [`Gate`]).
    ///
    /// ```
    /// # use ai_metering_dashboard::{Access, DashboardConfig};
    /// let config = DashboardConfig::new().with_gate(|_: &http::request::Parts| Access::Deny);
    /// assert!(config.has_gate());
    /// ```
    pub fn with_gate(mut self, gate: impl Gate) -> Self {
        self.gate = Some(Arc::new(gate));
        self
    }

    /// Sets the prefix the host nests the router under, used to build links. A missing
    /// leading slash is added and a trailing one dropped; `""` or `"/"` mean the root.
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// assert_eq!(DashboardConfig::new().with_prefix("usage").prefix(), "/usage");
    /// assert_eq!(DashboardConfig::new().with_prefix("/").prefix(), "");
    /// ```
    pub fn with_prefix(mut self, prefix: &str) -> Self {
        let trimmed = prefix.trim().trim_matches('/');
        self.prefix = if trimmed.is_empty() {
            String::new()
        } else {
            format!("/{trimmed}")
        };
        self
    }

    /// Sets the title shown in every page's header.
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// let config = DashboardConfig::new().with_title("Acme AI spend");
    /// # let _ = config;
    /// ```
    pub fn with_title(mut self, title: impl Into<String>) -> Self {
        self.title = title.into();
        self
    }

    /// Sets the default number of rows a page (capped at [`Page::MAX_LIMIT`], at least 1).
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// let config = DashboardConfig::new().with_page_size(20);
    /// # let _ = config;
    /// ```
    pub fn with_page_size(mut self, rows: u64) -> Self {
        self.per_page = rows.clamp(1, Page::MAX_LIMIT);
        self
    }

    /// Sets how many billables the overview ranks as top billables.
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// let config = DashboardConfig::new().with_top_billables(5);
    /// # let _ = config;
    /// ```
    pub fn with_top_billables(mut self, count: usize) -> Self {
        self.top_billables = count;
        self
    }

    /// Sets how far back (in days, at least 1) a billable must have usage to be listed on
    /// the billables page.
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// let config = DashboardConfig::new().with_billables_window_days(365);
    /// # let _ = config;
    /// ```
    pub fn with_billables_window_days(mut self, days: u32) -> Self {
        self.billables_window_days = i64::from(days.max(1));
        self
    }

    /// Sets how many active billables the overview checks against their limits, at most,
    /// to find those approaching or over them (the heaviest users are checked first).
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// let config = DashboardConfig::new().with_max_status_checks(1_000);
    /// # let _ = config;
    /// ```
    pub fn with_max_status_checks(mut self, count: usize) -> Self {
        self.max_status_checks = count;
        self
    }

    /// Sets the largest number of rows one CSV export holds; a larger export is cut and
    /// flagged with the `x-ai-metering-truncated: true` response header.
    ///
    /// ```
    /// # use ai_metering_dashboard::DashboardConfig;
    /// let config = DashboardConfig::new().with_csv_max_rows(10_000);
    /// # let _ = config;
    /// ```
    pub fn with_csv_max_rows(mut self, rows: u64) -> Self {
        self.csv_max_rows = rows;
        self
    }

    /// The normalised prefix (no trailing slash; empty at the root).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// True when a gate is configured; without one every request is denied.
    pub fn has_gate(&self) -> bool {
        self.gate.is_some()
    }
}

impl Default for DashboardConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for DashboardConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DashboardConfig")
            .field("prefix", &self.prefix)
            .field("gate", &self.gate.as_ref().map(|_| "<gate>"))
            .field("title", &self.title)
            .field("per_page", &self.per_page)
            .field("top_billables", &self.top_billables)
            .field("billables_window_days", &self.billables_window_days)
            .field("max_status_checks", &self.max_status_checks)
            .field("csv_max_rows", &self.csv_max_rows)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_normalised() {
        assert_eq!(DashboardConfig::new().with_prefix("/x/").prefix(), "/x");
        assert_eq!(DashboardConfig::new().with_prefix("a/b").prefix(), "/a/b");
        assert_eq!(DashboardConfig::new().with_prefix("").prefix(), "");
    }

    #[test]
    fn page_size_is_bounded() {
        assert_eq!(DashboardConfig::new().with_page_size(0).per_page, 1);
        assert_eq!(
            DashboardConfig::new().with_page_size(u64::MAX).per_page,
            Page::MAX_LIMIT
        );
    }
}
