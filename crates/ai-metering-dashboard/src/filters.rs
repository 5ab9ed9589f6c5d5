//! Query parameters shared by the pages, the API and the CSV export: filters, search and
//! pagination, parsed into a store [`UsageFilter`] and [`Page`].
//!
//! Every field arrives as text (as an HTML form sends it); empty fields mean "not set".
//! The viewer's tenant scope is applied to every filter built here, whatever was asked.

use ai_metering_core::period::Period;
use ai_metering_core::store::{Page, UsageFilter};
use ai_metering_core::{Billable, Tenant};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::access::Scope;
use crate::error::DashboardError;

/// The longest search text accepted.
const MAX_SEARCH_CHARS: usize = 200;
/// The longest value accepted for any other text filter.
const MAX_FIELD_CHARS: usize = 300;

/// The query string of filterable, pageable views.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub(crate) struct UsageQuery {
    /// `KIND:ID`.
    #[serde(skip_serializing_if = "blank")]
    pub(crate) billable: Option<String>,
    /// A tenant id (ignored for tenant-scoped viewers, who only ever see their own).
    #[serde(skip_serializing_if = "blank")]
    pub(crate) tenant: Option<String>,
    /// A provider name.
    #[serde(skip_serializing_if = "blank")]
    pub(crate) provider: Option<String>,
    /// A model name.
    #[serde(skip_serializing_if = "blank")]
    pub(crate) model: Option<String>,
    /// A feature name.
    #[serde(skip_serializing_if = "blank")]
    pub(crate) feature: Option<String>,
    /// A date (`YYYY-MM-DD`, from its start, UTC) or an RFC 3339 instant, inclusive.
    #[serde(skip_serializing_if = "blank")]
    pub(crate) from: Option<String>,
    /// A date (`YYYY-MM-DD`, through its end, UTC) or an RFC 3339 instant, exclusive.
    #[serde(skip_serializing_if = "blank")]
    pub(crate) until: Option<String>,
    /// Text searched in feature, model and metadata, case-insensitively.
    #[serde(skip_serializing_if = "blank")]
    pub(crate) q: Option<String>,
    /// Page number from 1.
    #[serde(skip_serializing_if = "blank")]
    pub(crate) page: Option<String>,
    /// Rows a page, at most [`Page::MAX_LIMIT`].
    #[serde(skip_serializing_if = "blank")]
    pub(crate) per_page: Option<String>,
}

fn blank(v: &Option<String>) -> bool {
    v.as_deref().is_none_or(|s| s.trim().is_empty())
}

/// The trimmed value of a field, `None` when absent or blank.
pub(crate) fn value(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn text(name: &str, v: &Option<String>, max: usize) -> Result<Option<String>, DashboardError> {
    match value(v) {
        Some(s) if s.chars().count() > max => Err(DashboardError::BadRequest(format!(
            "`{name}` is longer than {max} characters"
        ))),
        other => Ok(other.map(str::to_owned)),
    }
}

/// A page request: its number from 1 and the store page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    /// The page number, from 1.
    pub(crate) number: u64,
    /// The store page.
    pub(crate) page: Page,
}

impl UsageQuery {
    /// The store filter: the fields given, `default_window` when neither `from` nor `until`
    /// is, and the viewer's tenant over any asked for.
    pub(crate) fn filter(
        &self,
        scope: &Scope,
        default_window: Option<&Period>,
    ) -> Result<UsageFilter, DashboardError> {
        let billable = match value(&self.billable) {
            Some(s) => Some(s.parse::<Billable>().map_err(|_| {
                DashboardError::BadRequest(format!(
                    "`billable` {:?} is not of the form KIND:ID (for example user:42)",
                    truncate(s, MAX_ECHO_CHARS)
                ))
            })?),
            None => None,
        };
        let mut from = instant("from", &self.from, Bound::Start)?;
        let mut until = instant("until", &self.until, Bound::End)?;
        if from.is_none()
            && until.is_none()
            && let Some(w) = default_window
        {
            from = Some(w.start);
            until = Some(w.end);
        }
        if let (Some(f), Some(u)) = (from, until)
            && f > u
        {
            return Err(DashboardError::BadRequest(
                "`from` is after `until`".to_owned(),
            ));
        }
        let tenant = match scope.tenant() {
            Some(t) => Some(t.clone()),
            None => text("tenant", &self.tenant, MAX_FIELD_CHARS)?.map(Tenant::new),
        };
        Ok(UsageFilter {
            billable,
            user_id: None,
            tenant,
            provider: text("provider", &self.provider, MAX_FIELD_CHARS)?,
            model: text("model", &self.model, MAX_FIELD_CHARS)?,
            feature: text("feature", &self.feature, MAX_FIELD_CHARS)?,
            from,
            until,
            search: text("q", &self.q, MAX_SEARCH_CHARS)?,
        })
    }

    /// The page asked for, `default_per_page` rows unless `per_page` says otherwise.
    pub(crate) fn page(&self, default_per_page: u64) -> Result<PageRequest, DashboardError> {
        let number = positive("page", &self.page)?.unwrap_or(1);
        let per_page = positive("per_page", &self.per_page)?.unwrap_or(default_per_page);
        let page = Page::number(number - 1, per_page);
        // Stores take offsets as signed 64-bit SQL integers: refuse what they cannot say.
        let limit = page.limit;
        let last = (MAX_OFFSET - limit) / limit + 1;
        if number > last {
            return Err(DashboardError::BadRequest(format!(
                "`page` {number} is out of range: with {limit} rows a page, pages go up to {last}"
            )));
        }
        Ok(PageRequest { number, page })
    }

    /// This query with another page number, as a URL query string (without `?`).
    pub(crate) fn with_page(&self, page: u64) -> String {
        let mut q = self.clone();
        q.page = (page > 1).then(|| page.to_string());
        q.to_query_string()
    }

    /// This query without paging, as a URL query string (without `?`).
    pub(crate) fn without_page(&self) -> String {
        let mut q = self.clone();
        q.page = None;
        q.per_page = None;
        q.to_query_string()
    }

    fn to_query_string(&self) -> String {
        // Serialising a struct of optional strings cannot fail.
        serde_urlencoded::to_string(self).unwrap_or_default()
    }
}

/// The largest row offset a page may reach, with its rows (SQL's signed 64-bit integers).
const MAX_OFFSET: u64 = i64::MAX as u64;

/// At most this many characters of a rejected value are quoted back in a message.
const MAX_ECHO_CHARS: usize = 40;

/// `s` cut to `max` characters, with `…` when something was cut.
fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_owned(),
    }
}

fn positive(name: &str, v: &Option<String>) -> Result<Option<u64>, DashboardError> {
    match value(v) {
        None => Ok(None),
        Some(s) => match s.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(Some(n)),
            _ => Err(DashboardError::BadRequest(format!(
                "`{name}` must be a whole number from 1, not {:?}",
                truncate(s, MAX_ECHO_CHARS)
            ))),
        },
    }
}

#[derive(Clone, Copy)]
enum Bound {
    Start,
    End,
}

/// A date or an RFC 3339 instant. A date means its start for `from` and the start of the
/// next day for `until`, so that `until=2024-05-31` includes the 31st.
fn instant(
    name: &str,
    v: &Option<String>,
    bound: Bound,
) -> Result<Option<DateTime<Utc>>, DashboardError> {
    let Some(s) = value(v) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let bad = || {
        DashboardError::BadRequest(format!(
            "`{name}` {:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 instant",
            truncate(s, MAX_ECHO_CHARS)
        ))
    };
    let date = NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| bad())?;
    let date = match bound {
        Bound::Start => date,
        Bound::End => date.checked_add_days(Days::new(1)).ok_or_else(bad)?,
    };
    Ok(Some(date.and_time(chrono::NaiveTime::MIN).and_utc()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::Access;
    use chrono::TimeZone;

    fn all() -> Scope {
        Scope::of(Access::AllowAll).unwrap()
    }

    fn q(pairs: &str) -> UsageQuery {
        serde_urlencoded::from_str(pairs).unwrap()
    }

    #[test]
    fn fields_become_a_filter_and_blanks_are_ignored() {
        let f =
            q("billable=user%3A42&provider=openai&model=&q=+sum+&from=2024-05-01&until=2024-05-31")
                .filter(&all(), None)
                .unwrap();
        assert_eq!(f.billable, Some(Billable::new("user", 42)));
        assert_eq!(f.provider.as_deref(), Some("openai"));
        assert_eq!(f.model, None);
        assert_eq!(f.search.as_deref(), Some("sum"));
        assert_eq!(
            f.from,
            Some(Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap())
        );
        // The until date is inclusive.
        assert_eq!(
            f.until,
            Some(Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap())
        );
    }

    #[test]
    fn instants_are_accepted_too() {
        let f = q("from=2024-05-01T12%3A00%3A00%2B02%3A00")
            .filter(&all(), None)
            .unwrap();
        assert_eq!(
            f.from,
            Some(Utc.with_ymd_and_hms(2024, 5, 1, 10, 0, 0).unwrap())
        );
    }

    #[test]
    fn default_window_applies_only_without_dates() {
        let w = Period {
            start: Utc.with_ymd_and_hms(2024, 5, 1, 0, 0, 0).unwrap(),
            end: Utc.with_ymd_and_hms(2024, 6, 1, 0, 0, 0).unwrap(),
        };
        let f = q("").filter(&all(), Some(&w)).unwrap();
        assert_eq!((f.from, f.until), (Some(w.start), Some(w.end)));
        let f = q("from=2024-01-01").filter(&all(), Some(&w)).unwrap();
        assert_eq!(f.until, None);
    }

    #[test]
    fn bad_values_are_bad_requests_naming_the_field() {
        for (query, field) in [
            ("billable=nocolon", "billable"),
            ("from=yesterday", "from"),
            ("until=2024-13-01", "until"),
            ("from=2024-05-03&until=2024-05-01", "from"),
        ] {
            let err = q(query).filter(&all(), None).unwrap_err();
            assert!(matches!(err, DashboardError::BadRequest(_)), "{query}");
            assert!(err.to_string().contains(field), "{query}: {err}");
        }
        let long = format!("q={}", "x".repeat(201));
        assert!(q(&long).filter(&all(), None).is_err());
        assert!(q("page=0").page(50).is_err());
        assert!(q("per_page=-1").page(50).is_err());
    }

    #[test]
    fn tenant_scope_overrides_the_tenant_asked_for() {
        let scope = Scope::of(Access::Tenant(Tenant::new("mine"))).unwrap();
        let f = q("tenant=theirs").filter(&scope, None).unwrap();
        assert_eq!(f.tenant, Some(Tenant::new("mine")));
        let f = q("tenant=theirs").filter(&all(), None).unwrap();
        assert_eq!(f.tenant, Some(Tenant::new("theirs")));
    }

    #[test]
    fn pages_are_bounded_and_numbered_from_one() {
        let p = q("page=3&per_page=20").page(50).unwrap();
        assert_eq!((p.number, p.page.offset, p.page.limit), (3, 40, 20));
        let p = q("per_page=999999").page(50).unwrap();
        assert_eq!(p.page.limit, Page::MAX_LIMIT);
        let p = q("").page(50).unwrap();
        assert_eq!((p.number, p.page.offset, p.page.limit), (1, 0, 50));
    }

    #[test]
    fn pages_whose_offset_exceeds_i64_are_refused_with_a_message() {
        let err = q("page=18446744073709551615").page(50).unwrap_err();
        assert!(matches!(err, DashboardError::BadRequest(_)));
        assert!(err.to_string().contains("out of range"), "{err}");
        // The last page whose rows a store can still address.
        let last = (i64::MAX as u64 - 50) / 50 + 1;
        let p = q(&format!("page={last}")).page(50).unwrap();
        assert!(p.page.offset + p.page.limit <= i64::MAX as u64);
        assert!(q(&format!("page={}", last + 1)).page(50).is_err());
        assert!(q("page=4611686018427387904&per_page=1").page(50).is_ok());
        // A long value is not quoted back whole.
        let long = "9".repeat(10_000);
        let err = q(&format!("page={long}")).page(50).unwrap_err().to_string();
        assert!(err.len() < 200, "{err}");
    }

    #[test]
    fn links_keep_filters_and_change_the_page() {
        let query = q("provider=openai&q=a+b&page=2&model=");
        assert_eq!(query.with_page(3), "provider=openai&q=a+b&page=3");
        assert_eq!(query.with_page(1), "provider=openai&q=a+b");
        assert_eq!(query.without_page(), "provider=openai&q=a+b");
    }
}
