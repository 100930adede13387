//! The sync queues in SQS: messages for `sync-call`, VAN's and every other destination's in
//! a lane of its own, sent ten to a batch, a few batches at once.

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

/// A message with its index in what the caller sent.
type Indexed<'a> = (usize, &'a SyncMessage);

#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: Client,
    calls_url: String,
    deliveries_url: String,
}

impl SqsQueue {
    /// The queues `sync-call` reads: `calls_url` takes VAN's messages (those that name no
    /// destination), `deliveries_url` every configured destination's — two lanes, so that
    /// a worker posting to VAN never waits on a batch that holds a slow partner's sends.
    pub fn new(
        client: Client,
        calls_url: impl Into<String>,
        deliveries_url: impl Into<String>,
    ) -> Self {
        Self {
            client,
            calls_url: calls_url.into(),
            deliveries_url: deliveries_url.into(),
        }
    }

    /// The queue a message goes on.
    fn lane(&self, message: &SyncMessage) -> &str {
        match message.destination {
            None => &self.calls_url,
            Some(_) => &self.deliveries_url,
        }
    }

    /// Send one batch (`(index, message)`, all for one queue); returns the indexes of the
    /// messages SQS did not report as sent.
    async fn send_batch(&self, batch: &[Indexed<'_>], delay: i32) -> Vec<usize> {
        let Some((_, first)) = batch.first() else {
            return Vec::new();
        };
        let entries: Vec<SendMessageBatchRequestEntry> = batch
            .iter()
            .enumerate()
            .filter_map(|(i, (_, m))| {
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
                .queue_url(self.lane(first))
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
                        messages = batch.len(),
                        "SQS batch failed; the sweep will send its messages again"
                    );
                    HashSet::new()
                }
            }
        };
        // Anything not confirmed counts as unsent: a duplicate message is harmless (the
        // worker leases the call), a lost one is not.
        batch
            .iter()
            .enumerate()
            .filter(|(i, _)| !sent.contains(i))
            .map(|(_, (index, _))| *index)
            .collect()
    }

    async fn send_all(&self, messages: &[SyncMessage], delay: i32) -> Vec<usize> {
        let (calls, deliveries): (Vec<Indexed>, Vec<Indexed>) = messages
            .iter()
            .enumerate()
            .partition(|(_, m)| m.destination.is_none());
        // Collected first: a lazy `map` here makes the future not `Send` (rust#100013).
        let batches: Vec<_> = calls
            .chunks(BATCH)
            .chain(deliveries.chunks(BATCH))
            .map(|batch| self.send_batch(batch, delay))
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
