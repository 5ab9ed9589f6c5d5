//! The streaming reply: server-sent events in OpenAI's chunk format, metered through the
//! reservation.
//!
//! The usage is recorded when the model has produced its last word, before the finish and
//! usage chunks are sent, so a client that has read `data: [DONE]` can rely on the usage
//! being stored. A client that disconnects earlier drops the stream, and with it the
//! [`ReservationGuard`], which releases the reservation: nothing is charged.

use std::collections::VecDeque;
use std::convert::Infallible;

use ai_metering_core::store::Store;
use ai_metering_core::{Reservation, TokenUsage};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::{Value, json};

use super::mock_model::MockReply;
use super::openai::{chunk_json, usage_chunk_json};

/// Holds a reservation; releases it in the background when dropped unsettled.
pub struct ReservationGuard<S: Store>(Option<Reservation<S>>);

impl<S: Store> ReservationGuard<S> {
    /// Guards `reservation`.
    pub fn new(reservation: Reservation<S>) -> Self {
        Self(Some(reservation))
    }

    /// Takes the reservation out, to record it.
    pub fn take(&mut self) -> Option<Reservation<S>> {
        self.0.take()
    }
}

impl<S: Store> Drop for ReservationGuard<S> {
    fn drop(&mut self) {
        let Some(reservation) = self.0.take() else {
            return;
        };
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    if let Err(e) = reservation.release().await {
                        tracing::warn!(error = %e, "could not release a reservation; it will expire");
                    }
                });
            }
            Err(_) => tracing::warn!("no runtime to release a reservation; it will expire"),
        }
    }
}

/// One step of the stream.
enum Step {
    /// Send this chunk.
    Chunk(Value),
    /// Record the usage (sends nothing).
    Record,
    /// Send `[DONE]`.
    Done,
}

struct State<S: Store> {
    steps: VecDeque<Step>,
    guard: ReservationGuard<S>,
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

/// The SSE response for `r`, settling `guard`'s reservation with `usage`.
pub fn sse_response<S: Store>(
    r: StreamReply,
    usage: TokenUsage,
    guard: ReservationGuard<S>,
) -> Response {
    let chunk = |delta: Value, finish: Option<&str>| {
        Step::Chunk(chunk_json(
            &r.id,
            r.created,
            &r.model,
            delta,
            finish,
            r.include_usage,
        ))
    };
    let mut steps = VecDeque::new();
    steps.push_back(chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    ));
    for delta in r.reply.deltas() {
        steps.push_back(chunk(json!({"content": delta}), None));
    }
    steps.push_back(Step::Record);
    steps.push_back(chunk(json!({}), Some(r.reply.finish_reason)));
    if r.include_usage {
        steps.push_back(Step::Chunk(usage_chunk_json(
            &r.id, r.created, &r.model, &r.reply,
        )));
    }
    steps.push_back(Step::Done);
    let state = State {
        steps,
        guard,
        usage,
    };
    let events = stream::unfold(state, |mut state| async move {
        loop {
            match state.steps.pop_front()? {
                Step::Chunk(value) => {
                    let event = Event::default().data(value.to_string());
                    return Some((Ok::<_, Infallible>(event), state));
                }
                Step::Record => {
                    if let Some(reservation) = state.guard.take()
                        && let Err(e) = reservation.record(state.usage, false).await
                    {
                        tracing::error!(error = %e, "could not record the usage of a stream");
                    }
                }
                Step::Done => return Some((Ok(Event::default().data("[DONE]")), state)),
            }
        }
    });
    Sse::new(events).into_response()
}
