//! The billables list and a billable's page.

use maud::{Markup, html};

use super::chart::daily_chart;
use super::parts::{
    groups_table, pagination, remaining, state, stats, status_table, usage_meter, usage_table,
};
use crate::config::DashboardConfig;
use crate::data::{BillableDetail, BillablesPage};
use crate::filters::UsageQuery;
use crate::format;

/// The content of the billables list.
pub(crate) fn billables_page(
    config: &DashboardConfig,
    query: &UsageQuery,
    b: &BillablesPage,
) -> Markup {
    let prefix = config.prefix();
    let path = format!("{prefix}/billables");
    html! {
        form.filters method="get" action=(path) role="search" aria-label="Find a billable" {
            label { "Billable contains" input type="search" name="q" value=(query.q.clone().unwrap_or_default()) maxlength="200"; }
            button type="submit" { "Find" }
            a href=(path) { "Reset" }
        }
        p.lead {
            (format::count(b.total)) " billables with usage since " (format::instant(b.window.start))
            ", heaviest first (recent tokens: since then). Limits, usage and remainders are those of each billable's current period."
        }
        @if b.billables.is_empty() {
            p.empty { "No billable matches." }
        } @else {
            (status_table(prefix, "Billables", &b.billables, b.currency, Some("Recent tokens")))
        }
        (pagination(&path, query, b.page, b.pages))
    }
}

/// The content of a billable's page.
pub(crate) fn billable_page(
    config: &DashboardConfig,
    query: &UsageQuery,
    d: &BillableDetail,
) -> Markup {
    let prefix = config.prefix();
    let s = &d.status;
    let currency = d.history.currency;
    let path = format::billable_path(prefix, &s.billable);
    let history_link = format!(
        "{prefix}/usage?billable={}",
        format::path_segment(&s.billable.to_string())
    );
    html! {
        p.lead {
            "Current period: " (format::instant(d.window.start)) " to " (format::instant(d.window.end)) " (end excluded)."
        }
        (stats(&s.usage, currency, None))
        section aria-labelledby="standing-heading" {
            h2 #standing-heading { "Plan and limits" }
            dl.stats {
                div { dt { "Plan" } dd { @if let Some(p) = &s.plan { (p.name) " (" (p.slug) ")" } @else { "none" } } }
                div { dt { "Billing mode" } dd { @if let Some(m) = s.billing_mode { (m) } @else { "—" } } }
                div { dt { "Overage policy" } dd { @if let Some(o) = s.overage_policy { (o) } @else { "—" } } }
                div { dt { "Usage" } dd { (usage_meter(s)) } }
                div { dt { "Remaining" } dd { (remaining(s, currency)) } }
                div { dt { "Resets" } dd {
                    @if let Some(at) = s.limit.as_ref().and_then(|c| c.reset_at) { (format::instant(at)) } @else { "—" }
                } }
                div { dt { "Status" } dd { (state(s.state)) } }
                @if let Some(w) = &s.wallet {
                    div { dt { "Wallet available" } dd { (format::money(w.available, w.currency)) } }
                }
            }
            @if let Some(e) = &s.error { p { "Part of the status is unavailable: " (e) } }
        }
        section aria-labelledby="daily-heading" {
            h2 #daily-heading { "Usage per day" }
            (daily_chart("daily-chart", "Tokens per day in the current period", &d.daily, currency))
        }
        section aria-labelledby="models-heading" {
            h2 #models-heading { "By model" }
            (groups_table("This period by model", "Provider/model", &d.models, s.usage.total_tokens, currency, None))
        }
        section aria-labelledby="features-heading" {
            h2 #features-heading { "By feature" }
            (groups_table("This period by feature", "Feature", &d.features, s.usage.total_tokens, currency, None))
        }
        section aria-labelledby="subs-heading" {
            h2 #subs-heading { "Subscriptions" }
            @if d.subscriptions.is_empty() {
                p.empty { "No subscription." }
            } @else {
                div.scroll { table {
                    caption { "Subscriptions, oldest first" }
                    thead { tr {
                        th scope="col" { "Plan" } th scope="col" { "Mode" } th scope="col" { "Started" }
                        th scope="col" { "Renews" } th scope="col" { "Ends" } th scope="col" { "Trial ends" }
                        th scope="col" { "Previous plan" } th scope="col" { "Active" }
                    } }
                    tbody { @for sub in &d.subscriptions { tr {
                        th scope="row" { @if let Some(p) = &sub.plan { (p) } @else { "none" } }
                        td { (sub.billing_mode) }
                        td { (format::instant(sub.started_at)) }
                        td { @if let Some(t) = sub.renews_at { (format::instant(t)) } }
                        td { @if let Some(t) = sub.ends_at { (format::instant(t)) } }
                        td { @if let Some(t) = sub.trial_ends_at { (format::instant(t)) } }
                        td { @if let Some(p) = &sub.previous_plan { (p) } }
                        td { @if sub.active { "yes" } @else { "no" } }
                    } } }
                } }
            }
        }
        section aria-labelledby="credits-heading" {
            h2 #credits-heading { "Credit transactions" }
            @if d.transactions.is_empty() {
                p.empty { "No credit transaction." }
            } @else {
                div.scroll { table {
                    caption { "Latest credit transactions, newest first" }
                    thead { tr {
                        th scope="col" { "When" } th scope="col" { "Direction" } th scope="col" { "Reason" }
                        th.num scope="col" { "Amount" } th.num scope="col" { "Balance after" }
                    } }
                    tbody { @for t in &d.transactions { tr {
                        td { (format::instant(t.created_at)) }
                        td { @match t.direction { ai_metering_core::store::Direction::Credit => "credit", ai_metering_core::store::Direction::Debit => "debit" } }
                        td { (t.reason) }
                        td.num { (format::money(t.amount.amount, t.amount.currency)) }
                        td.num { (format::money(t.balance_after, t.amount.currency)) }
                    } } }
                } }
            }
        }
        section aria-labelledby="history-heading" {
            h2 #history-heading { "History" }
            p { a href=(history_link) { "Filter and search this history, or export it as CSV" } }
            (usage_table(prefix, &d.history.rows, currency))
            (pagination(&path, query, d.history.page, d.history.pages))
        }
    }
}
