//! The ports the core depends on: where candidate documents and secrets are kept, and
//! what time it is. Adapters (DynamoDB, Secrets Manager, in-memory twins) implement them.

use std::fmt;

use async_trait::async_trait;

use crate::candidate::CandidateDoc;
use crate::values::CandidateSlug;

/// A failure of a store, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The service did not answer or refused for now: try again later.
    #[error("{0} is unavailable: {1}")]
    Unavailable(&'static str, String),
    /// What is stored cannot be read back: someone must look at it.
    #[error("{what} is unreadable: {message}")]
    Corrupt { what: String, message: String },
    #[error("secret {0:?} does not exist (create it in Secrets Manager, or fix the name)")]
    SecretNotFound(String),
}

/// Candidate documents, one per slug. Written only after validation.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    async fn get(&self, slug: &CandidateSlug) -> Result<Option<CandidateDoc>, StoreError>;
    async fn put(&self, doc: &CandidateDoc) -> Result<(), StoreError>;
    async fn list(&self) -> Result<Vec<CandidateSlug>, StoreError>;
}

/// A secret's value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Read a JSON secret into `T`, naming the secret (never its content) on failure.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        serde_json::from_str(&self.0).map_err(|e| StoreError::Corrupt {
            what: format!("secret {name:?}"),
            // Only the category and position: serde's message can quote the content.
            message: format!(
                "expected a JSON object with the documented keys ({:?} at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        })
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// Named secrets (Secrets Manager).
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<SecretValue, StoreError>;
}

/// The current time; a port so tests can fix it.
pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_never_show_their_value() {
        let s = SecretValue::new(r#"{"api_key": "hunter2"#);
        assert_eq!(format!("{s:?}"), "SecretValue(***)");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct K {
            api_key: String,
        }
        let err = s.json::<K>("van").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("\"van\""), "{err}");
    }
}
