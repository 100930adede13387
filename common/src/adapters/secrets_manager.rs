//! Secrets from AWS Secrets Manager, cached briefly so a warm Lambda does not fetch the
//! same secret on every request, yet picks up a rotation within minutes.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::ports::{SecretStore, SecretValue, StoreError};

#[derive(Debug)]
pub struct SecretsManagerStore {
    client: Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, SecretValue)>>,
}

impl SecretsManagerStore {
    pub const DEFAULT_TTL: Duration = Duration::from_secs(300);

    pub fn new(client: Client, ttl: Duration) -> Self {
        Self {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    async fn get(&self, name: &str) -> Result<SecretValue, StoreError> {
        if let Some((at, value)) = self.cache.lock().await.get(name)
            && at.elapsed() < self.ttl
        {
            return Ok(value.clone());
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception())
                {
                    StoreError::SecretNotFound(name.to_owned())
                } else {
                    StoreError::Unavailable(
                        "Secrets Manager",
                        aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
                    )
                }
            })?;
        let value = out
            .secret_string
            .map(SecretValue::new)
            .ok_or_else(|| StoreError::Corrupt {
                what: format!("secret {name:?}"),
                message: "has no string value (binary secrets are not supported)".into(),
            })?;
        self.cache
            .lock()
            .await
            .insert(name.to_owned(), (Instant::now(), value.clone()));
        Ok(value)
    }

    async fn forget(&self, name: &str) {
        self.cache.lock().await.remove(name);
    }
}
