//! The data behind every view, computed once and shown as HTML, JSON or CSV.
//!
//! Each view is a plain serialisable struct built from the store's queries and sums; the
//! viewer's tenant scope is applied to every usage filter.

mod billables;
mod breakdown;
mod history;
mod overview;
mod status;
mod window;

pub(crate) use billables::{BillableDetail, BillablesPage, billable_detail, billables_page};
pub(crate) use breakdown::{Breakdown, GroupTable, breakdown};
pub(crate) use history::{UsagePage, for_each_usage_row, usage_page};
pub(crate) use overview::{Overview, overview};
pub(crate) use status::{BillableStatus, LimitState};
pub(crate) use window::DayUsage;
