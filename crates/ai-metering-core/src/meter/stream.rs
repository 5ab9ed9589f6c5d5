//! [`StreamMeter`]: meters a streamed response, and records what was streamed when the
//! stream is dropped before its end.

use crate::error::{Error, Result};
use crate::estimate::tokens_for_bytes;
use crate::provider::{Provider, UsageAccumulator};
use crate::store::Store;
use crate::usage::{MAX_TOKENS_PER_CALL, TokenUsage};

use super::reservation::{RecordOutcome, Reservation};

/// Meters one streamed response against its [`Reservation`].
///
/// Feed it the stream as it passes through ([`push_bytes`](Self::push_bytes) for raw
/// server-sent events in the provider's format, or [`add_output_text`](Self::add_output_text)
/// and [`set_usage`](Self::set_usage) when the caller reads the stream itself), then call
/// [`finish`](Self::finish) at its end.
///
/// A stream that ends (or is dropped, because the client went away) before the provider
/// sent its usage is not free: what is known is recorded, flagged `estimated`. The input is
/// the provider's own figure when it sent one (Anthropic does, first) or else the
/// reservation's estimate of the prompt; the output is the provider's running figure or the
/// text streamed so far ([`crate::estimate::text_tokens`]), whichever is larger. Dropped, it
/// records in the background; with nothing known at all, it releases the reservation.
///
/// ```
/// use ai_metering_core::{Billable, Metering, StreamMeter, TokenUsage, store::MemoryStore};
/// use ai_metering_core::provider::Provider;
///
/// # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
/// let metering = Metering::new(MemoryStore::new());
/// let reservation = metering
///     .meter()
///     .billable(Billable::new("user", 7))
///     .provider("openai", "gpt-4o-mini")
///     .estimate(TokenUsage::new(20, 100).unwrap())
///     .begin()
///     .await
///     .unwrap();
/// let mut stream = StreamMeter::new(reservation, Provider::OpenAi);
/// stream.push_bytes(b"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n").unwrap();
/// stream.push_bytes(b"data: {\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":3}}\n\n").unwrap();
/// let outcome = stream.finish().await.unwrap();
/// assert_eq!(outcome.record.entry.usage.total_tokens(), 15);
/// assert!(!outcome.record.entry.estimated);
/// # });
/// ```
pub struct StreamMeter<S: Store> {
    reservation: Option<Reservation<S>>,
    accumulator: Option<UsageAccumulator>,
    text_bytes: u64,
    usage: Option<TokenUsage>,
    failure: Option<String>,
}

impl<S: Store> std::fmt::Debug for StreamMeter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamMeter")
            .field("reservation", &self.reservation)
            .field("usage", &self.usage)
            .field("text_bytes", &self.text_bytes)
            .finish_non_exhaustive()
    }
}

impl<S: Store> StreamMeter<S> {
    /// Meters a stream in `provider`'s event format.
    pub fn new(reservation: Reservation<S>, provider: Provider) -> Self {
        Self {
            reservation: Some(reservation),
            accumulator: Some(UsageAccumulator::new(provider)),
            text_bytes: 0,
            usage: None,
            failure: None,
        }
    }

    /// Meters a stream the caller reads itself: report its text with
    /// [`add_output_text`](Self::add_output_text) and its usage with
    /// [`set_usage`](Self::set_usage).
    pub fn manual(reservation: Reservation<S>) -> Self {
        Self {
            reservation: Some(reservation),
            accumulator: None,
            text_bytes: 0,
            usage: None,
            failure: None,
        }
    }

    /// Feeds raw bytes of the provider's server-sent events.
    ///
    /// # Errors
    /// As [`UsageAccumulator::push_bytes`]; the stream is then recorded from what was seen
    /// before the error, flagged estimated.
    pub fn push_bytes(&mut self, chunk: &[u8]) -> Result<()> {
        let Some(acc) = &mut self.accumulator else {
            return Err(Error::InvalidInput(
                "a manual StreamMeter takes text and usage, not bytes".into(),
            ));
        };
        acc.push_bytes(chunk)
            .inspect_err(|e| self.failure = Some(e.to_string()))
    }

    /// Feeds one parsed event of the provider's stream.
    ///
    /// # Errors
    /// As [`UsageAccumulator::push_event`].
    pub fn push_event(&mut self, event: &serde_json::Value) -> Result<()> {
        let Some(acc) = &mut self.accumulator else {
            return Err(Error::InvalidInput(
                "a manual StreamMeter takes text and usage, not events".into(),
            ));
        };
        acc.push_event(event)
            .inspect_err(|e| self.failure = Some(e.to_string()))
    }

    /// Counts text sent to the client, for the estimate of a stream cut short.
    pub fn add_output_text(&mut self, text: &str) {
        self.text_bytes = self.text_bytes.saturating_add(text.len() as u64);
    }

    /// The stream's final usage, as its provider reported it.
    pub fn set_usage(&mut self, usage: TokenUsage) {
        self.usage = Some(usage);
    }

    /// The usage known so far, and whether it is an estimate (no final usage yet).
    pub fn usage_so_far(&self) -> (TokenUsage, bool) {
        if let Some(usage) = self.usage {
            return (usage, false);
        }
        if let Some(acc) = &self.accumulator
            && acc.is_complete()
            && let Some(usage) = acc.usage()
        {
            return (usage, false);
        }
        let latest = self.accumulator.as_ref().and_then(UsageAccumulator::usage);
        let prompt = self
            .reservation
            .as_ref()
            .and_then(Reservation::estimate_usage)
            .map_or(0, |u| u.input_tokens());
        let input = latest.map_or(prompt, |u| u.input_tokens().max(prompt));
        let text = self.text_bytes.saturating_add(
            self.accumulator
                .as_ref()
                .map_or(0, UsageAccumulator::output_text_bytes),
        );
        let output = latest
            .map_or(0, |u| u.output_tokens())
            .max(tokens_for_bytes(text));
        let usage = TokenUsage::new(
            input.min(MAX_TOKENS_PER_CALL),
            output.min(MAX_TOKENS_PER_CALL),
        )
        .unwrap_or_default();
        (usage, true)
    }

    /// Records the stream's usage: its final usage, or (when the provider never sent one)
    /// the estimate of [`usage_so_far`](Self::usage_so_far), flagged estimated.
    ///
    /// # Errors
    /// [`Error::NoUsage`] when nothing at all is known (the reservation is released); the
    /// errors of [`Reservation::record`].
    pub async fn finish(mut self) -> Result<RecordOutcome> {
        let (usage, estimated) = self.usage_so_far();
        let Some(reservation) = self.reservation.take() else {
            return Err(Error::InvalidInput(
                "the stream was already recorded".into(),
            ));
        };
        if usage.total_tokens() == 0 {
            reservation.give_back().await;
            return Err(Error::NoUsage {
                provider: "stream",
                reason: self
                    .failure
                    .take()
                    .unwrap_or_else(|| "the stream ended before any usage or text".into()),
            });
        }
        if estimated {
            tracing::warn!(target: "ai_metering", billable = %reservation.billable(), reason = self.failure.as_deref().unwrap_or("no usage event"), "the stream ended without its usage; recording an estimate");
        }
        reservation.record(usage, estimated).await
    }
}

impl<S: Store> Drop for StreamMeter<S> {
    fn drop(&mut self) {
        // Read before the reservation is taken: its estimate is the prompt's size.
        let (usage, estimated) = self.usage_so_far();
        let Some(reservation) = self.reservation.take() else {
            return;
        };
        if usage.total_tokens() == 0 {
            // Nothing was streamed: the reservation's own guard releases it.
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(target: "ai_metering", billable = %reservation.billable(), "a stream was dropped outside a runtime; its usage is not recorded");
            return;
        };
        runtime.spawn(async move {
            let billable = reservation.billable().clone();
            if let Err(error) = reservation.record(usage, estimated).await {
                tracing::error!(target: "ai_metering", %billable, %error, "could not record the usage of a dropped stream");
            }
        });
    }
}
