//! Property tests of period arithmetic: for random specs (every kind, calendar-aligned and
//! anchored, in zones with unusual DST rules) and random instants between 1990 and 2100,
//! periods contain their instants and tile time with no gap and no overlap.
#![allow(clippy::unwrap_used)] // tests may fail loudly

use ai_metering_core::period::{Alignment, Period, PeriodKind, PeriodSpec};
use chrono::{DateTime, Datelike, NaiveTime, TimeDelta, TimeZone, Utc, Weekday};
use chrono_tz::Tz;
use proptest::prelude::*;

const ZONES: &[Tz] = &[
    chrono_tz::UTC,
    chrono_tz::Europe::Berlin,
    chrono_tz::America::New_York,
    chrono_tz::Australia::Lord_Howe, // 30-minute DST shift
    chrono_tz::Asia::Kolkata,        // +05:30, no DST
    chrono_tz::Pacific::Apia,        // skipped 2011-12-30 entirely
    chrono_tz::America::Havana,      // DST changes at midnight
    chrono_tz::America::Sao_Paulo,   // DST used to start at midnight
    chrono_tz::Pacific::Chatham,     // +12:45 / +13:45
];

/// 1990-01-01T00:00:00Z and 2100-01-01T00:00:00Z.
const FROM: i64 = 631_152_000;
const TO: i64 = 4_102_444_800;

fn instant(range: std::ops::Range<i64>) -> impl Strategy<Value = DateTime<Utc>> {
    (range, 0u32..1_000_000_000).prop_filter_map("representable", |(secs, nanos)| {
        DateTime::from_timestamp(secs, nanos)
    })
}

fn kind() -> impl Strategy<Value = PeriodKind> {
    prop_oneof![
        Just(PeriodKind::Daily),
        Just(PeriodKind::Weekly),
        Just(PeriodKind::Monthly),
        Just(PeriodKind::Yearly),
        (1u32..=400).prop_map(|days| PeriodKind::Rolling { days }),
    ]
}

fn spec() -> impl Strategy<Value = PeriodSpec> {
    let alignment = prop_oneof![
        Just(Alignment::Calendar),
        // Anchors from 1970 to 2100, often before the instants, sometimes after.
        instant(0..TO).prop_map(Alignment::Anchored),
    ];
    (kind(), alignment, prop::sample::select(ZONES))
        .prop_filter_map("valid spec", |(kind, alignment, tz)| {
            PeriodSpec::new(kind, alignment, tz).ok()
        })
}

/// The shortest and longest nominal length of a kind's periods.
fn nominal(kind: PeriodKind) -> (TimeDelta, TimeDelta) {
    let days = |d: i64| TimeDelta::days(d);
    match kind {
        PeriodKind::Daily => (days(1), days(1)),
        PeriodKind::Weekly => (days(7), days(7)),
        PeriodKind::Monthly => (days(28), days(31)),
        PeriodKind::Yearly => (days(365), days(366)),
        PeriodKind::Rolling { days: n } => (days(i64::from(n)), days(i64::from(n))),
    }
}

fn check_period(spec: &PeriodSpec, p: &Period) -> Result<(), TestCaseError> {
    prop_assert!(p.start < p.end, "{spec}: empty period {p}");
    // Lengths stay within DST shifts (at most 2 hours) of the nominal length, except that a
    // skipped day (Samoa 2011) can shorten a period by one day.
    let (shortest, longest) = nominal(spec.kind());
    prop_assert!(
        p.duration() >= shortest - TimeDelta::hours(26)
            && p.duration() <= longest + TimeDelta::hours(2),
        "{spec}: {p} lasts {}",
        p.duration()
    );
    // Calendar periods start at local midnight of the right day, unless that midnight did
    // not exist (then at the end of the gap, later that day).
    if spec.alignment() == Alignment::Calendar && !matches!(spec.kind(), PeriodKind::Rolling { .. })
    {
        let tz = spec.timezone();
        let local = p.start.with_timezone(&tz).naive_local();
        let midnight = local.date().and_time(NaiveTime::MIN);
        if local.time() != NaiveTime::MIN {
            prop_assert!(
                tz.from_local_datetime(&midnight).single().is_none()
                    && tz.from_local_datetime(&midnight).earliest().is_none(),
                "{spec}: {p} starts at {local} although local midnight exists"
            );
        }
        match spec.kind() {
            PeriodKind::Weekly => prop_assert_eq!(local.weekday(), Weekday::Mon),
            PeriodKind::Monthly => prop_assert_eq!(local.day(), 1),
            PeriodKind::Yearly => prop_assert_eq!((local.month(), local.day()), (1, 1)),
            _ => {}
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn the_period_at_an_instant_contains_it_and_steps_are_consistent(
        spec in spec(),
        t in instant(FROM..TO),
    ) {
        let p = spec.period_at(t).unwrap();
        prop_assert!(p.contains(t), "{spec}: {p} does not contain {t}");
        check_period(&spec, &p)?;

        let next = spec.next(&p).unwrap();
        prop_assert_eq!(next.start, p.end);
        prop_assert_eq!(spec.previous(&next).unwrap(), p);
        prop_assert_eq!(spec.period_at(p.end).unwrap(), next);

        let previous = spec.previous(&p).unwrap();
        prop_assert_eq!(previous.end, p.start);
        prop_assert_eq!(spec.next(&previous).unwrap(), p);

        // Every instant of the period maps back to it.
        prop_assert_eq!(spec.period_at(p.start).unwrap(), p);
        prop_assert_eq!(spec.period_at(p.end - TimeDelta::nanoseconds(1)).unwrap(), p);
    }

    #[test]
    fn consecutive_periods_tile_time_over_fifty_steps(
        spec in spec(),
        t in instant(FROM..TO),
    ) {
        let first = spec.period_at(t).unwrap();
        let mut forward = vec![first];
        for _ in 0..50 {
            let last = forward[forward.len() - 1];
            let next = spec.next(&last).unwrap();
            prop_assert_eq!(next.start, last.end, "{}: gap or overlap after {}", spec, last);
            check_period(&spec, &next)?;
            forward.push(next);
        }
        // Walking back visits the same periods.
        let mut p = forward[forward.len() - 1];
        for expected in forward.iter().rev().skip(1) {
            p = spec.previous(&p).unwrap();
            prop_assert_eq!(p, *expected);
        }
    }

    #[test]
    fn an_anchor_that_exists_once_starts_its_own_period(
        kind in kind(),
        tz in prop::sample::select(ZONES),
        anchor in instant(FROM..TO),
    ) {
        let spec = PeriodSpec::new(kind, Alignment::Anchored(anchor), tz).unwrap();
        let local = anchor.with_timezone(&tz).naive_local();
        let unambiguous = tz.from_local_datetime(&local).single().is_some();
        let p = spec.period_at(anchor).unwrap();
        if unambiguous {
            prop_assert_eq!(p.start, anchor, "{}", spec);
        } else {
            // The earlier instant of an ambiguous wall-clock time.
            prop_assert!(p.start <= anchor);
            prop_assert_eq!(p.start.with_timezone(&tz).naive_local(), local);
        }
        // Later periods keep the anchor's time of day unless it falls into a gap.
        let later = spec.next(&spec.next(&p).unwrap()).unwrap();
        let later_local = later.start.with_timezone(&tz).naive_local();
        if tz.from_local_datetime(&later_local.date().and_time(local.time())).earliest().is_some() {
            prop_assert_eq!(later_local.time(), local.time(), "{}", spec);
        }
    }
}
