//! Validation of what callers attach to a usage record: [`FeatureName`] and [`Metadata`].
//!
//! Both checks always run, at construction: a value of these types is valid by definition,
//! including after deserialization. (So the `security.validate_feature_names` and
//! `security.sanitize_metadata` settings have no effect.)
//!
//! ```
//! use ai_metering_core::validate::{FeatureName, Metadata};
//! use serde_json::json;
//!
//! let feature = FeatureName::new("chat.summarize").unwrap();
//! let metadata = Metadata::new(json!({"request_id": "r-1", "api_key": "sk-live-123"})).unwrap();
//! assert_eq!(feature.as_str(), "chat.summarize");
//! assert_eq!(metadata.get("api_key"), Some(&json!("[REDACTED]")));
//! ```

mod feature_name;
mod metadata;

pub use feature_name::FeatureName;
pub use metadata::Metadata;
