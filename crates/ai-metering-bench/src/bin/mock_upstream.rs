//! `mock_upstream [--port P]`: the gateway's mock upstream (`ai_metering_gateway::mock`) as
//! its own HTTP server on 127.0.0.1, an OpenAI-compatible `POST /v1/chat/completions` and
//! `POST /v1/embeddings`. Load runs call it directly and through the gateway (an upstream of
//! `kind = "openai"` pointing at it) in the same run, so the difference is what the gateway
//! adds, HTTP hop to the upstream included. Prints `listening on http://ADDR`.

use std::process::ExitCode;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::post;
use serde_json::Value;

#[tokio::main]
async fn main() -> ExitCode {
    let port = match std::env::args().skip_while(|a| a != "--port").nth(1) {
        None => 0,
        Some(p) => match p.parse::<u16>() {
            Ok(p) => p,
            Err(e) => {
                eprintln!("mock_upstream: --port {p}: {e}");
                return ExitCode::FAILURE;
            }
        },
    };
    let app = Router::new()
        .route(
            "/v1/chat/completions",
            post(|body: Bytes| answer(body, false)),
        )
        .route("/v1/embeddings", post(|body: Bytes| answer(body, true)));
    let listener = match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("mock_upstream: cannot listen on 127.0.0.1:{port}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => println!("listening on http://{addr}"),
        Err(e) => {
            eprintln!("mock_upstream: {e}");
            return ExitCode::FAILURE;
        }
    }
    match axum::serve(listener, app).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mock_upstream: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn answer(body: Bytes, embeddings: bool) -> Response {
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        let mut r = Response::new(Body::from("{\"error\":{\"message\":\"not JSON\"}}"));
        *r.status_mut() = StatusCode::BAD_REQUEST;
        return r;
    };
    let answer = if embeddings {
        ai_metering_gateway::mock::embeddings(&request)
    } else {
        ai_metering_gateway::mock::answer(&request)
    };
    answer.map(Body::from)
}
