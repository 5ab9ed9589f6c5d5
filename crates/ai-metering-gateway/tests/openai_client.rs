//! The gateway through an OpenAI SDK from the Rust ecosystem (`async-openai`), as an
//! application would call it: only `api_base` and the key change. Chat completions plain and
//! streamed, embeddings, and a refusal at the quota the SDK reports as OpenAI's own error.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use ai_metering_core::keys::{NewApiKey, create_api_key};
use ai_metering_core::plan::{Plan, Subscription};
use ai_metering_core::store::{
    MemoryStore, Page, PlanStore, SubscriptionStore, UsageFilter, UsageStore,
};
use ai_metering_core::{Billable, Metering};
use ai_metering_gateway::{Gateway, GatewayConfig};
use async_openai::Client;
use async_openai::config::OpenAIConfig;
use async_openai::error::OpenAIError;
use async_openai::types::chat::{
    ChatCompletionRequestUserMessage, ChatCompletionStreamOptions, CreateChatCompletionRequestArgs,
};
use async_openai::types::embeddings::CreateEmbeddingRequestArgs;
use futures_util::StreamExt;

#[tokio::test]
async fn an_openai_sdk_calls_the_gateway_like_openai() {
    let config = GatewayConfig::from_toml(
        "[gateway.upstreams.m]\nkind = \"mock\"\n[gateway]\ndefault_upstream = \"m\"\n",
    )
    .unwrap();
    let metering = Metering::new(MemoryStore::new());
    let who = Billable::new("team", "sdk");
    let key = create_api_key(
        metering.store(),
        &NewApiKey::new(who.clone(), "sdk"),
        chrono::Utc::now(),
    )
    .await
    .unwrap();
    // A plan of 30 tokens: room for the three calls below, not a fourth.
    let store = metering.store();
    store
        .upsert_plan(&Plan::new("tiny", "Tiny").with_token_limit(30))
        .await
        .unwrap();
    store
        .insert_subscription(&Subscription::new(
            who.clone(),
            "tiny",
            chrono::Utc::now() - chrono::Duration::days(1),
        ))
        .await
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Gateway::new(metering.clone(), config).router();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let client = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("http://{addr}/v1"))
            .with_api_key(key.secret()),
    );

    let request = |stream: bool| {
        let mut args = CreateChatCompletionRequestArgs::default();
        args.model("gpt-4o-mini")
            .max_completion_tokens(5_u32)
            .messages([ChatCompletionRequestUserMessage::from("Hello!").into()]);
        if stream {
            args.stream_options(ChatCompletionStreamOptions {
                include_usage: Some(true),
                include_obfuscation: None,
            });
        }
        args.build().unwrap()
    };

    // Plain: the SDK parses the answer and its usage.
    let answer = client.chat().create(request(false)).await.unwrap();
    assert_eq!(
        answer.choices[0].message.content.as_deref(),
        Some("ok ok ok ok ok")
    );
    let usage = answer.usage.unwrap();
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (6, 5));

    // Streamed, asking for the usage chunk: the SDK sees the chunks and the usage.
    let mut stream = client.chat().create_stream(request(true)).await.unwrap();
    let (mut text, mut streamed_usage) = (String::new(), None);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        for choice in &chunk.choices {
            text.push_str(choice.delta.content.as_deref().unwrap_or_default());
        }
        if let Some(u) = chunk.usage {
            streamed_usage = Some((u.prompt_tokens, u.completion_tokens));
        }
    }
    assert_eq!(text, "ok ok ok ok ok");
    assert_eq!(streamed_usage, Some((6, 5)));

    // Embeddings.
    let embeddings = client
        .embeddings()
        .create(
            CreateEmbeddingRequestArgs::default()
                .model("text-embedding-3-small")
                .input(["abc", "abcdef"])
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(embeddings.data.len(), 2);
    assert_eq!(embeddings.usage.prompt_tokens, 3);

    let rows = metering
        .store()
        .query_usage(&UsageFilter::for_billable(who.clone()), Page::first(10))
        .await
        .unwrap();
    assert_eq!(rows.len(), 3, "every call was recorded");
    assert!(rows.iter().all(|r| !r.entry.estimated));

    // At the limit (11 + 11 + 3 tokens used, 11 more asked), the SDK gets OpenAI's own
    // error: 429, insufficient_quota.
    match client.chat().create(request(false)).await {
        Err(OpenAIError::ApiError(e)) => {
            assert_eq!(e.status_code.as_u16(), 429);
            assert_eq!(e.api_error.code.as_deref(), Some("insufficient_quota"));
        }
        other => panic!("expected a 429 from the gateway, got {other:?}"),
    }

    // A wrong key: 401 in the shape the SDK parses.
    let stranger = Client::with_config(
        OpenAIConfig::new()
            .with_api_base(format!("http://{addr}/v1"))
            .with_api_key("amk_0000000000000000_0000"),
    );
    match stranger.chat().create(request(false)).await {
        Err(OpenAIError::ApiError(e)) => assert_eq!(e.status_code.as_u16(), 401),
        other => panic!("expected a 401, got {other:?}"),
    }
}
