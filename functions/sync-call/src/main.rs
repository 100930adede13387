//! The `sync-call` Lambda (SQS batches, partial batch failures): wiring only; delivery
//! lives in `callsync::deliver`.

use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use callsync::entrypoints::sync_call;
use callsync::services::Services;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    callsync::telemetry::init();
    let svc = &Services::from_env().await?;
    run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, Error>(sync_call::handle(svc, event.payload).await)
    }))
    .await
}
