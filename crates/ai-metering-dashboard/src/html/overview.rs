//! The overview page.

use maud::{Markup, html};

use super::chart::daily_chart;
use super::parts::{groups_table, stats, status_table};
use crate::config::DashboardConfig;
use crate::data::Overview;
use crate::format;

/// The content of the overview page.
pub(crate) fn overview_page(config: &DashboardConfig, o: &Overview) -> Markup {
    let prefix = config.prefix();
    let billable_link = |key: &str| key.parse().ok().map(|b| format::billable_path(prefix, &b));
    html! {
        p.lead {
            "Current period: "
            time datetime=(o.period.start.to_rfc3339()) { (format::instant(o.period.start)) }
            " to "
            time datetime=(o.period.end.to_rfc3339()) { (format::instant(o.period.end)) }
            " (end excluded)."
        }
        (stats(&o.totals, o.currency, Some(("Active billables", format::count(o.active_billables)))))

        section aria-labelledby="daily-heading" {
            h2 #daily-heading { "Usage per day" }
            (daily_chart("daily-chart", "Tokens per day in the current period", &o.daily, o.currency))
        }

        section aria-labelledby="top-heading" {
            h2 #top-heading { "Top billables" }
            (groups_table("Billables with the most tokens this period", "Billable", &o.top_billables, o.totals.total_tokens, o.currency, Some(&billable_link)))
        }

        section aria-labelledby="attention-heading" {
            h2 #attention-heading { "Approaching or over their limits" }
            @if o.attention.is_empty() {
                p.empty { "No billable is approaching or over its limits (" (format::count(o.checked_billables)) " checked)." }
            } @else {
                (status_table(prefix, "Billables approaching or over their limits, most urgent first", &o.attention, o.currency, None))
            }
        }
    }
}
