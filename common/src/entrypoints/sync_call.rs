//! The `sync-call` function's event: an SQS batch of [`SyncMessage`]s. Answers with the
//! messages to deliver again (partial batch failure); every other message is done.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};

use crate::deliver::{self, Outcome};
use crate::ports::SyncMessage;
use crate::services::Services;

pub async fn handle(svc: &Services, event: SqsEvent) -> SqsBatchResponse {
    let mut failures = Vec::new();
    let mut messages = Vec::new();
    let mut ids = Vec::new();
    for record in event.records {
        let id = record.message_id.unwrap_or_default();
        let body = record.body.unwrap_or_default();
        match serde_json::from_str::<SyncMessage>(&body) {
            Ok(m) => {
                messages.push(m);
                ids.push(id);
            }
            Err(e) => {
                // It can never succeed: after the queue's receive limit it rests in the
                // dead-letter queue, where the alarm shows it.
                tracing::error!(message_id = %id, error = %e, "not a sync message (expected {{candidate, date, call_id}})");
                failures.push(id);
            }
        }
    }
    let outcomes = deliver::deliver_batch(svc, &messages).await;
    for (id, outcome) in ids.into_iter().zip(outcomes) {
        if outcome == Outcome::Retry {
            failures.push(id);
        }
    }
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = failures
        .into_iter()
        .map(|id| {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            f
        })
        .collect();
    response
}
