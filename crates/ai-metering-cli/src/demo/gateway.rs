//! The demo's server: the gateway of `ai-metering serve` over the demo database, its models
//! answered by the gateway's built-in mock upstream, so the demo takes the real code path
//! (API keys, estimates, reservations, settlement, streams, quota and wallet headers, the
//! dashboard behind its login) without calling a provider.

use std::net::SocketAddr;

use ai_metering_gateway::GatewayConfig;

use super::accounts::ACCOUNTS;
use crate::error::{CliError, CliResult};

/// The models the demo serves, each priced as the real provider's model.
pub const MODELS: &[(&str, &str)] = &[
    ("gpt-4o-mini", "openai"),
    ("gpt-4o", "openai"),
    ("gpt-4.1-mini", "openai"),
    ("claude-sonnet-4-5", "anthropic"),
    ("claude-haiku-4-5", "anthropic"),
];

/// The pause before each word of a streamed reply: the mock answers over time, as a model
/// does, so a client can hang up in the middle.
pub const WORD_DELAY_MS: u64 = 5;

/// The demo's gateway configuration: one mock upstream per provider (usage is priced as that
/// provider's model), every demo model routed to its provider's mock, listening on `addr`.
///
/// # Errors
/// Only if the configuration written here were invalid (a test builds it).
pub fn config(addr: SocketAddr) -> CliResult<GatewayConfig> {
    let mut toml = format!("[gateway]\nlisten = \"{addr}\"\n");
    for provider in ["openai", "anthropic"] {
        toml.push_str(&format!(
            "[gateway.upstreams.mock-{provider}]\nkind = \"mock\"\nprovider = \"{provider}\"\nword_delay_ms = {WORD_DELAY_MS}\n"
        ));
    }
    toml.push_str("[gateway.models]\n");
    for (model, provider) in MODELS {
        toml.push_str(&format!(
            "\"{model}\" = {{ upstream = \"mock-{provider}\" }}\n"
        ));
    }
    GatewayConfig::from_toml(&toml)
        .map_err(|e| CliError::failure(format!("the demo's gateway configuration: {e}")))
}

/// Refuses an address other than loopback: the demo's API keys are printed for everyone
/// (and in the README), so the demo serves this machine only.
///
/// # Errors
/// A usage error naming `addr`.
pub fn check_loopback(addr: SocketAddr) -> CliResult<()> {
    if addr.ip().is_loopback() {
        return Ok(());
    }
    Err(CliError::usage(format!(
        "refusing to serve the demo on {addr}: its API keys are published (sk-demo-alice...), so the demo listens on a loopback address only (for example --addr 127.0.0.1:8080). To publish a gateway, run `ai-metering serve` with keys from `ai-metering keys create`."
    )))
}

/// The text of `GET /`: what the demo serves and its keys.
pub fn index() -> String {
    let keys: Vec<String> = ACCOUNTS
        .iter()
        .map(|a| format!("  {:<18} {}:{:<8} {}", a.key, a.kind, a.id, a.story))
        .collect();
    let models: Vec<&str> = MODELS.iter().map(|(m, _)| *m).collect();
    format!(
        "ai-metering demo (the gateway of `ai-metering serve`, with a mock upstream)\n\n\
         \x20 GET  /ai-metering/login      the dashboard (sign in with the printed admin token)\n\
         \x20 POST /v1/chat/completions    OpenAI-compatible chat (Authorization: Bearer <key>)\n\
         \x20 POST /v1/embeddings          OpenAI-compatible embeddings\n\
         \x20 GET  /v1/models              the models\n\
         \x20 GET  /metrics                Prometheus metrics\n\n\
         Models: {}\n\nKeys:\n{}\n",
        models.join(", "),
        keys.join("\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_model_is_routed_to_its_providers_mock() {
        let addr: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let config = config(addr).unwrap();
        assert_eq!(config.listen, addr);
        for (model, provider) in MODELS {
            let route = config.route(model).unwrap();
            assert_eq!(route.upstream.provider, *provider);
            assert_eq!(route.model, *model);
            assert_eq!(
                route.upstream.word_delay,
                std::time::Duration::from_millis(WORD_DELAY_MS)
            );
        }
        assert!(config.route("gpt-99").is_none());
    }

    #[test]
    fn only_loopback_is_served() {
        assert!(check_loopback("127.0.0.1:0".parse().unwrap()).is_ok());
        assert!(check_loopback("[::1]:0".parse().unwrap()).is_ok());
        let e = check_loopback("0.0.0.0:8080".parse().unwrap()).unwrap_err();
        assert!(e.to_string().contains("loopback"), "{e}");
    }
}
