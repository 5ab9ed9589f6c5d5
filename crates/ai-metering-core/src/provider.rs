//! TEMPORARY stub.
/// stub
#[derive(Debug, Clone, Copy)]
pub enum Provider {
    /// x
    OpenAi,
}
impl Provider {
    /// stub
    pub fn from_name(_s: &str) -> Option<Self> {
        Some(Self::OpenAi)
    }
    /// stub
    pub fn as_str(&self) -> &'static str {
        "openai"
    }
}
/// stub
pub fn extract_usage(_p: Provider, _v: &serde_json::Value) -> crate::Result<crate::TokenUsage> {
    Err(crate::Error::InvalidInput("x".into()))
}
