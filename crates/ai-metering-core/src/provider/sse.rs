//! A small server-sent events decoder: raw bytes in, `data` payloads out.
//!
//! It follows the event-stream format of the HTML standard, as far as usage metering needs:
//! lines end with `\n`, `\r\n` or `\r`; an empty line ends an event; `data:` lines of one
//! event are joined with `\n`; one space after the colon is dropped; comments (`:` lines)
//! and the `event`, `id` and `retry` fields are ignored; an event without `data` is not
//! dispatched. Chunks may be split anywhere, even inside a line ending or a UTF-8 character.
//! One event may hold at most a bounded number of bytes, so a peer that never ends its event
//! cannot make the decoder buffer without limit.

use super::Provider;
use super::fields::malformed;
use crate::error::Result;

/// The default bound on one event: 1 MiB.
pub(crate) const DEFAULT_MAX_EVENT_BYTES: usize = 1024 * 1024;

/// Decodes a byte stream into the `data` payloads of its events.
#[derive(Debug, Clone)]
pub(crate) struct SseDecoder {
    provider: Provider,
    max_event_bytes: usize,
    /// The bytes of the current, unfinished line.
    line: Vec<u8>,
    /// The `data` lines of the current event, each followed by `\n`.
    data: String,
    /// Whether the current event has at least one `data` field.
    has_data: bool,
    /// The previous chunk ended with `\r`: a `\n` starting the next chunk belongs to it.
    skip_lf: bool,
    /// No line has been completed yet (a byte-order mark may start the stream).
    at_stream_start: bool,
}

impl SseDecoder {
    /// A decoder whose error messages name `provider`, bounding events to `max_event_bytes`.
    pub(crate) fn new(provider: Provider, max_event_bytes: usize) -> Self {
        Self {
            provider,
            max_event_bytes,
            line: Vec::new(),
            data: String::new(),
            has_data: false,
            skip_lf: false,
            at_stream_start: true,
        }
    }

    /// Feeds one chunk, calling `on_data` with the payload of every event it completes.
    ///
    /// Stops at the first error (from the decoder or from `on_data`); the decoder should not
    /// be used after an error.
    pub(crate) fn feed(
        &mut self,
        chunk: &[u8],
        mut on_data: impl FnMut(&str) -> Result<()>,
    ) -> Result<()> {
        let mut rest = chunk;
        if self.skip_lf && !rest.is_empty() {
            self.skip_lf = false;
            if let Some(tail) = rest.strip_prefix(b"\n") {
                rest = tail;
            }
        }
        while let Some(end) = rest.iter().position(|&b| b == b'\n' || b == b'\r') {
            let (line, terminator_and_tail) = rest.split_at(end);
            self.extend_line(line)?;
            let Some((&terminator, tail)) = terminator_and_tail.split_first() else {
                // Unreachable: `end` is the index of a terminator byte.
                break;
            };
            rest = tail;
            if terminator == b'\r' {
                match rest.strip_prefix(b"\n") {
                    Some(tail) => rest = tail,
                    None => self.skip_lf = rest.is_empty(),
                }
            }
            self.end_line(&mut on_data)?;
        }
        self.extend_line(rest)
    }

    /// Bytes buffered for an event that has not ended yet.
    pub(crate) fn pending_bytes(&self) -> usize {
        self.data.len() + self.line.len()
    }

    fn extend_line(&mut self, bytes: &[u8]) -> Result<()> {
        if self.pending_bytes() + bytes.len() > self.max_event_bytes {
            return Err(malformed(
                self.provider,
                format!(
                    "a stream event exceeds the limit of {} bytes without ending",
                    self.max_event_bytes
                ),
            ));
        }
        self.line.extend_from_slice(bytes);
        Ok(())
    }

    fn end_line(&mut self, on_data: &mut impl FnMut(&str) -> Result<()>) -> Result<()> {
        let bytes = std::mem::take(&mut self.line);
        let mut line = std::str::from_utf8(&bytes).map_err(|e| {
            malformed(
                self.provider,
                format!("a stream line is not valid UTF-8: {e}"),
            )
        })?;
        if std::mem::replace(&mut self.at_stream_start, false) {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            return self.dispatch(on_data);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        if field == "data" {
            self.data.push_str(value);
            self.data.push('\n');
            self.has_data = true;
        }
        // Comments (empty field name), `event`, `id`, `retry` and unknown fields: ignored.
        Ok(())
    }

    fn dispatch(&mut self, on_data: &mut impl FnMut(&str) -> Result<()>) -> Result<()> {
        if !std::mem::replace(&mut self.has_data, false) {
            return Ok(());
        }
        let mut data = std::mem::take(&mut self.data);
        if data.ends_with('\n') {
            data.pop();
        }
        on_data(&data)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use crate::error::Error;

    fn decode_chunks(chunks: &[&[u8]]) -> Result<Vec<String>> {
        let mut decoder = SseDecoder::new(Provider::OpenAi, DEFAULT_MAX_EVENT_BYTES);
        let mut out = Vec::new();
        for chunk in chunks {
            decoder.feed(chunk, |d| {
                out.push(d.to_owned());
                Ok(())
            })?;
        }
        Ok(out)
    }

    const STREAM: &str = "event: a\ndata: {\"n\":1}\n\n: keep-alive comment\n\nid: 7\nretry: 10\ndata:{\"n\":2}\n\ndata: line one\ndata: line twö\n\nevent: only-a-name\n\n";

    #[test]
    fn fields_comments_and_multi_line_data() {
        let events = decode_chunks(&[STREAM.as_bytes()]).unwrap();
        assert_eq!(events, ["{\"n\":1}", "{\"n\":2}", "line one\nline twö"]);
    }

    #[test]
    fn any_split_of_the_bytes_gives_the_same_events() {
        let expected = decode_chunks(&[STREAM.as_bytes()]).unwrap();
        let crlf = STREAM.replace('\n', "\r\n");
        let cr = STREAM.replace('\n', "\r");
        for text in [STREAM.to_owned(), crlf, cr, format!("\u{feff}{STREAM}")] {
            let bytes = text.as_bytes();
            for split in 0..=bytes.len() {
                let (a, b) = bytes.split_at(split);
                let events = decode_chunks(&[a, b]).unwrap();
                assert_eq!(events, expected, "split at {split} of {text:?}");
            }
            let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(decode_chunks(&one_by_one).unwrap(), expected);
        }
    }

    #[test]
    fn an_event_without_its_blank_line_is_not_dispatched() {
        let events = decode_chunks(&[b"data: done\n\ndata: cut"]).unwrap();
        assert_eq!(events, ["done"]);
    }

    #[test]
    fn oversized_events_and_invalid_utf8_are_errors() {
        let mut decoder = SseDecoder::new(Provider::Gemini, 16);
        decoder.feed(b"data: 0123456789", |_| Ok(())).unwrap();
        assert_eq!(decoder.pending_bytes(), 16);
        let err = decoder.feed(b"x", |_| Ok(())).unwrap_err();
        assert!(
            matches!(
                err,
                Error::MalformedResponse {
                    provider: "gemini",
                    ..
                }
            ),
            "{err}"
        );
        assert!(err.to_string().contains("16 bytes"), "{err}");

        // Data lines of one event count together.
        let mut decoder = SseDecoder::new(Provider::Gemini, 16);
        let err = decoder
            .feed(b"data: 01234\ndata: 56789\n", |_| Ok(()))
            .unwrap_err();
        assert!(err.to_string().contains("exceeds the limit"), "{err}");

        let err = decode_chunks(&[b"data: \xff\xfe\n\n"]).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    #[test]
    fn errors_from_the_consumer_stop_decoding() {
        let mut decoder = SseDecoder::new(Provider::OpenAi, DEFAULT_MAX_EVENT_BYTES);
        let mut seen = 0;
        let err = decoder
            .feed(b"data: 1\n\ndata: 2\n\ndata: 3\n\n", |d| {
                seen += 1;
                if d == "2" {
                    Err(Error::InvalidInput("stop".into()))
                } else {
                    Ok(())
                }
            })
            .unwrap_err();
        assert!(matches!(err, Error::InvalidInput(_)));
        assert_eq!(seen, 2);
    }
}
