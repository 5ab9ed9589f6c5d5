//! Each request runs in a `quota` span recording the billable, the feature and the
//! decision.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use ai_metering_tower::QuotaLayer;
use axum::Router;
use axum::routing::post;
use common::*;
use tower::ServiceExt;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Metadata, Subscriber};

/// Records the fields of every span named `quota`.
#[derive(Default, Clone)]
struct Spans {
    next: Arc<AtomicU64>,
    fields: Arc<Mutex<HashMap<u64, HashMap<String, String>>>>,
}

struct Fields<'a>(&'a mut HashMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }
}

impl Subscriber for Spans {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, attrs: &Attributes<'_>) -> Id {
        let id = self.next.fetch_add(1, Ordering::SeqCst) + 1;
        if attrs.metadata().name() == "quota" {
            let mut fields = HashMap::new();
            attrs.record(&mut Fields(&mut fields));
            self.fields.lock().unwrap().insert(id, fields);
        }
        Id::from_u64(id)
    }
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(fields) = self.fields.lock().unwrap().get_mut(&span.into_u64()) {
            values.record(&mut Fields(fields));
        }
    }
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, _: &Event<'_>) {}
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

#[tokio::test]
async fn the_quota_span_names_billable_feature_and_decision() {
    let spans = Spans::default();
    let _guard = tracing::subscriber::set_default(spans.clone());
    let (metering, store, _clock) = metering();
    subscribe(&store, &user(1), "basic", 0).await;
    let router = Router::new()
        .route("/chat", post(|| async { "ok" }))
        .layer(QuotaLayer::new(metering).feature("chat"))
        .layer(axum::middleware::from_fn(auth));

    let refused = router.clone().oneshot(req("/chat", Some(1))).await.unwrap();
    assert_eq!(refused.status(), 429);
    let anonymous = router.oneshot(req("/chat", None)).await.unwrap();
    assert_eq!(anonymous.status(), 401);

    let recorded: Vec<HashMap<String, String>> =
        spans.fields.lock().unwrap().values().cloned().collect();
    let find = |decision: &str| {
        recorded
            .iter()
            .find(|f| f.get("decision").map(String::as_str) == Some(decision))
            .cloned()
            .unwrap_or_else(|| panic!("no span with decision {decision}: {recorded:?}"))
    };
    let refused = find("quota_exceeded");
    assert_eq!(refused["billable"], "user:1");
    assert_eq!(refused["feature"], "chat");
    let anonymous = find("no_billable");
    assert!(!anonymous.contains_key("billable"));
}
