//! Pieces several pages share: figures, tables of sums, the filter form, pagination.

use ai_metering_core::Currency;
use ai_metering_core::limit::Limits;
use ai_metering_core::plan::BillingMode;
use ai_metering_core::store::{GroupedSums, UsageRecord, UsageSums};
use maud::{Markup, html};
use rust_decimal::Decimal;

use crate::access::Scope;
use crate::data::{BillableStatus, LimitState};
use crate::filters::UsageQuery;
use crate::format;

/// Calls, tokens (input/output/total) and cost as a list of figures.
pub(crate) fn stats(sums: &UsageSums, currency: Currency, extra: Option<(&str, String)>) -> Markup {
    html! {
        dl.stats {
            div { dt { "Tokens" } dd { (format::count(sums.total_tokens)) } }
            div { dt { "Cost" } dd { (format::money(sums.cost, currency)) } }
            div { dt { "Calls" } dd { (format::count(sums.calls)) } }
            @if let Some((label, value)) = extra {
                div { dt { (label) } dd { (value) } }
            }
            div { dt { "Input / output tokens" } dd { (format::count(sums.input_tokens)) " / " (format::count(sums.output_tokens)) } }
        }
    }
}

/// Turns a group key into the address of its page, if it has one.
pub(crate) type KeyLink<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// A table of grouped sums with each group's share of the tokens. `href` links a key.
pub(crate) fn groups_table(
    caption: &str,
    key_header: &str,
    rows: &[GroupedSums],
    total_tokens: u64,
    currency: Currency,
    href: Option<&KeyLink<'_>>,
) -> Markup {
    if rows.is_empty() {
        return html! { p.empty { "No usage." } };
    }
    html! {
        div.scroll {
            table {
                caption { (caption) }
                thead { tr {
                    th scope="col" { (key_header) }
                    th.num scope="col" { "Calls" }
                    th.num scope="col" { "Input tokens" }
                    th.num scope="col" { "Output tokens" }
                    th.num scope="col" { "Total tokens" }
                    th.num scope="col" { "Share" }
                    th.num scope="col" { "Cost" }
                } }
                tbody {
                    @for g in rows {
                        tr {
                            th scope="row" {
                                @let link = href.and_then(|f| f(&g.key));
                                @if g.key.is_empty() {
                                    span.empty { "(none)" }
                                } @else if let Some(link) = link {
                                    a href=(link) { (g.key) }
                                } @else {
                                    (g.key)
                                }
                            }
                            td.num { (format::count(g.sums.calls)) }
                            td.num { (format::count(g.sums.input_tokens)) }
                            td.num { (format::count(g.sums.output_tokens)) }
                            td.num { (format::count(g.sums.total_tokens)) }
                            td.num { (format::share_text(g.sums.total_tokens, total_tokens)) }
                            td.num { (format::money(g.sums.cost, currency)) }
                        }
                    }
                }
            }
        }
    }
}

/// The state of a billable, coloured and worded.
pub(crate) fn state(s: LimitState) -> Markup {
    let class = match s {
        LimitState::Over => "state-over",
        LimitState::Approaching => "state-approaching",
        _ => "state",
    };
    html! { span class=(class) { (s.label()) } }
}

/// `used / limit` for tokens, or `—` without a token limit.
fn token_limit(used: u64, limits: &Limits) -> Markup {
    match limits.tokens {
        Some(limit) => html! { (format::count(used)) " / " (format::count(limit)) },
        None => html! { "—" },
    }
}

/// `used / limit` for cost, or `—` without a cost limit.
fn cost_limit(used: Decimal, limits: &Limits, currency: Currency) -> Markup {
    match limits.cost {
        Some(limit) => {
            html! { (format::money(used, currency)) " / " (format::money(limit, currency)) }
        }
        None => html! { "—" },
    }
}

/// The usage percentage as a native meter with the number beside it.
pub(crate) fn usage_meter(status: &BillableStatus) -> Markup {
    match &status.limit {
        Some(c) if !c.limits.is_unlimited() => {
            let shown = c.usage_percentage.min(Decimal::ONE_HUNDRED);
            html! {
                meter min="0" max="100" low="80" high="99" optimum="0" value=(shown)
                    aria-label={"Usage of " (status.billable)} {}
                " " (format::percent(c.usage_percentage))
            }
        }
        _ => html! { "—" },
    }
}

/// What is left before the limits: tokens and/or cost.
pub(crate) fn remaining(status: &BillableStatus, currency: Currency) -> Markup {
    let Some(c) = &status.limit else {
        return html! { "—" };
    };
    html! {
        @if let Some(t) = c.remaining_tokens { (format::count(t)) " tokens" }
        @if c.remaining_tokens.is_some() && c.remaining_cost.is_some() { br; }
        @if let Some(m) = c.remaining_cost { (format::money(m, currency)) }
        @if c.remaining_tokens.is_none() && c.remaining_cost.is_none() { "—" }
    }
}

/// The table of billables' standings (the billables list and the overview's warnings), with
/// a column of the usage in the view's window when `usage_header` names it.
pub(crate) fn status_table(
    prefix: &str,
    caption: &str,
    rows: &[BillableStatus],
    currency: Currency,
    usage_header: Option<&str>,
) -> Markup {
    html! {
        div.scroll {
            table {
                caption { (caption) }
                thead { tr {
                    th scope="col" { "Billable" }
                    th scope="col" { "Status" }
                    th scope="col" { "Plan" }
                    @if let Some(h) = usage_header {
                        th.num scope="col" { (h) }
                    }
                    th.num scope="col" { "Used / limit" }
                    th scope="col" { "Usage" }
                    th.num scope="col" { "Remaining" }
                    th scope="col" { "Resets" }
                    th.num scope="col" { "Wallet" }
                } }
                tbody {
                    @for s in rows {
                        @let limits = s.limits();
                        @let used = s.used();
                        tr {
                            th scope="row" {
                                a href=(format::billable_path(prefix, &s.billable)) { (s.billable) }
                            }
                            td {
                                (state(s.state))
                                @if let Some(e) = &s.error { br; small { (e) } }
                            }
                            td {
                                @if let Some(p) = &s.plan { (p.name) } @else { span.empty { "none" } }
                                @if s.billing_mode == Some(BillingMode::Credits) { br; small { "credits" } }
                            }
                            @if usage_header.is_some() {
                                td.num { (format::count(s.usage.total_tokens)) }
                            }
                            td.num {
                                @if limits.is_unlimited() { "—" }
                                @if limits.tokens.is_some() { (token_limit(used.tokens, &limits)) " tokens" }
                                @if limits.tokens.is_some() && limits.cost.is_some() { br; }
                                @if limits.cost.is_some() { (cost_limit(used.cost, &limits, currency)) }
                            }
                            td.nowrap { (usage_meter(s)) }
                            td.num { (remaining(s, currency)) }
                            td.nowrap {
                                @if let Some(at) = s.limit.as_ref().and_then(|c| c.reset_at) {
                                    time datetime=(at.to_rfc3339()) title=(format::instant(at)) { (format::day(at.date_naive())) }
                                } @else { "—" }
                            }
                            td.num {
                                @if let Some(w) = &s.wallet { (format::money(w.available, w.currency)) } @else { "—" }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The usage rows table.
pub(crate) fn usage_table(prefix: &str, rows: &[UsageRecord], currency: Currency) -> Markup {
    if rows.is_empty() {
        return html! { p.empty { "No usage matches." } };
    }
    html! {
        div.scroll {
            table {
                caption { "Usage rows, newest first" }
                thead { tr {
                    th scope="col" { "Time" }
                    th scope="col" { "Billable" }
                    th scope="col" { "Tenant" }
                    th scope="col" { "Provider" }
                    th scope="col" { "Model" }
                    th scope="col" { "Feature" }
                    th.num scope="col" { "Input" }
                    th.num scope="col" { "Output" }
                    th.num scope="col" { "Total" }
                    th.num scope="col" { "Cost" }
                    th scope="col" { "Metadata" }
                } }
                tbody {
                    @for r in rows {
                        @let e = &r.entry;
                        tr {
                            td { time datetime=(e.occurred_at.to_rfc3339()) { (format::instant(e.occurred_at)) } }
                            td { a href=(format::billable_path(prefix, &e.billable)) { (e.billable) } }
                            td { @if let Some(t) = &e.tenant { (t) } }
                            td { (e.provider) }
                            td { (e.model) }
                            td { @if let Some(f) = &e.feature { (f) } }
                            td.num { (format::count(e.usage.input_tokens())) }
                            td.num { (format::count(e.usage.output_tokens())) }
                            td.num {
                                (format::count(e.usage.total_tokens()))
                                @if e.estimated { " " abbr title="estimated" { "est." } }
                            }
                            td.num { (format::money(e.cost.total, currency)) }
                            td {
                                @if !e.metadata.is_empty() {
                                    code { (serde_json::Value::Object(e.metadata.clone())) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// Previous/next links keeping the query's filters.
pub(crate) fn pagination(path: &str, query: &UsageQuery, page: u64, pages: u64) -> Markup {
    let link = |n: u64| {
        let qs = query.with_page(n);
        if qs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{qs}")
        }
    };
    html! {
        nav.pages aria-label="Pagination" {
            @if page > 1 {
                a href=(link(page - 1)) rel="prev" { "← Previous" }
            }
            span { "Page " (format::count(page)) " of " (format::count(pages)) }
            @if page < pages {
                a href=(link(page + 1)) rel="next" { "Next →" }
            }
        }
    }
}

/// Which fields the filter form shows.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FormFields {
    /// The billable field.
    pub(crate) billable: bool,
    /// The search field.
    pub(crate) search: bool,
}

/// The GET filter form over `query`, submitting to `action`.
pub(crate) fn filter_form(
    action: &str,
    query: &UsageQuery,
    scope: &Scope,
    fields: FormFields,
) -> Markup {
    let v = |f: &Option<String>| f.clone().unwrap_or_default();
    html! {
        form.filters method="get" action=(action) role="search" aria-label="Filters" {
            @if fields.search {
                label { "Search (feature, model, metadata)" input type="search" name="q" value=(v(&query.q)) maxlength="200"; }
            }
            @if fields.billable {
                label { "Billable (KIND:ID)" input type="text" name="billable" value=(v(&query.billable)) placeholder="user:42"; }
            }
            @if scope.tenant().is_none() {
                label { "Tenant" input type="text" name="tenant" value=(v(&query.tenant)); }
            }
            label { "Provider" input type="text" name="provider" value=(v(&query.provider)); }
            label { "Model" input type="text" name="model" value=(v(&query.model)); }
            label { "Feature" input type="text" name="feature" value=(v(&query.feature)); }
            label { "From" input type="date" name="from" value=(v(&query.from)); }
            label { "Until (inclusive)" input type="date" name="until" value=(v(&query.until)); }
            button type="submit" { "Apply" }
            a href=(action) { "Reset" }
        }
    }
}
