//! The breakdown page: by provider, model and feature.

use maud::{Markup, html};

use super::parts::{FormFields, filter_form, groups_table, stats};
use crate::access::Scope;
use crate::config::DashboardConfig;
use crate::data::{Breakdown, GroupTable};
use crate::filters::UsageQuery;
use crate::format;

fn table(title: &str, id: &str, key: &str, t: &GroupTable, b: &Breakdown) -> Markup {
    html! {
        section aria-labelledby=(id) {
            h2 id=(id) { (title) }
            @if t.groups > t.rows.len() as u64 {
                p.lead { "The largest " (t.rows.len()) " of " (format::count(t.groups)) " are shown." }
            }
            (groups_table(&format!("{title}, largest first"), key, &t.rows, b.totals.total_tokens, b.currency, None))
        }
    }
}

/// The content of the breakdown page.
pub(crate) fn breakdown_page(
    config: &DashboardConfig,
    scope: &Scope,
    query: &UsageQuery,
    b: &Breakdown,
) -> Markup {
    let action = format!("{}/breakdown", config.prefix());
    html! {
        (filter_form(&action, query, scope, FormFields { billable: true, search: true }))
        p.lead {
            @match (b.from, b.until) {
                (Some(f), Some(u)) => { "From " (format::instant(f)) " to " (format::instant(u)) " (end excluded)." }
                (Some(f), None) => { "Since " (format::instant(f)) "." }
                (None, Some(u)) => { "Before " (format::instant(u)) "." }
                (None, None) => { "All time." }
            }
        }
        (stats(&b.totals, b.currency, None))
        (table("By provider", "by-provider", "Provider", &b.providers, b))
        (table("By model", "by-model", "Provider/model", &b.models, b))
        (table("By feature", "by-feature", "Feature", &b.features, b))
    }
}
