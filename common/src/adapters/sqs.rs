//! The sync queue in SQS: calls for `sync-call`, sent ten to a batch, a few batches at once.

use std::collections::HashSet;

use async_trait::async_trait;
use aws_sdk_sqs::Client;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::StreamExt;

use crate::ports::{CallQueue, StoreError, SyncMessage};

/// SQS's limit on entries in one `SendMessageBatch`.
const BATCH: usize = 10;
/// Batches in flight at once.
const CONCURRENCY: usize = 4;

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    queue_url: String,
}

impl SqsQueue {
    pub fn new(client: Client, queue_url: impl Into<String>) -> Self {
        Self {
            client,
            queue_url: queue_url.into(),
        }
    }

    /// Send one batch; returns the indexes (within `messages`, offset by `first`) of the
    /// messages SQS did not report as sent.
    async fn send_batch(&self, first: usize, messages: &[SyncMessage], delay: i32) -> Vec<usize> {
        let entries: Vec<SendMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let body = serde_json::to_string(m).ok()?;
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body)
                    .set_delay_seconds((delay > 0).then_some(delay))
                    .build()
                    .ok()
            })
            .collect();
        let sent: HashSet<usize> = if entries.is_empty() {
            HashSet::new()
        } else {
            match self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => {
                    for failed in out.failed() {
                        tracing::warn!(
                            code = failed.code(),
                            message = failed.message().unwrap_or_default(),
                            sender_fault = failed.sender_fault(),
                            "SQS refused a sync message; the sweep will send it again"
                        );
                    }
                    out.successful()
                        .iter()
                        .filter_map(|s| s.id().parse().ok())
                        .collect()
                }
                Err(e) => {
                    tracing::warn!(
                        error = %DisplayErrorContext(e),
                        messages = messages.len(),
                        "SQS batch failed; the sweep will send its messages again"
                    );
                    HashSet::new()
                }
            }
        };
        // Anything not confirmed counts as unsent: a duplicate message is harmless (the
        // worker leases the call), a lost one is not.
        (0..messages.len())
            .filter(|i| !sent.contains(i))
            .map(|i| first + i)
            .collect()
    }
}

impl SqsQueue {
    async fn send_all(&self, messages: &[SyncMessage], delay: i32) -> Vec<usize> {
        // Collected first: a lazy `map` here makes the future not `Send` (rust#100013).
        let batches: Vec<_> = messages
            .chunks(BATCH)
            .enumerate()
            .map(|(n, batch)| self.send_batch(n * BATCH, batch, delay))
            .collect();
        let results: Vec<Vec<usize>> = futures::stream::iter(batches)
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut failed: Vec<usize> = results.into_iter().flatten().collect();
        failed.sort_unstable();
        failed
    }
}

#[async_trait]
impl CallQueue for SqsQueue {
    async fn send(&self, messages: &[SyncMessage]) -> Result<Vec<usize>, StoreError> {
        Ok(self.send_all(messages, 0).await)
    }

    async fn send_later(
        &self,
        messages: &[SyncMessage],
        delay: std::time::Duration,
    ) -> Result<Vec<usize>, StoreError> {
        let seconds = crate::ports::queue_delay_secs(delay);
        Ok(self
            .send_all(messages, i32::try_from(seconds).unwrap_or(900))
            .await)
    }
}
