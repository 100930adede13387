//! Run reports to a webhook (Slack, an e-mail relay, …): one JSON POST, retried on
//! connection failures and 5xx/429 with the shared retry policy. The report carries
//! presigned links to the CSV exports, so it goes only where [`Egress`] allows: the URL is
//! checked, its host resolved and every address checked at each send, the connection made
//! to exactly those addresses, and no redirect followed.

use std::time::Duration;

use async_trait::async_trait;

use crate::egress::Egress;
use crate::ports::Notifier;
use crate::retry::{RetryAdvice, RetryPolicy, Retryable};

#[derive(Debug, Clone)]
pub struct WebhookNotifier {
    egress: Egress,
    retry: RetryPolicy,
}

impl WebhookNotifier {
    const TIMEOUT: Duration = Duration::from_secs(10);

    pub fn with_egress(egress: Egress) -> Self {
        Self::new(
            egress,
            RetryPolicy {
                max_attempts: 4,
                base_delay: Duration::from_millis(500),
                max_delay: Duration::from_secs(5),
                deadline: Duration::from_secs(20),
            },
        )
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
    pub fn new(egress: Egress, retry: RetryPolicy) -> Self {
        Self { egress, retry }
    }
}

#[async_trait]
impl Notifier for WebhookNotifier {
    async fn send(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        let refused = |e| format!("the webhook URL was not used: it {e}");
        let url = self.egress.check_url(url).map_err(refused)?;
        self.retry
            .run(|_| async {
                // Resolved at every try: the check holds for the address connected to.
                let addrs = self.egress.resolve(&url).await.map_err(|e| Failure {
                    advice: match e {
                        crate::egress::EgressError::Unresolved(_) => RetryAdvice::Backoff,
                        _ => RetryAdvice::Never,
                    },
                    message: refused(e),
                })?;
                let http = self
                    .egress
                    .client(&url, &addrs, Self::TIMEOUT)
                    .map_err(|e| Failure {
                        message: format!("no HTTP client: {e}"),
                        advice: RetryAdvice::Never,
                    })?;
                let answer = http
                    .post(url.clone())
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
                if status.is_redirection() {
                    return Err(Failure {
                        message: format!(
                            "the webhook answered HTTP {} (a redirect, which is not followed): give its final URL",
                            status.as_u16()
                        ),
                        advice: RetryAdvice::Never,
                    });
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
