//! TEMPORARY stub.
/// stub
#[derive(Debug, Clone)]
pub struct FeatureName(String);
impl FeatureName {
    /// stub
    pub fn new(s: &str) -> crate::Result<Self> {
        Ok(Self(s.into()))
    }
    /// stub
    pub fn as_str(&self) -> &str {
        &self.0
    }
}
/// stub
#[derive(Debug, Clone, Default)]
pub struct Metadata(serde_json::Map<String, serde_json::Value>);
impl Metadata {
    /// stub
    pub fn new(v: serde_json::Value) -> crate::Result<Self> {
        match v {
            serde_json::Value::Object(m) => Ok(Self(m)),
            _ => Err(crate::Error::InvalidMetadata("x".into())),
        }
    }
    /// stub
    pub fn as_map(&self) -> &serde_json::Map<String, serde_json::Value> {
        &self.0
    }
}
