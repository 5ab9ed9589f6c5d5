//! The daily usage chart: inline SVG drawn on the server (no JavaScript), one bar per day
//! with a `<title>` tooltip, an accessible name and summary, and the same data as a table.
//!
//! Geometry is integer arithmetic in SVG user units; the `viewBox` scales it to the page.

use ai_metering_core::Currency;
use maud::{Markup, html};

use crate::data::DayUsage;
use crate::format;

const LEFT: u64 = 52;
const RIGHT: u64 = 8;
const TOP: u64 = 12;
const PLOT_HEIGHT: u64 = 180;
const BOTTOM: u64 = 30;
/// Width the bars share, in user units, before scaling.
const PLOT_WIDTH: u64 = 900;
/// How many x-axis labels at most.
const X_LABELS: u64 = 10;

/// The smallest of 1, 2, 5 times a power of ten that is at least `max` (at least 1).
fn nice_ceiling(max: u64) -> u64 {
    let mut magnitude = 1_u64;
    while magnitude.saturating_mul(10) <= max && magnitude < u64::MAX / 10 {
        magnitude *= 10;
    }
    [1, 2, 5, 10]
        .iter()
        .map(|m| magnitude.saturating_mul(*m))
        .find(|v| *v >= max)
        .unwrap_or(u64::MAX)
        .max(1)
}

/// Bar height for `tokens` on a scale whose top is `top` (> 0); at least 1 when non-zero.
fn bar_height(tokens: u64, top: u64) -> u64 {
    let h = u128::from(tokens) * u128::from(PLOT_HEIGHT) / u128::from(top.max(1));
    let h = u64::try_from(h).unwrap_or(PLOT_HEIGHT).min(PLOT_HEIGHT);
    if tokens > 0 { h.max(1) } else { 0 }
}

/// The chart of `days` (tokens per day), with an id prefix unique in the page.
pub(crate) fn daily_chart(
    id: &str,
    caption: &str,
    days: &[DayUsage],
    currency: Currency,
) -> Markup {
    let Some(first) = days.first() else {
        return html! { p.empty { "No days to chart in this period." } };
    };
    let last = days.last().unwrap_or(first);
    let n = u64::try_from(days.len()).unwrap_or(1).max(1);
    let slot = (PLOT_WIDTH / n).max(2);
    let gap = if slot >= 5 { slot / 5 } else { 0 };
    let width = LEFT + slot * n + RIGHT;
    let height = TOP + PLOT_HEIGHT + BOTTOM;
    let max = days.iter().map(|d| d.sums.total_tokens).max().unwrap_or(0);
    let top = nice_ceiling(max);
    let total: u64 = days
        .iter()
        .fold(0_u64, |acc, d| acc.saturating_add(d.sums.total_tokens));
    let busiest = days.iter().max_by_key(|d| d.sums.total_tokens);
    let step = n.div_ceil(X_LABELS).max(1);
    let base = TOP + PLOT_HEIGHT;
    let title_id = format!("{id}-title");
    let desc_id = format!("{id}-desc");
    let summary = match busiest {
        Some(b) if max > 0 => format!(
            "{} tokens over {} days, from {} to {}. Busiest day: {} with {} tokens.",
            format::count(total),
            n,
            format::day(first.day),
            format::day(last.day),
            format::day(b.day),
            format::count(b.sums.total_tokens)
        ),
        _ => format!(
            "No usage from {} to {}.",
            format::day(first.day),
            format::day(last.day)
        ),
    };
    html! {
        figure {
            svg.chart #(id) role="img" aria-labelledby={(title_id) " " (desc_id)}
                viewBox={"0 0 " (width) " " (height)} preserveAspectRatio="xMidYMid meet"
                xmlns="http://www.w3.org/2000/svg" {
                title #(title_id) { (caption) }
                desc #(desc_id) { (summary) }
                @for (label, value) in [(format::compact(top), top), (format::compact(top / 2), top / 2)] {
                    @let y = base - bar_height(value, top);
                    line.grid x1=(LEFT) x2=(width - RIGHT) y1=(y) y2=(y) {}
                    text x=(LEFT - 6) y=(y + 4) text-anchor="end" { (label) }
                }
                line.grid x1=(LEFT) x2=(width - RIGHT) y1=(base) y2=(base) {}
                text x=(LEFT - 6) y=(base + 4) text-anchor="end" { "0" }
                @for (i, d) in (0_u64..).zip(days) {
                    @let x = LEFT + i * slot + gap / 2;
                    @let h = bar_height(d.sums.total_tokens, top);
                    @if h > 0 {
                        rect.bar x=(x) y=(base - h) width=(slot - gap) height=(h) {
                            title {
                                (format::day(d.day)) ": " (format::count(d.sums.total_tokens)) " tokens, "
                                (format::count(d.sums.calls)) " calls, " (format::money(d.sums.cost, currency))
                            }
                        }
                    }
                    @if i % step == 0 {
                        text x=(x + (slot - gap) / 2) y=(base + 18) text-anchor="middle" {
                            (d.day.format("%m-%d"))
                        }
                    }
                }
            }
            figcaption { (caption) ". " (summary) }
        }
        details {
            summary { "Daily usage as a table" }
            div.scroll {
                table {
                    caption { (caption) }
                    thead { tr {
                        th scope="col" { "Day" }
                        th.num scope="col" { "Calls" }
                        th.num scope="col" { "Tokens" }
                        th.num scope="col" { "Cost" }
                    } }
                    tbody {
                        @for d in days {
                            tr {
                                th scope="row" { (format::day(d.day)) }
                                td.num { (format::count(d.sums.calls)) }
                                td.num { (format::count(d.sums.total_tokens)) }
                                td.num { (format::money(d.sums.cost, currency)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ai_metering_core::store::UsageSums;
    use chrono::NaiveDate;

    fn day(d: u32, tokens: u64) -> DayUsage {
        DayUsage {
            day: NaiveDate::from_ymd_opt(2024, 5, d).unwrap(),
            sums: UsageSums {
                calls: 1,
                total_tokens: tokens,
                ..UsageSums::default()
            },
        }
    }

    #[test]
    fn scale_tops_are_nice_numbers() {
        assert_eq!(nice_ceiling(0), 1);
        assert_eq!(nice_ceiling(7), 10);
        assert_eq!(nice_ceiling(12_345), 20_000);
        assert_eq!(nice_ceiling(50_000), 50_000);
        assert_eq!(nice_ceiling(u64::MAX), u64::MAX);
    }

    #[test]
    fn bars_scale_and_small_values_stay_visible() {
        assert_eq!(bar_height(0, 100), 0);
        assert_eq!(bar_height(100, 100), PLOT_HEIGHT);
        assert_eq!(bar_height(50, 100), PLOT_HEIGHT / 2);
        assert_eq!(bar_height(1, u64::MAX), 1);
        assert_eq!(bar_height(u64::MAX, u64::MAX), PLOT_HEIGHT);
    }

    #[test]
    fn one_bar_per_day_with_usage_each_with_a_tooltip() {
        let svg = daily_chart(
            "c",
            "Tokens per day",
            &[day(1, 10), day(2, 0), day(3, 30)],
            Currency::USD,
        )
        .into_string();
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(svg.contains("<title>2024-05-03: 30 tokens, 1 calls, 0.00 USD</title>"));
        assert!(svg.contains(r#"aria-labelledby="c-title c-desc""#));
        assert!(svg.contains("Busiest day: 2024-05-03 with 30 tokens."));
        // The text alternative lists every day, zeros included.
        assert!(svg.contains("<th scope=\"row\">2024-05-02</th>"));
    }

    #[test]
    fn no_days_is_a_message_not_a_chart() {
        let html = daily_chart("c", "x", &[], Currency::USD).into_string();
        assert!(!html.contains("<svg"));
    }
}
