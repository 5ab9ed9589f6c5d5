//! Server-rendered HTML with maud (which escapes every interpolated value): the page frame,
//! the chart, shared pieces and one module per page. No JavaScript anywhere.

mod billables;
mod breakdown;
mod chart;
mod layout;
mod overview;
mod parts;
mod usage;

pub(crate) use billables::{billable_page, billables_page};
pub(crate) use breakdown::breakdown_page;
pub(crate) use layout::{Section, error_page, page, render};
pub(crate) use overview::overview_page;
pub(crate) use usage::usage_page;
