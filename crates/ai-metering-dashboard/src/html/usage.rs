//! The usage history page.

use maud::{Markup, html};

use super::parts::{FormFields, filter_form, pagination, stats, usage_table};
use crate::access::Scope;
use crate::config::DashboardConfig;
use crate::data::UsagePage;
use crate::filters::UsageQuery;

/// The content of the usage history page.
pub(crate) fn usage_page(
    config: &DashboardConfig,
    scope: &Scope,
    query: &UsageQuery,
    u: &UsagePage,
) -> Markup {
    let prefix = config.prefix();
    let path = format!("{prefix}/usage");
    let qs = query.without_page();
    let csv = if qs.is_empty() {
        format!("{prefix}/usage.csv")
    } else {
        format!("{prefix}/usage.csv?{qs}")
    };
    html! {
        (filter_form(&path, query, scope, FormFields { billable: true, search: true }))
        (stats(&u.sums, u.currency, None))
        p { a href=(csv) download { "Download these rows as CSV" } }
        (usage_table(prefix, &u.rows, u.currency))
        (pagination(&path, query, u.page, u.pages))
    }
}
