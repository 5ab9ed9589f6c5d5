//! The gateway's configuration: the `[gateway]` table of `ai-metering.toml`.
//!
//! ```toml
//! [gateway]
//! listen = "127.0.0.1:4000"
//! default_upstream = "openai"        # models not listed below go here (optional)
//! cache_ttl_secs = 5                 # keys and entitlements kept this long (0: none)
//!
//! [gateway.upstreams.openai]
//! base_url = "https://api.openai.com/v1"
//! api_key_env = "OPENAI_API_KEY"     # the upstream's key comes from the environment
//!
//! [gateway.upstreams.anthropic]
//! kind = "anthropic"                 # "openai" (the default), "anthropic", "gemini", "mock"
//! base_url = "https://api.anthropic.com/v1"
//! api_key_env = "ANTHROPIC_API_KEY"
//!
//! [gateway.upstreams.google]
//! kind = "gemini"                    # Gemini's own API (x-goog-api-key)
//! base_url = "https://generativelanguage.googleapis.com/v1beta"
//! api_key_env = "GEMINI_API_KEY"
//!
//! [gateway.upstreams.local]          # any OpenAI-compatible server (vLLM, Ollama, ...)
//! base_url = "http://127.0.0.1:8000/v1"
//! provider = "vllm"                  # the provider name usage is recorded and priced under
//!
//! [gateway.upstreams.mock]          # answered inside the gateway: demos and load tests
//! kind = "mock"
//! word_delay_ms = 5                  # its streams send a word every 5 ms (default 0)
//!
//! [gateway.models]
//! "gpt-4o-mini" = { upstream = "openai" }
//! "fast" = { upstream = "openai", model = "gpt-4o-mini" }   # an alias
//! ```
//!
//! API keys never come from the file: an upstream names the environment variable that holds
//! its key. Every error names its field and, when the file has one, its line.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

/// The default listen address.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:4000";
/// How long an upstream call may take by default, streams included.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(600);
/// How long keys and entitlements are cached by default.
pub const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(5);

/// The gateway's configuration, checked: every route names a known upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// Where the gateway listens.
    pub listen: SocketAddr,
    /// Upstreams by name.
    pub upstreams: BTreeMap<String, Upstream>,
    /// Model routes by the model name clients send.
    pub models: BTreeMap<String, ModelRoute>,
    /// Where a model that is not listed goes, under its own name; `None` refuses it.
    pub default_upstream: Option<String>,
    /// How long an authenticated key and its billable's entitlement are kept
    /// (`cache_ttl_secs`, [`DEFAULT_CACHE_TTL`] by default; zero keeps nothing): a key revoked
    /// or a plan changed elsewhere takes effect here that much later. Limits are enforced by
    /// the store whatever the cache holds.
    pub cache_ttl: Duration,
}

/// The API an upstream speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpstreamKind {
    /// OpenAI's (Chat Completions and Responses), also any OpenAI-compatible server.
    OpenAi,
    /// Anthropic's Messages API.
    Anthropic,
    /// Google's Gemini API (`models/{model}:generateContent` and
    /// `:streamGenerateContent`), called with `x-goog-api-key`.
    Gemini,
    /// A mock of OpenAI's Chat Completions answered inside the gateway, for demos and load
    /// tests: deterministic replies whose usage is the request's (see [`crate::mock`]).
    Mock,
}

impl UpstreamKind {
    /// The name in the configuration file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Mock => "mock",
        }
    }
}

/// An upstream provider API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Upstream {
    /// The API it speaks (`kind = "openai"`, the default, `"anthropic"`, `"gemini"` or
    /// `"mock"`).
    pub kind: UpstreamKind,
    /// The base URL the API paths are appended to (`https://api.openai.com/v1`); empty for
    /// the mock.
    pub base_url: String,
    /// The environment variable holding the upstream's API key, sent as a bearer token.
    pub api_key_env: Option<String>,
    /// The provider name usage is recorded and priced under (default: the kind's name).
    pub provider: String,
    /// How long a call may take, streams included.
    pub timeout: Duration,
    /// For the mock: the pause before each streamed word (`word_delay_ms`), so that its
    /// streams arrive over time as a model's do (demos, disconnect tests). Zero elsewhere.
    pub word_delay: Duration,
}

/// Where a model goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelRoute {
    /// The upstream's name.
    pub upstream: String,
    /// The model name sent upstream (the alias's target); `None` for the client's name.
    pub model: Option<String>,
}

/// A route resolved for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    /// The upstream's name.
    pub upstream_name: &'a str,
    /// The upstream.
    pub upstream: &'a Upstream,
    /// The model name to send upstream.
    pub model: &'a str,
}

impl GatewayConfig {
    /// Reads the `[gateway]` table of a TOML document (other tables are ignored).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the field and line of the first problem.
    ///
    /// ```
    /// use ai_metering_gateway::GatewayConfig;
    /// let config = GatewayConfig::from_toml(r#"
    /// [gateway.upstreams.openai]
    /// base_url = "https://api.openai.com/v1"
    /// [gateway.models]
    /// "fast" = { upstream = "openai", model = "gpt-4o-mini" }
    /// "#).unwrap();
    /// assert_eq!(config.route("fast").unwrap().model, "gpt-4o-mini");
    /// assert!(config.route("gpt-4o").is_none());
    ///
    /// let err = GatewayConfig::from_toml(r#"
    /// [gateway.models]
    /// "fast" = { upstream = "nowhere" }
    /// "#).unwrap_err();
    /// assert_eq!(err.to_string(), "line 3: gateway.models.fast.upstream: no upstream named \"nowhere\" (known: none)");
    /// ```
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let file: File = toml::from_str(text).map_err(|e| ConfigError {
            line: e.span().map(|s| line_of(text, &s)),
            field: None,
            message: e.message().to_owned(),
        })?;
        let raw = file.gateway.unwrap_or_default();
        let at = |span: Range<usize>, field: String, message: String| ConfigError {
            line: Some(line_of(text, &span)),
            field: Some(field),
            message,
        };
        let listen = match raw.listen {
            None => DEFAULT_LISTEN
                .parse()
                .map_err(|_| ConfigError::plain("the default listen address is invalid"))?,
            Some(l) => l.get_ref().parse().map_err(|e| {
                at(
                    l.span(),
                    "gateway.listen".into(),
                    format!("{:?} is not a HOST:PORT address: {e}", l.get_ref()),
                )
            })?,
        };
        let mut upstreams = BTreeMap::new();
        for (name, u) in raw.upstreams {
            let field = |f: &str| format!("gateway.upstreams.{name}.{f}");
            let kind = match u.kind.as_ref().map(|k| k.get_ref().as_str()) {
                None | Some("openai") => UpstreamKind::OpenAi,
                Some("anthropic") => UpstreamKind::Anthropic,
                Some("gemini") => UpstreamKind::Gemini,
                Some("mock") => UpstreamKind::Mock,
                Some(other) => {
                    let span = u.kind.as_ref().map_or(0..0, Spanned::span);
                    return Err(at(
                        span,
                        field("kind"),
                        format!(
                            "{other:?} is not an upstream kind (accepted: openai, anthropic, gemini, mock)"
                        ),
                    ));
                }
            };
            let url = match (&u.base_url, kind) {
                (None, UpstreamKind::Mock) => String::new(),
                (None, _) => {
                    return Err(ConfigError {
                        line: None,
                        field: Some(field("base_url")),
                        message: "is required (the upstream's API root, such as https://api.openai.com/v1)".into(),
                    });
                }
                (Some(url), _) => {
                    let text = url.get_ref().trim_end_matches('/');
                    if !(text.starts_with("http://") || text.starts_with("https://"))
                        || text.len() < 8
                    {
                        return Err(at(
                            url.span(),
                            field("base_url"),
                            format!("{:?} is not an http(s) URL", url.get_ref()),
                        ));
                    }
                    text.to_owned()
                }
            };
            if let Some(env) = &u.api_key_env
                && (env.get_ref().is_empty()
                    || !env
                        .get_ref()
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            {
                return Err(at(
                    env.span(),
                    field("api_key_env"),
                    format!(
                        "{:?} is not an environment variable name (the key itself never goes in the file)",
                        env.get_ref()
                    ),
                ));
            }
            let word_delay = match (&u.word_delay_ms, kind) {
                (None, _) => Duration::ZERO,
                (Some(ms), UpstreamKind::Mock) if *ms.get_ref() <= 1_000 => {
                    Duration::from_millis(*ms.get_ref())
                }
                (Some(ms), UpstreamKind::Mock) => {
                    return Err(at(
                        ms.span(),
                        field("word_delay_ms"),
                        "must be at most 1000".into(),
                    ));
                }
                (Some(ms), _) => {
                    return Err(at(
                        ms.span(),
                        field("word_delay_ms"),
                        "applies to upstreams of kind \"mock\" only".into(),
                    ));
                }
            };
            if u.timeout_secs.as_ref().is_some_and(|t| *t.get_ref() == 0) {
                let t = u.timeout_secs.as_ref().map_or(0..0, Spanned::span);
                return Err(at(t, field("timeout_secs"), "must be at least 1".into()));
            }
            upstreams.insert(
                name.clone(),
                Upstream {
                    kind,
                    base_url: url,
                    api_key_env: u.api_key_env.map(Spanned::into_inner),
                    provider: u.provider.unwrap_or_else(|| {
                        match kind {
                            UpstreamKind::Anthropic => "anthropic",
                            UpstreamKind::Gemini => "gemini",
                            UpstreamKind::OpenAi | UpstreamKind::Mock => "openai",
                        }
                        .to_owned()
                    }),
                    timeout: u
                        .timeout_secs
                        .map_or(DEFAULT_TIMEOUT, |t| Duration::from_secs(t.into_inner())),
                    word_delay,
                },
            );
        }
        let unknown = |name: &str| {
            let known: Vec<&str> = upstreams.keys().map(String::as_str).collect();
            format!(
                "no upstream named {name:?} (known: {})",
                if known.is_empty() {
                    "none".to_owned()
                } else {
                    known.join(", ")
                }
            )
        };
        let mut models = BTreeMap::new();
        for (name, m) in raw.models {
            if !upstreams.contains_key(m.upstream.get_ref()) {
                return Err(at(
                    m.upstream.span(),
                    format!("gateway.models.{name}.upstream"),
                    unknown(m.upstream.get_ref()),
                ));
            }
            models.insert(
                name,
                ModelRoute {
                    upstream: m.upstream.into_inner(),
                    model: m.model,
                },
            );
        }
        let default_upstream = match raw.default_upstream {
            Some(d) if !upstreams.contains_key(d.get_ref()) => {
                return Err(at(
                    d.span(),
                    "gateway.default_upstream".into(),
                    unknown(d.get_ref()),
                ));
            }
            d => d.map(Spanned::into_inner),
        };
        let cache_ttl = match raw.cache_ttl_secs {
            None => DEFAULT_CACHE_TTL,
            Some(t) if *t.get_ref() > 3_600 => {
                return Err(at(
                    t.span(),
                    "gateway.cache_ttl_secs".into(),
                    "must be at most 3600 (a revoked key must stop working within the hour)".into(),
                ));
            }
            Some(t) => Duration::from_secs(t.into_inner()),
        };
        Ok(Self {
            listen,
            upstreams,
            models,
            default_upstream,
            cache_ttl,
        })
    }

    /// Where `model` goes: its route, else the default upstream under its own name.
    pub fn route<'a>(&'a self, model: &'a str) -> Option<Route<'a>> {
        let (upstream_name, target) = match self.models.get(model) {
            Some(r) => (r.upstream.as_str(), r.model.as_deref().unwrap_or(model)),
            None => (self.default_upstream.as_deref()?, model),
        };
        let upstream = self.upstreams.get(upstream_name)?;
        Some(Route {
            upstream_name,
            upstream,
            model: target,
        })
    }

    /// The environment variables the upstreams name that are not set: a gateway started
    /// without them would send its calls unauthenticated.
    pub fn missing_keys(&self, env: impl Fn(&str) -> Option<String>) -> Vec<String> {
        self.upstreams
            .iter()
            .filter_map(|(name, u)| {
                let var = u.api_key_env.as_deref()?;
                env(var)
                    .is_none()
                    .then(|| format!("gateway.upstreams.{name}.api_key_env: {var} is not set"))
            })
            .collect()
    }
}

/// A configuration that cannot be used: the field, the line, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The line (1-based) of the offending text, when the file has it.
    pub line: Option<usize>,
    /// The field, as a dotted path.
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

impl ConfigError {
    fn plain(message: &str) -> Self {
        Self {
            line: None,
            field: None,
            message: message.to_owned(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "line {line}: ")?;
        }
        if let Some(field) = &self.field {
            write!(f, "{field}: ")?;
        }
        f.write_str(self.message.trim_end())
    }
}

impl std::error::Error for ConfigError {}

/// The 1-based line where `span` starts.
fn line_of(text: &str, span: &Range<usize>) -> usize {
    text.get(..span.start).map_or(1, |before| {
        before.bytes().filter(|b| *b == b'\n').count() + 1
    })
}

#[derive(Deserialize)]
struct File {
    gateway: Option<RawGateway>,
}

#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawGateway {
    listen: Option<Spanned<String>>,
    cache_ttl_secs: Option<Spanned<u64>>,
    default_upstream: Option<Spanned<String>>,
    #[serde(default)]
    upstreams: BTreeMap<String, RawUpstream>,
    #[serde(default)]
    models: BTreeMap<String, RawRoute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUpstream {
    kind: Option<Spanned<String>>,
    base_url: Option<Spanned<String>>,
    api_key_env: Option<Spanned<String>>,
    provider: Option<String>,
    timeout_secs: Option<Spanned<u64>>,
    word_delay_ms: Option<Spanned<u64>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    upstream: Spanned<String>,
    model: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_file_routes_aliases_listed_models_and_the_default() {
        let c = GatewayConfig::from_toml(
            r#"
[database]
url = "sqlite://x.db"

[gateway]
listen = "0.0.0.0:8080"
default_upstream = "local"

[gateway.upstreams.openai]
base_url = "https://api.openai.com/v1/"
api_key_env = "OPENAI_API_KEY"
timeout_secs = 30

[gateway.upstreams.local]
base_url = "http://127.0.0.1:8000/v1"
provider = "vllm"

[gateway.models]
"gpt-4o-mini" = { upstream = "openai" }
"fast" = { upstream = "openai", model = "gpt-4o-mini" }
"#,
        )
        .unwrap();
        assert_eq!(c.listen.port(), 8080);
        let fast = c.route("fast").unwrap();
        assert_eq!((fast.upstream_name, fast.model), ("openai", "gpt-4o-mini"));
        assert_eq!(fast.upstream.base_url, "https://api.openai.com/v1");
        assert_eq!(fast.upstream.timeout, Duration::from_secs(30));
        let other = c.route("llama-3").unwrap();
        assert_eq!((other.upstream_name, other.model), ("local", "llama-3"));
        assert_eq!(other.upstream.provider, "vllm");
        assert_eq!(other.upstream.kind, UpstreamKind::OpenAi);
        assert_eq!(other.upstream.timeout, DEFAULT_TIMEOUT);
        assert_eq!(
            c.missing_keys(|_| None),
            vec!["gateway.upstreams.openai.api_key_env: OPENAI_API_KEY is not set"]
        );
        assert!(c.missing_keys(|_| Some("k".into())).is_empty());
    }

    #[test]
    fn no_gateway_table_means_defaults_and_no_routes() {
        let c = GatewayConfig::from_toml("[database]\nurl = \"sqlite://x.db\"\n").unwrap();
        assert_eq!(c.listen.to_string(), DEFAULT_LISTEN);
        assert!(c.route("gpt-4o").is_none());
    }

    #[test]
    fn errors_name_the_line_and_the_field() {
        let cases = [
            (
                "[gateway]\nlisten = \"nowhere\"\n",
                "line 2: gateway.listen: \"nowhere\" is not a HOST:PORT address",
            ),
            (
                "[gateway.upstreams.a]\nbase_url = \"ftp://x\"\n",
                "line 2: gateway.upstreams.a.base_url: \"ftp://x\" is not an http(s) URL",
            ),
            (
                "[gateway.upstreams.a]\nbase_url = \"https://x.io\"\napi_key_env = \"sk-live-123\"\n",
                "line 3: gateway.upstreams.a.api_key_env: \"sk-live-123\" is not an environment variable name",
            ),
            (
                "[gateway.upstreams.a]\nbase_url = \"https://x.io\"\ntimeout_secs = 0\n",
                "line 3: gateway.upstreams.a.timeout_secs: must be at least 1",
            ),
            (
                "[gateway.upstreams.a]\nbase_url = \"https://x.io\"\n\n[gateway]\ndefault_upstream = \"b\"\n",
                "line 5: gateway.default_upstream: no upstream named \"b\" (known: a)",
            ),
            (
                "[gateway.upstreams.a]\nkind = \"bedrock\"\nbase_url = \"https://x.io\"\n",
                "line 2: gateway.upstreams.a.kind: \"bedrock\" is not an upstream kind (accepted: openai, anthropic, gemini, mock)",
            ),
            (
                "[gateway.upstreams.a]\napi_key_env = \"K\"\n",
                "gateway.upstreams.a.base_url: is required",
            ),
            (
                "[gateway.upstreams.a]\nbase_url = \"https://x.io\"\napi_key = \"sk-1\"\n",
                "line 3: unknown field `api_key`",
            ),
            ("[gateway\n", "line 1: "),
        ];
        for (text, expected) in cases {
            let err = GatewayConfig::from_toml(text).unwrap_err().to_string();
            assert!(
                err.starts_with(expected),
                "{text:?}\n  gave {err}\n  want {expected}"
            );
        }
    }

    #[test]
    fn only_the_mock_paces_its_words() {
        let c =
            GatewayConfig::from_toml("[gateway.upstreams.m]\nkind = \"mock\"\nword_delay_ms = 5\n")
                .unwrap();
        assert_eq!(c.upstreams["m"].word_delay, Duration::from_millis(5));
        let e = GatewayConfig::from_toml(
            "[gateway.upstreams.o]\nbase_url = \"http://x:1/v1\"\nword_delay_ms = 5\n",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: gateway.upstreams.o.word_delay_ms: applies to upstreams of kind \"mock\" only"
        );
        let e = GatewayConfig::from_toml(
            "[gateway.upstreams.m]\nkind = \"mock\"\nword_delay_ms = 5000\n",
        )
        .unwrap_err();
        assert!(e.to_string().contains("at most 1000"), "{e}");
    }

    #[test]
    fn the_cache_ttl_defaults_to_5_seconds_and_is_bounded() {
        let c = GatewayConfig::from_toml("[gateway]\n").unwrap();
        assert_eq!(c.cache_ttl, DEFAULT_CACHE_TTL);
        let c = GatewayConfig::from_toml("[gateway]\ncache_ttl_secs = 0\n").unwrap();
        assert_eq!(c.cache_ttl, Duration::ZERO);
        let e = GatewayConfig::from_toml("[gateway]\ncache_ttl_secs = 86400\n").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("line 2: gateway.cache_ttl_secs: must be at most 3600"),
            "{e}"
        );
    }
}
