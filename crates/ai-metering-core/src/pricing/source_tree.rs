//! A neutral tree for price sources (TOML and JSON) that keeps every number as its decimal
//! text, so prices are read exactly and never pass through a binary float.
//!
//! - TOML is parsed with `toml::de::DeTable`, which keeps the literal text of integers and
//!   floats (`2.50` stays "2.50"), so even TOML floats are read exactly.
//! - JSON numbers come from `serde_json::Number`'s `Display`, the shortest text that reads back
//!   as the same number: a literal with up to 15 significant digits (every real price) is given
//!   back digit for digit, so `1.5e-07` becomes exactly 0.00000015.

use std::collections::BTreeMap;
use std::str::FromStr;

use rust_decimal::Decimal;

use crate::error::{Error, Result};

/// One value of a price source.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    /// What the value is.
    pub(crate) kind: Kind,
    /// The 1-based line it starts on, when the source is text with lines (TOML).
    pub(crate) line: Option<usize>,
}

/// The kinds of value a price source holds.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Kind {
    /// A table (TOML) or object (JSON).
    Table(BTreeMap<String, Node>),
    /// A number, as its decimal text.
    Number(String),
    /// A string.
    Str(String),
    /// JSON `null`.
    Null,
    /// Anything else (boolean, array, date-time), named with its article for error messages.
    Other(&'static str),
}

impl Node {
    /// Parses a TOML document.
    pub(crate) fn from_toml(text: &str) -> Result<Node> {
        let table = toml::de::DeTable::parse(text)
            .map_err(|err| Error::InvalidCatalog(format!("not valid TOML: {err}")))?;
        let lines = LineIndex::new(text);
        Ok(Node::from_toml_table(
            table.get_ref(),
            table.span().start,
            &lines,
        ))
    }

    fn from_toml_table(table: &toml::de::DeTable<'_>, offset: usize, lines: &LineIndex) -> Node {
        let entries = table
            .iter()
            .map(|(key, value)| {
                let node = Node::from_toml_value(value.get_ref(), value.span().start, lines);
                // A key's line is more useful than its value's (a table header, for instance).
                let node = Node {
                    line: Some(lines.line_of(key.span().start)),
                    ..node
                };
                (key.get_ref().to_string(), node)
            })
            .collect();
        Node {
            kind: Kind::Table(entries),
            line: Some(lines.line_of(offset)),
        }
    }

    fn from_toml_value(value: &toml::de::DeValue<'_>, offset: usize, lines: &LineIndex) -> Node {
        use toml::de::DeValue;
        let kind = match value {
            DeValue::String(s) => Kind::Str(s.to_string()),
            DeValue::Integer(i) if i.radix() == 10 => Kind::Number(i.as_str().to_owned()),
            DeValue::Integer(_) => Kind::Other("a non-decimal integer"),
            DeValue::Float(f) => Kind::Number(f.as_str().to_owned()),
            DeValue::Boolean(_) => Kind::Other("a boolean"),
            DeValue::Datetime(_) => Kind::Other("a date-time"),
            DeValue::Array(_) => Kind::Other("an array"),
            DeValue::Table(table) => return Node::from_toml_table(table, offset, lines),
        };
        Node {
            kind,
            line: Some(lines.line_of(offset)),
        }
    }

    /// Converts a JSON value.
    pub(crate) fn from_json(value: &serde_json::Value) -> Node {
        use serde_json::Value;
        let kind = match value {
            Value::Object(map) => Kind::Table(
                map.iter()
                    .map(|(key, value)| (key.clone(), Node::from_json(value)))
                    .collect(),
            ),
            Value::Number(n) => Kind::Number(n.to_string()),
            Value::String(s) => Kind::Str(s.clone()),
            Value::Null => Kind::Null,
            Value::Bool(_) => Kind::Other("a boolean"),
            Value::Array(_) => Kind::Other("an array"),
        };
        Node { kind, line: None }
    }

    /// Parses a JSON document.
    pub(crate) fn from_json_str(text: &str) -> Result<Node> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|err| Error::InvalidCatalog(format!("not valid JSON: {err}")))?;
        Ok(Node::from_json(&value))
    }

    /// The name of this value's type, for error messages.
    pub(crate) fn type_name(&self) -> &'static str {
        match &self.kind {
            Kind::Table(_) => "a table",
            Kind::Number(_) => "a number",
            Kind::Str(_) => "a string",
            Kind::Null => "null",
            Kind::Other(name) => name,
        }
    }

    /// This value's entries, or an error naming `path` when it is not a table.
    pub(crate) fn table(&self, path: &Path) -> Result<&BTreeMap<String, Node>> {
        match &self.kind {
            Kind::Table(entries) => Ok(entries),
            _ => Err(self.error(
                path,
                format!("expected a table, found {}", self.type_name()),
            )),
        }
    }

    /// This value as a string, or an error naming `path`.
    pub(crate) fn string(&self, path: &Path) -> Result<&str> {
        match &self.kind {
            Kind::Str(s) => Ok(s),
            _ => Err(self.error(
                path,
                format!("expected a string, found {}", self.type_name()),
            )),
        }
    }

    /// This value as a price: a number or a string holding one, exact and not negative.
    pub(crate) fn price(&self, path: &Path) -> Result<Decimal> {
        let text = match &self.kind {
            Kind::Number(text) | Kind::Str(text) => text,
            _ => {
                return Err(self.error(
                    path,
                    format!(
                        "expected a price (a decimal number or a string such as \"2.50\"), found {}",
                        self.type_name()
                    ),
                ));
            }
        };
        let value = parse_decimal(text)
            .ok_or_else(|| self.error(path, format!("{text:?} is not an exact decimal number")))?;
        if value.is_sign_negative() && !value.is_zero() {
            return Err(self.error(path, format!("prices cannot be negative, found {text}")));
        }
        Ok(value)
    }

    /// An [`Error::InvalidCatalog`] about this value at `path`.
    pub(crate) fn error(&self, path: &Path, reason: impl std::fmt::Display) -> Error {
        match self.line {
            Some(line) => Error::InvalidCatalog(format!("{path} (line {line}): {reason}")),
            None => Error::InvalidCatalog(format!("{path}: {reason}")),
        }
    }
}

/// Rejects keys of `table` (found at `path`) that are not in `allowed`, naming the first one.
pub(crate) fn deny_unknown_keys(
    table: &BTreeMap<String, Node>,
    path: &Path,
    allowed: &[&str],
) -> Result<()> {
    match table
        .iter()
        .find(|(key, _)| !allowed.contains(&key.as_str()))
    {
        None => Ok(()),
        Some((key, node)) => Err(node.error(
            &path.child(key),
            format!("unknown key; expected one of: {}", allowed.join(", ")),
        )),
    }
}

/// The message of `err` without the "invalid price catalog:" prefix, to re-attach to a path.
pub(crate) fn reason(err: Error) -> String {
    match err {
        Error::InvalidCatalog(message) | Error::InvalidInput(message) => message,
        other => other.to_string(),
    }
}

/// A dotted key path such as `providers.openai.models."gpt-4o".input_per_million`, for error
/// messages.
#[derive(Debug, Clone, Default)]
pub(crate) struct Path(String);

impl Path {
    /// The path of the document itself.
    pub(crate) fn root() -> Self {
        Self::default()
    }

    /// The path of `key` inside this one; keys that are not bare TOML keys are quoted.
    pub(crate) fn child(&self, key: &str) -> Path {
        let bare = !key.is_empty()
            && key
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let key = if bare {
            key.to_owned()
        } else {
            format!("{key:?}")
        };
        if self.0.is_empty() {
            Path(key)
        } else {
            Path(format!("{}.{key}", self.0))
        }
    }
}

impl std::fmt::Display for Path {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            f.write_str("the document")
        } else {
            f.write_str(&self.0)
        }
    }
}

/// Parses decimal text exactly: `2.50`, `-3`, `+0.5`, `1.5e-07`, `6E-6`. Returns `None` for
/// anything else, including `inf`, `nan` and numbers that would need rounding.
pub(crate) fn parse_decimal(text: &str) -> Option<Decimal> {
    // `at` is the index of a one-byte ASCII letter, so both slices are on char boundaries.
    let (base, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], Some(&text[at + 1..])),
        None => (text, None),
    };
    let unsigned = base
        .strip_prefix('+')
        .or_else(|| base.strip_prefix('-'))
        .unwrap_or(base);
    let well_formed = unsigned.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && unsigned.bytes().any(|b| b.is_ascii_digit());
    if !well_formed {
        return None;
    }
    let value = Decimal::from_str_exact(base.strip_prefix('+').unwrap_or(base)).ok()?;
    let Some(exponent) = exponent else {
        return Some(value);
    };
    let exponent = i64::from_str(exponent.strip_prefix('+').unwrap_or(exponent)).ok()?;
    if exponent < 0 {
        // Dividing by 10^-exponent is raising the scale; trailing zeros are dropped first so
        // that `2.50e-27` still fits.
        let mut value = value.normalize();
        let scale = i64::from(value.scale()).checked_sub(exponent)?;
        value.set_scale(u32::try_from(scale).ok()?).ok()?;
        Some(value)
    } else {
        let power = u32::try_from(exponent).ok()?;
        super::exact::times_power_of_ten(value, power).ok()
    }
}

/// Byte offset to line number.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> Self {
        let starts = std::iter::once(0)
            .chain(text.match_indices('\n').map(|(at, _)| at + 1))
            .collect();
        Self { starts }
    }

    fn line_of(&self, offset: usize) -> usize {
        match self.starts.binary_search(&offset) {
            Ok(index) => index + 1,
            Err(index) => index,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_parsed_exactly() {
        let cases = [
            ("2.50", "2.50"),
            ("0", "0"),
            ("+0.5", "0.5"),
            ("1.5e-07", "0.00000015"),
            ("1.5e-7", "0.00000015"),
            ("6E-6", "0.000006"),
            ("2.5e+3", "2500"),
            ("1e2", "100"),
            ("-3", "-3"),
        ];
        for (text, expected) in cases {
            let parsed = parse_decimal(text).unwrap_or_else(|| panic!("{text}"));
            assert_eq!(parsed, expected.parse::<Decimal>().unwrap(), "{text}");
        }
        for bad in [
            "", "e5", "1e", "inf", "nan", "1.2.3", "0x10", "1_000", " 1", "1e99", "--1",
        ] {
            assert_eq!(parse_decimal(bad), None, "{bad:?}");
        }
        // More digits than a Decimal holds would need rounding: refused.
        assert_eq!(parse_decimal("0.12345678901234567890123456789012"), None);
    }

    #[test]
    fn toml_floats_keep_their_literal_text() {
        let node = Node::from_toml("a = 0.1\nb = 1_000.25\nc = 2.5e-7\nd = 0x10\n").unwrap();
        let path = Path::root();
        let table = node.table(&path).unwrap();
        assert_eq!(table["a"].kind, Kind::Number("0.1".into()));
        assert_eq!(table["b"].price(&path).unwrap().to_string(), "1000.25");
        assert_eq!(table["c"].price(&path).unwrap().to_string(), "0.00000025");
        assert!(table["d"].price(&path).is_err());
        assert_eq!(table["c"].line, Some(3));
    }

    #[test]
    fn price_errors_name_the_path_and_line() {
        let node = Node::from_toml("[x.\"gpt-4.1\"]\nprice = -1\nflag = true\n").unwrap();
        let root = Path::root();
        let model = &node.table(&root).unwrap()["x"].table(&root).unwrap()["gpt-4.1"];
        let path = Path::root().child("x").child("gpt-4.1");
        let fields = model.table(&path).unwrap();
        let err = fields["price"].price(&path.child("price")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid price catalog: x.\"gpt-4.1\".price (line 2): prices cannot be negative, found -1"
        );
        let err = fields["flag"].price(&path.child("flag")).unwrap_err();
        assert!(err.to_string().contains("found a boolean"), "{err}");
        let err = deny_unknown_keys(fields, &path, &["price"]).unwrap_err();
        assert!(
            err.to_string()
                .contains("x.\"gpt-4.1\".flag (line 3): unknown key"),
            "{err}"
        );
    }

    #[test]
    fn json_numbers_come_back_as_written() {
        let node =
            Node::from_json_str(r#"{"a": 1.5e-07, "b": 7.5e-08, "c": 3, "d": null}"#).unwrap();
        let path = Path::root();
        let table = node.table(&path).unwrap();
        assert_eq!(table["a"].price(&path).unwrap().to_string(), "0.00000015");
        assert_eq!(table["b"].price(&path).unwrap().to_string(), "0.000000075");
        assert_eq!(table["c"].price(&path).unwrap(), Decimal::from(3));
        assert_eq!(table["d"].kind, Kind::Null);
        assert!(Node::from_json_str("{").is_err());
    }
}
