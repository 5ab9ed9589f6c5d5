//! The names a model is looked up under: as given, without a path prefix, without a snapshot
//! suffix.
//!
//! Providers answer with dated snapshot names (`gpt-4o-2024-08-06`,
//! `claude-sonnet-4-5-20250929`, Vertex's `claude-sonnet-4-5@20250929`), moving aliases
//! (`claude-3-7-sonnet-latest`), and gateways or SDKs add path prefixes (`openai/gpt-4o`,
//! Gemini's `models/gemini-2.5-flash`). A catalog lists the base names, so a lookup tries, in
//! order:
//!
//! 1. the name as given;
//! 2. the part after the last `/`;
//! 3. each of those without one snapshot suffix: `-latest`, `-YYYY-MM-DD`, `-YYYYMMDD` or
//!    `@YYYYMMDD` (a real calendar date in 2000-2099).
//!
//! A snapshot priced differently from its base name (`gpt-4o-2024-05-13`) must be listed
//! under its own name; the name as given always wins.

/// The candidate names for `model`, most specific first, without repeats.
pub(crate) fn candidates<'a>(model: &'a str) -> Vec<&'a str> {
    let mut names: Vec<&str> = Vec::with_capacity(4);
    let mut push = |name: &'a str| {
        if !name.is_empty() && !names.contains(&name) {
            names.push(name);
        }
    };
    let last_segment = model.rsplit_once('/').map(|(_, name)| name);
    push(model);
    if let Some(name) = last_segment {
        push(name);
    }
    if let Some(base) = without_snapshot_suffix(model) {
        push(base);
    }
    if let Some(base) = last_segment.and_then(without_snapshot_suffix) {
        push(base);
    }
    names
}

/// `model` without a trailing `-latest`, `-YYYY-MM-DD`, `-YYYYMMDD` or `@YYYYMMDD`, if it has
/// one.
fn without_snapshot_suffix(model: &str) -> Option<&str> {
    if let Some(base) = model.strip_suffix("-latest") {
        return Some(base);
    }
    // The tails below are exactly 11 or 9 ASCII bytes (checked by `split_tail`), so the
    // fixed indexes into them are in bounds and on character boundaries.
    // `-YYYY-MM-DD`: 11 ASCII bytes.
    if let Some((base, date)) = split_tail(model, 11)
        && date.starts_with('-')
        && is_date(&date[1..5], &date[6..8], &date[9..11])
        && date.as_bytes()[5] == b'-'
        && date.as_bytes()[8] == b'-'
    {
        return Some(base);
    }
    // `-YYYYMMDD` or `@YYYYMMDD`: 9 ASCII bytes.
    if let Some((base, date)) = split_tail(model, 9)
        && (date.starts_with('-') || date.starts_with('@'))
        && is_date(&date[1..5], &date[5..7], &date[7..9])
    {
        return Some(base);
    }
    None
}

/// Splits off the last `len` bytes when they are all ASCII (so every index into them is a
/// character boundary) and something is left before them.
fn split_tail(model: &str, len: usize) -> Option<(&str, &str)> {
    let at = model.len().checked_sub(len)?;
    if at == 0 || !model.is_char_boundary(at) {
        return None;
    }
    let (base, tail) = model.split_at(at);
    tail.is_ascii().then_some((base, tail))
}

/// Whether the digits form a plausible calendar date in 2000-2099.
fn is_date(year: &str, month: &str, day: &str) -> bool {
    let number = |s: &str| {
        s.bytes()
            .all(|b| b.is_ascii_digit())
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    matches!(
        (number(year), number(month), number(day)),
        (Some(2000..=2099), Some(1..=12), Some(1..=31))
    )
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_suffixes_are_stripped() {
        assert_eq!(
            candidates("gpt-4o-2024-08-06"),
            ["gpt-4o-2024-08-06", "gpt-4o"]
        );
        assert_eq!(
            candidates("claude-sonnet-4-5-20250929"),
            ["claude-sonnet-4-5-20250929", "claude-sonnet-4-5"]
        );
        assert_eq!(
            candidates("claude-sonnet-4-5@20250929"),
            ["claude-sonnet-4-5@20250929", "claude-sonnet-4-5"]
        );
        assert_eq!(
            candidates("claude-3-7-sonnet-latest"),
            ["claude-3-7-sonnet-latest", "claude-3-7-sonnet"]
        );
        assert_eq!(
            candidates("gpt-5.2-2025-12-11"),
            ["gpt-5.2-2025-12-11", "gpt-5.2"]
        );
    }

    #[test]
    fn path_prefixes_are_stripped() {
        assert_eq!(candidates("openai/gpt-4o"), ["openai/gpt-4o", "gpt-4o"]);
        assert_eq!(
            candidates("models/gemini-2.5-flash"),
            ["models/gemini-2.5-flash", "gemini-2.5-flash"]
        );
        assert_eq!(
            candidates("openai/gpt-4o-mini-2024-07-18"),
            [
                "openai/gpt-4o-mini-2024-07-18",
                "gpt-4o-mini-2024-07-18",
                "openai/gpt-4o-mini",
                "gpt-4o-mini"
            ]
        );
    }

    #[test]
    fn things_that_are_not_dates_stay() {
        for name in [
            "gpt-4o",
            "o4-mini",
            "gemini-2.0-flash-001",
            "model-12345678",   // not a date
            "model-20251399",   // month 13
            "model-2024-13-01", // month 13
            "-latest",          // nothing before the suffix
            "-20250101",
            "",
            "modèle-2024-08-06é",
        ] {
            let names = candidates(name);
            assert!(names.len() <= 1, "{name}: {names:?}");
        }
        assert_eq!(candidates("modèle-20240806"), ["modèle-20240806", "modèle"]);
    }
}
