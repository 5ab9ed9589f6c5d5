//! CSV export of usage rows, written with the `csv` crate (RFC 4180 quoting).
//!
//! Text cells that a spreadsheet would run as a formula (starting with `=`, `+`, `-`, `@`,
//! a tab or a carriage return) are prefixed with a single quote, so that opening an export
//! never executes what a caller put into a feature name or metadata.

use ai_metering_core::store::UsageRecord;

use crate::error::DashboardError;

/// The header row.
pub(crate) const HEADER: [&str; 19] = [
    "id",
    "occurred_at",
    "billable",
    "tenant",
    "user_id",
    "provider",
    "model",
    "feature",
    "input_tokens",
    "cached_input_tokens",
    "cache_write_tokens",
    "output_tokens",
    "reasoning_tokens",
    "total_tokens",
    "cost",
    "currency",
    "estimated",
    "idempotency_key",
    "metadata",
];

/// Makes a text cell inert in spreadsheets.
fn inert(text: &str) -> String {
    match text.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{text}"),
        _ => text.to_owned(),
    }
}

fn csv_error(e: csv::Error) -> DashboardError {
    DashboardError::Internal {
        status: http::StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("the CSV export failed: {e}"),
    }
}

/// A CSV document being written in memory.
pub(crate) struct CsvExport {
    writer: csv::Writer<Vec<u8>>,
}

impl CsvExport {
    /// A document with its header row.
    pub(crate) fn new() -> Result<Self, DashboardError> {
        let mut writer = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        writer.write_record(HEADER).map_err(csv_error)?;
        Ok(Self { writer })
    }

    /// Appends one usage row.
    pub(crate) fn push(&mut self, r: &UsageRecord) -> Result<(), DashboardError> {
        let e = &r.entry;
        let u = &e.usage;
        let metadata = if e.metadata.is_empty() {
            String::new()
        } else {
            serde_json::Value::Object(e.metadata.clone()).to_string()
        };
        let record = [
            r.id.to_string(),
            e.occurred_at.to_rfc3339(),
            inert(&e.billable.to_string()),
            inert(e.tenant.as_ref().map(|t| t.as_str()).unwrap_or_default()),
            inert(e.user_id.as_deref().unwrap_or_default()),
            inert(&e.provider),
            inert(&e.model),
            inert(e.feature.as_deref().unwrap_or_default()),
            u.input_tokens().to_string(),
            u.cached_input_tokens().to_string(),
            u.cache_write_tokens().to_string(),
            u.output_tokens().to_string(),
            u.reasoning_tokens().to_string(),
            u.total_tokens().to_string(),
            e.cost.total.to_string(),
            e.cost.currency.to_string(),
            e.estimated.to_string(),
            inert(e.idempotency_key.as_deref().unwrap_or_default()),
            inert(&metadata),
        ];
        self.writer.write_record(&record).map_err(csv_error)
    }

    /// The document's bytes.
    pub(crate) fn finish(self) -> Result<Vec<u8>, DashboardError> {
        self.writer
            .into_inner()
            .map_err(|e| csv_error(csv::Error::from(e.into_error())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_starters_are_neutralised_and_others_kept() {
        assert_eq!(inert("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(inert("+1"), "'+1");
        assert_eq!(inert("@sum"), "'@sum");
        assert_eq!(inert("-2"), "'-2");
        assert_eq!(inert("summarise"), "summarise");
        assert_eq!(inert(""), "");
    }

    #[test]
    fn header_only_document_is_one_crlf_line() {
        let bytes = CsvExport::new().unwrap().finish().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert!(text.starts_with("id,occurred_at,billable,"));
        assert!(text.ends_with("metadata\r\n"));
        assert_eq!(text.matches("\r\n").count(), 1);
    }
}
