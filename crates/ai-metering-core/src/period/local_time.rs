//! Wall-clock time in an IANA zone: from an instant to the local time and back, with one
//! deterministic rule for local times that do not exist (a DST gap) or exist twice (a DST
//! overlap).
//!
//! The rule: a local time `n` stands for **the first instant at which the wall clock shows `n`
//! or a later time**. So
//! - a time that exists once is that instant;
//! - an ambiguous time (clocks went back) is the *earlier* of its two instants;
//! - a time inside a gap (clocks jumped forward) is the first instant after the gap, the
//!   moment of the jump itself.
//!
//! Defined this way, the mapping never goes backwards: a later local time never resolves to
//! an earlier instant. Period boundaries rely on that.

use chrono::{DateTime, MappedLocalTime, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;

use crate::error::{Error, Result};

/// The wall-clock time `t` shows in `tz`.
pub(super) fn to_local(t: DateTime<Utc>, tz: Tz) -> Result<NaiveDateTime> {
    let utc = t.naive_utc();
    let offset = tz.offset_from_utc_datetime(&utc).fix();
    utc.checked_add_offset(offset)
        .ok_or_else(|| out_of_range(&t))
}

/// The first instant at which the wall clock in `tz` shows `local` or a later time (see the
/// module docs).
pub(super) fn resolve(local: NaiveDateTime, tz: Tz) -> Result<DateTime<Utc>> {
    match tz.from_local_datetime(&local) {
        MappedLocalTime::Single(t) => Ok(t.with_timezone(&Utc)),
        MappedLocalTime::Ambiguous(a, b) => Ok(a.min(b).with_timezone(&Utc)),
        MappedLocalTime::None => end_of_gap(local, tz),
    }
}

/// The error for instants or local times too far from the present to compute with.
pub(super) fn out_of_range(what: &dyn std::fmt::Display) -> Error {
    Error::InvalidInput(format!(
        "{what} is outside the range of dates that periods can be computed for"
    ))
}

/// The first whole-second instant whose local time in `tz` is `local` or later, for a `local`
/// that falls into a gap.
///
/// UTC offsets stay within ±16 hours, so that instant lies within 27 hours of `local` read as
/// UTC: at `local - 27h` the clock shows less than `local`, at `local + 27h` more. A binary
/// search between the two finds the moment the clock passes `local` (the end of the gap; zone
/// transitions happen on whole seconds).
fn end_of_gap(local: NaiveDateTime, tz: Tz) -> Result<DateTime<Utc>> {
    let window = TimeDelta::hours(27);
    let bound = |dt: Option<NaiveDateTime>| {
        dt.map(|dt| dt.and_utc().timestamp())
            .ok_or_else(|| out_of_range(&local))
    };
    let mut before = bound(local.checked_sub_signed(window))?;
    let mut after = bound(local.checked_add_signed(window))?;
    while after - before > 1 {
        let mid = before + (after - before) / 2;
        if to_local(instant(mid, &local)?, tz)? >= local {
            after = mid;
        } else {
            before = mid;
        }
    }
    instant(after, &local)
}

fn instant(timestamp: i64, local: &NaiveDateTime) -> Result<DateTime<Utc>> {
    DateTime::from_timestamp(timestamp, 0).ok_or_else(|| out_of_range(local))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)] // tests may fail loudly
mod tests {
    use super::*;
    use chrono::NaiveDate;

    fn local(y: i32, m: u32, d: u32, h: u32, min: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .and_then(|d| d.and_hms_opt(h, min, 0))
            .unwrap()
    }

    fn utc(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    #[test]
    fn a_time_in_a_spring_forward_gap_resolves_to_the_end_of_the_gap() {
        // Berlin, 2024-03-31: 02:00 CET jumps to 03:00 CEST (01:00 UTC).
        let tz = chrono_tz::Europe::Berlin;
        assert_eq!(
            resolve(local(2024, 3, 31, 2, 30), tz).unwrap(),
            utc("2024-03-31T01:00:00Z")
        );
        assert_eq!(
            resolve(local(2024, 3, 31, 2, 0), tz).unwrap(),
            utc("2024-03-31T01:00:00Z")
        );
        // Just outside the gap, times resolve normally.
        assert_eq!(
            resolve(local(2024, 3, 31, 1, 59), tz).unwrap(),
            utc("2024-03-31T00:59:00Z")
        );
        assert_eq!(
            resolve(local(2024, 3, 31, 3, 0), tz).unwrap(),
            utc("2024-03-31T01:00:00Z")
        );
    }

    #[test]
    fn an_ambiguous_time_resolves_to_the_earlier_instant() {
        // Berlin, 2024-10-27: 03:00 CEST goes back to 02:00 CET; 02:30 happens twice.
        let tz = chrono_tz::Europe::Berlin;
        assert_eq!(
            resolve(local(2024, 10, 27, 2, 30), tz).unwrap(),
            utc("2024-10-27T00:30:00Z")
        );
    }

    #[test]
    fn a_whole_skipped_day_resolves_to_the_moment_of_the_jump() {
        // Samoa skipped 2011-12-30 entirely: 2011-12-29 24:00 (-10:00) became 2011-12-31
        // 00:00 (+14:00), that is 2011-12-30 10:00 UTC.
        let tz = chrono_tz::Pacific::Apia;
        let jump = utc("2011-12-30T10:00:00Z");
        assert_eq!(resolve(local(2011, 12, 30, 0, 0), tz).unwrap(), jump);
        assert_eq!(resolve(local(2011, 12, 30, 18, 0), tz).unwrap(), jump);
        assert_eq!(resolve(local(2011, 12, 31, 0, 0), tz).unwrap(), jump);
    }

    #[test]
    fn to_local_and_resolve_round_trip_outside_transitions() {
        let tz = chrono_tz::Asia::Kolkata;
        let t = utc("2024-06-01T12:34:56Z");
        let l = to_local(t, tz).unwrap();
        assert_eq!(l, local(2024, 6, 1, 18, 4) + TimeDelta::seconds(56));
        assert_eq!(resolve(l, tz).unwrap(), t);
    }

    /// The instants in `year` at which `tz` changes its UTC offset (found by scanning days,
    /// then bisecting seconds).
    fn transitions(tz: Tz, year: i32) -> Vec<DateTime<Utc>> {
        let offset = |t: i64| {
            let t = DateTime::from_timestamp(t, 0).unwrap();
            tz.offset_from_utc_datetime(&t.naive_utc()).fix()
        };
        let first = local(year, 1, 1, 0, 0).and_utc().timestamp();
        let last = local(year + 1, 1, 1, 0, 0).and_utc().timestamp();
        let mut found = Vec::new();
        let mut day = first;
        while day < last {
            let (mut before, mut after) = (day, day + 86_400);
            if offset(before) != offset(after) {
                while after - before > 1 {
                    let mid = before + (after - before) / 2;
                    if offset(mid) == offset(before) {
                        before = mid;
                    } else {
                        after = mid;
                    }
                }
                found.push(DateTime::from_timestamp(after, 0).unwrap());
            }
            day += 86_400;
        }
        found
    }

    proptest::proptest! {
        /// The rule itself, checked where it matters: wall-clock times within two hours of a
        /// zone's clock changes. `resolve(n)` is the first instant whose local time is `n` or
        /// later: it shows `n` or later, and one second before it the clock showed less than
        /// `n`; a time that exists resolves to the earliest instant showing exactly that time.
        #[test]
        fn resolve_is_the_first_instant_showing_that_time_or_later(
            tz in proptest::sample::select(&[
                chrono_tz::Europe::Berlin,
                chrono_tz::America::New_York,
                chrono_tz::America::Havana,
                chrono_tz::America::Sao_Paulo,
                chrono_tz::Australia::Lord_Howe,
                chrono_tz::Pacific::Apia,
            ][..]),
            year in 1990i32..2030,
            which in 0usize..4,
            minutes in -120i64..=120,
            seconds in 0i64..60,
        ) {
            let changes = transitions(tz, year);
            proptest::prop_assume!(!changes.is_empty());
            let change = changes[which % changes.len()];
            // The wall-clock time just as the clock changes, as read on the old offset.
            let at_change = to_local(change - TimeDelta::seconds(1), tz).unwrap()
                + TimeDelta::seconds(1);
            let n = at_change + TimeDelta::minutes(minutes) + TimeDelta::seconds(seconds);
            let u = resolve(n, tz).unwrap();
            let shown = to_local(u, tz).unwrap();
            proptest::prop_assert!(shown >= n, "{tz} {n}: {u} shows {shown}");
            let before = to_local(u - TimeDelta::seconds(1), tz).unwrap();
            proptest::prop_assert!(before < n, "{tz} {n}: {u} is not the first instant");
            if let Some(earliest) = tz.from_local_datetime(&n).earliest() {
                // An existing time: the earlier of its instants if it happened twice.
                proptest::prop_assert_eq!(shown, n);
                proptest::prop_assert_eq!(u, earliest.with_timezone(&Utc));
            } else {
                // A skipped time: the end of the gap, which shows a later time.
                proptest::prop_assert!(shown > n);
            }
        }
    }

    #[test]
    fn extreme_instants_are_errors_not_panics() {
        let tz = chrono_tz::Pacific::Kiritimati; // +14:00
        assert!(to_local(DateTime::<Utc>::MAX_UTC, tz).is_err());
        assert!(resolve(NaiveDateTime::MAX, chrono_tz::America::New_York).is_err());
    }
}
