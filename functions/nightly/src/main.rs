//! The `nightly` Lambda (EventBridge hourly tick, or a manual run event): wiring only; the
//! run lives in `callsync::nightly`.

use callsync::entrypoints::nightly;
use callsync::services::Services;
use lambda_runtime::{Error, LambdaEvent, run, service_fn};
use serde_json::Value;

#[tokio::main]
async fn main() -> Result<(), Error> {
    callsync::telemetry::init();
    let svc = &Services::from_env().await?;
    run(service_fn(move |event: LambdaEvent<Value>| async move {
        // A run too big for one invocation stops short of the timeout and starts its next part.
        let deadline = nightly::deadline(svc, event.context.deadline);
        Ok::<_, Error>(nightly::handle_until(svc, event.payload, deadline).await?)
    }))
    .await
}
