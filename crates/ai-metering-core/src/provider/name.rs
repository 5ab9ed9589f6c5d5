//! [`Provider`]: which response format a body or stream follows.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A provider API whose usage format ai-metering understands.
///
/// The variant names the *format*, not the company that runs the model: Azure OpenAI answers
/// in the OpenAI format, Vertex AI's Gemini models in the Gemini format. Claude models served
/// through Vertex AI answer in the Anthropic format, so pick [`Provider::Anthropic`] for them
/// even though the alias `vertex_ai` maps to [`Provider::Gemini`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Provider {
    /// OpenAI Chat Completions and Responses API (also Azure OpenAI).
    OpenAi,
    /// Anthropic Messages API.
    Anthropic,
    /// Google Gemini `generateContent` / `streamGenerateContent` (AI Studio and Vertex AI).
    Gemini,
}

impl Provider {
    /// Every supported provider, in a stable order.
    pub const ALL: [Provider; 3] = [Provider::OpenAi, Provider::Anthropic, Provider::Gemini];

    /// The canonical lowercase name: `"openai"`, `"anthropic"` or `"gemini"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Anthropic => "anthropic",
            Provider::Gemini => "gemini",
        }
    }

    /// Looks a provider up by its canonical name or a common alias, ignoring case, surrounding
    /// spaces, and the difference between `-`, `_` and spaces.
    ///
    /// Aliases: `open_ai`, `azure`, `azure_openai` for OpenAI; `claude` for Anthropic;
    /// `google`, `google_ai`, `google_ai_studio`, `google_genai`, `vertex`, `vertex_ai`,
    /// `vertexai` for Gemini.
    ///
    /// ```
    /// use ai_metering_core::provider::Provider;
    ///
    /// assert_eq!(Provider::from_name("Azure-OpenAI"), Some(Provider::OpenAi));
    /// assert_eq!(Provider::from_name("vertex_ai"), Some(Provider::Gemini));
    /// assert_eq!(Provider::from_name("mistral"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<Provider> {
        let normalised: String = name
            .trim()
            .chars()
            .map(|c| match c {
                '-' | ' ' => '_',
                other => other.to_ascii_lowercase(),
            })
            .collect();
        match normalised.as_str() {
            "openai" | "open_ai" | "azure" | "azure_openai" | "azureopenai" => {
                Some(Provider::OpenAi)
            }
            "anthropic" | "claude" => Some(Provider::Anthropic),
            "gemini" | "google" | "google_ai" | "google_ai_studio" | "google_genai" | "vertex"
            | "vertex_ai" | "vertexai" => Some(Provider::Gemini),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Provider {
    type Err = Error;

    /// Same as [`Provider::from_name`], with an [`Error::InvalidInput`] naming the known
    /// providers when the name is not recognised.
    fn from_str(s: &str) -> Result<Self> {
        Provider::from_name(s).ok_or_else(|| {
            Error::InvalidInput(format!(
                "unknown provider {s:?}: expected openai, anthropic or gemini (or an alias such as azure or vertex_ai)"
            ))
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn canonical_names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(Provider::from_name(p.as_str()), Some(p));
            assert_eq!(p.to_string().parse::<Provider>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
            assert_eq!(serde_json::from_str::<Provider>(&json).unwrap(), p);
        }
    }

    #[test]
    fn aliases_are_case_and_separator_insensitive() {
        for (name, expected) in [
            ("OpenAI", Provider::OpenAi),
            (" azure ", Provider::OpenAi),
            ("AZURE_OPENAI", Provider::OpenAi),
            ("azure-openai", Provider::OpenAi),
            ("Anthropic", Provider::Anthropic),
            ("claude", Provider::Anthropic),
            ("Google", Provider::Gemini),
            ("Vertex AI", Provider::Gemini),
            ("vertex-ai", Provider::Gemini),
            ("google_genai", Provider::Gemini),
        ] {
            assert_eq!(Provider::from_name(name), Some(expected), "{name}");
        }
    }

    #[test]
    fn unknown_names_are_rejected_with_a_typed_error() {
        assert_eq!(Provider::from_name(""), None);
        assert_eq!(Provider::from_name("openai2"), None);
        let err = "mistral".parse::<Provider>().unwrap_err();
        assert!(
            matches!(err, Error::InvalidInput(ref m) if m.contains("mistral")),
            "{err}"
        );
    }
}
