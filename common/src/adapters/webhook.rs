//! Run reports to a webhook (Slack, an e-mail relay, …): one JSON POST, retried on
//! connection failures and 5xx/429 with the shared retry policy.

use std::time::Duration;

use async_trait::async_trait;

use crate::ports::Notifier;
use crate::retry::{RetryAdvice, RetryPolicy, Retryable};

#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    http: reqwest::Client,
    retry: RetryPolicy,
}

impl Default for WebhookNotifier {
    fn default() -> Self {
        Self::new(RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(5),
            deadline: Duration::from_secs(20),
        })
    }
}

#[derive(Debug)]
struct Failure {
    message: String,
    advice: RetryAdvice,
}

impl Retryable for Failure {
    fn retry_advice(&self) -> RetryAdvice {
        self.advice
    }
}

impl WebhookNotifier {
    pub fn new(retry: RetryPolicy) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap_or_default();
        Self { http, retry }
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn send(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        self.retry
            .run(|_| async {
                let answer = self
                    .http
                    .post(url)
                    .json(body)
                    .send()
                    .await
                    .map_err(|e| Failure {
                        // Without the URL: webhook URLs carry their own secret.
                        message: format!("the webhook could not be reached: {}", e.without_url()),
                        advice: RetryAdvice::Backoff,
                    })?;
                let status = answer.status();
                if status.is_success() {
                    return Ok(());
                }
                Err(Failure {
                    message: format!("the webhook answered HTTP {}", status.as_u16()),
                    advice: if status.is_server_error() || status.as_u16() == 429 {
                        RetryAdvice::Backoff
                    } else {
                        RetryAdvice::Never
                    },
                })
            })
            .await
            .map_err(|f| f.message)
    }
}
