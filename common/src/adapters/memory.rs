//! In-memory twins of the stores, for unit tests of the core.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;

use crate::candidate::CandidateDoc;
use crate::ports::{ConfigStore, SecretStore, SecretValue, StoreError};
use crate::values::CandidateSlug;

#[derive(Debug, Default)]
pub struct MemoryConfigStore {
    docs: Mutex<BTreeMap<String, CandidateDoc>>,
}

#[async_trait]
impl ConfigStore for MemoryConfigStore {
    async fn get(&self, slug: &CandidateSlug) -> Result<Option<CandidateDoc>, StoreError> {
        Ok(self.docs.lock().expect("lock").get(slug.as_str()).cloned())
    }

    async fn put(&self, doc: &CandidateDoc) -> Result<(), StoreError> {
        self.docs
            .lock()
            .expect("lock")
            .insert(doc.slug.clone(), doc.clone());
        Ok(())
    }

    async fn list(&self) -> Result<Vec<CandidateSlug>, StoreError> {
        Ok(self
            .docs
            .lock()
            .expect("lock")
            .keys()
            .filter_map(|k| CandidateSlug::parse(k).ok())
            .collect())
    }
}

#[derive(Debug, Default)]
pub struct MemorySecrets {
    values: Mutex<BTreeMap<String, SecretValue>>,
}

impl MemorySecrets {
    pub fn with(self, name: &str, value: &str) -> Self {
        self.values
            .lock()
            .expect("lock")
            .insert(name.to_owned(), SecretValue::new(value));
        self
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get(&self, name: &str) -> Result<SecretValue, StoreError> {
        self.values
            .lock()
            .expect("lock")
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::SecretNotFound(name.to_owned()))
    }
}
