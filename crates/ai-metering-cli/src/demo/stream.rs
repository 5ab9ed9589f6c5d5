//! The streaming reply: server-sent events in OpenAI's chunk format, metered through a
//! [`StreamMeter`].
//!
//! The mock sends its reply a word at a time, [`WORD_DELAY`] apart, as a model would. The
//! usage is recorded when the model has produced its last word, before the finish and usage
//! chunks are sent, so a client that has read `data: [DONE]` can rely on the usage being
//! stored. A client that disconnects earlier drops the stream, and with it the
//! `StreamMeter`, which records what was sent (the prompt's estimate and the streamed text,
//! flagged estimated): an abandoned stream is not free.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use ai_metering_core::store::Store;
use ai_metering_core::{StreamMeter, TokenUsage};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{Value, json};

use super::mock_model::MockReply;
use super::openai::{chunk_json, usage_chunk_json};

/// The pause before each word of a streamed reply.
pub const WORD_DELAY: Duration = Duration::from_millis(5);

/// One step of the stream.
enum Step {
    /// Send this chunk.
    Chunk(Value),
    /// Wait, then send this word of the reply.
    Word(Value, String),
    /// Record the usage (sends nothing).
    Record,
    /// Send `[DONE]`.
    Done,
}

struct State<S: Store> {
    steps: VecDeque<Step>,
    meter: Option<StreamMeter<S>>,
    usage: TokenUsage,
}

/// What the stream needs to know about the reply.
pub struct StreamReply {
    /// Completion id.
    pub id: String,
    /// Unix seconds.
    pub created: i64,
    /// Model name as requested.
    pub model: String,
    /// The reply.
    pub reply: MockReply,
    /// Send the final usage chunk.
    pub include_usage: bool,
}

/// The SSE response for `r`, settling `meter`'s reservation with `usage` at the end.
pub fn sse_response<S: Store>(
    r: StreamReply,
    usage: TokenUsage,
    meter: StreamMeter<S>,
) -> Response {
    let chunk = |delta: Value, finish: Option<&str>| {
        chunk_json(&r.id, r.created, &r.model, delta, finish, r.include_usage)
    };
    let mut steps = VecDeque::new();
    steps.push_back(Step::Chunk(chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )));
    for delta in r.reply.deltas() {
        steps.push_back(Step::Word(chunk(json!({"content": delta}), None), delta));
    }
    steps.push_back(Step::Record);
    steps.push_back(Step::Chunk(chunk(json!({}), Some(r.reply.finish_reason))));
    if r.include_usage {
        steps.push_back(Step::Chunk(usage_chunk_json(
            &r.id, r.created, &r.model, &r.reply,
        )));
    }
    steps.push_back(Step::Done);
    let state = State {
        steps,
        meter: Some(meter),
        usage,
    };
    let events = stream::unfold(state, |mut state| async move {
        loop {
            match state.steps.pop_front()? {
                Step::Chunk(value) => {
                    let event = Event::default().data(value.to_string());
                    return Some((Ok::<_, Infallible>(event), state));
                }
                Step::Word(value, word) => {
                    tokio::time::sleep(WORD_DELAY).await;
                    if let Some(meter) = &mut state.meter {
                        meter.add_output_text(&word);
                    }
                    let event = Event::default().data(value.to_string());
                    return Some((Ok(event), state));
                }
                Step::Record => {
                    if let Some(mut meter) = state.meter.take() {
                        meter.set_usage(state.usage);
                        if let Err(e) = meter.finish().await {
                            tracing::error!(error = %e, "could not record the usage of a stream");
                        }
                    }
                }
                Step::Done => return Some((Ok(Event::default().data("[DONE]")), state)),
            }
        }
    });
    Sse::new(events).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::mock_model;
    use ai_metering_core::clock::ManualClock;
    use ai_metering_core::store::{
        CounterStore, MemoryStore, Page, ReportStore, UsageFilter, UsageStore,
    };
    use ai_metering_core::{Billable, Metering, Reservation};
    use chrono::TimeZone;

    fn setup() -> (Metering<MemoryStore>, Billable, MockReply, TokenUsage) {
        let now = chrono::Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 0).unwrap();
        let metering = Metering::builder(MemoryStore::new())
            .clock(ManualClock::new(now))
            .build();
        let reply = mock_model::reply([("user", "hello there")], None);
        let usage = TokenUsage::new(reply.prompt_tokens, reply.completion_tokens).unwrap();
        (metering, Billable::new("user", 1), reply, usage)
    }

    async fn begin(
        metering: &Metering<MemoryStore>,
        billable: &Billable,
        usage: TokenUsage,
    ) -> Reservation<MemoryStore> {
        metering
            .meter()
            .billable(billable.clone())
            .provider("openai", "gpt-4o-mini")
            .estimate(usage)
            .begin()
            .await
            .unwrap()
    }

    fn stream_reply(reply: MockReply, include_usage: bool) -> StreamReply {
        StreamReply {
            id: "chatcmpl-test".into(),
            created: 1,
            model: "gpt-4o-mini".into(),
            reply,
            include_usage,
        }
    }

    async fn reserved(metering: &Metering<MemoryStore>, billable: &Billable) -> u64 {
        let now = metering.now();
        let period = metering.config().period.period_at(now).unwrap();
        let usage = metering
            .store()
            .period_usage(billable, &period, now)
            .await
            .unwrap();
        usage.reserved.tokens
    }

    #[tokio::test]
    async fn a_finished_stream_records_the_usage_and_ends_with_done() {
        let (metering, billable, reply, usage) = setup();
        let reservation = begin(&metering, &billable, usage).await;
        assert_eq!(reserved(&metering, &billable).await, usage.total_tokens());
        let text = reply.text.clone();
        let response = sse_response(
            stream_reply(reply, true),
            usage,
            StreamMeter::manual(reservation),
        );
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        let data: Vec<&str> = body
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .collect();
        assert_eq!(data.last(), Some(&"[DONE]"));
        let chunks: Vec<Value> = data[..data.len() - 1]
            .iter()
            .map(|d| serde_json::from_str(d).unwrap())
            .collect();
        let streamed: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(streamed, text);
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"]["total_tokens"], usage.total_tokens());

        let sums = metering
            .store()
            .sum_usage(&UsageFilter::for_billable(billable.clone()))
            .await
            .unwrap();
        assert_eq!((sums.calls, sums.total_tokens), (1, usage.total_tokens()));
        assert_eq!(reserved(&metering, &billable).await, 0);
    }

    #[tokio::test]
    async fn a_stream_dropped_before_its_end_is_charged_for_what_was_sent() {
        let (metering, billable, reply, usage) = setup();
        let reservation = begin(&metering, &billable, usage).await;
        let response = sse_response(
            stream_reply(reply.clone(), false),
            usage,
            StreamMeter::manual(reservation),
        );
        // The client reads the role chunk and three words, then goes away.
        let mut body = response.into_body().into_data_stream();
        let mut seen = String::new();
        for _ in 0..4 {
            let frame = futures_util::StreamExt::next(&mut body)
                .await
                .unwrap()
                .unwrap();
            seen.push_str(std::str::from_utf8(&frame).unwrap());
        }
        drop(body);
        // The record runs on a spawned task; let it run.
        let mut rows = Vec::new();
        for _ in 0..1_000 {
            rows = metering
                .store()
                .query_usage(&UsageFilter::for_billable(billable.clone()), Page::first(5))
                .await
                .unwrap();
            if !rows.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(rows.len(), 1, "an abandoned stream is charged");
        let row = &rows[0].entry;
        assert!(row.estimated);
        // The input is the reservation's (here exact) estimate; the output is the three
        // words sent, at one token per three bytes.
        let sent: String = reply.deltas().into_iter().take(3).collect();
        assert_eq!(row.usage.input_tokens(), usage.input_tokens());
        assert_eq!(
            row.usage.output_tokens(),
            ai_metering_core::estimate::text_tokens(&sent)
        );
        assert!(row.usage.output_tokens() < usage.output_tokens());
        assert_eq!(reserved(&metering, &billable).await, 0);
    }
}
