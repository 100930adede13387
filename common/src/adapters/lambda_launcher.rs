//! Starting a nightly run from the API: an asynchronous `Invoke` of the `nightly` function
//! with the manual event, so the request returns while the run takes its minutes.

use async_trait::async_trait;
use aws_sdk_lambda::Client;
use aws_sdk_lambda::error::DisplayErrorContext;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvocationType;

use crate::adapters::env;
use crate::ports::{ManualRun, TickAfter};
use crate::ports::{RunLauncher, StoreError};

const WHAT: &str = "the nightly function";

/// Lambda's answer to an accepted `Event` invocation.
const ACCEPTED: i32 = 202;

#[derive(Debug, Clone)]
pub struct LambdaLauncher {
    client: Client,
    function: String,
}

impl LambdaLauncher {
    /// `function`: the `nightly` function's name or ARN.
    pub fn new(client: Client, function: String) -> Self {
        Self { client, function }
    }
}

#[async_trait]
impl RunLauncher for LambdaLauncher {
    async fn start(&self, run: &ManualRun) -> Result<(), StoreError> {
        self.invoke(run).await
    }

    async fn continue_tick(&self, after: &TickAfter) -> Result<(), StoreError> {
        self.invoke(after).await
    }
}

impl LambdaLauncher {
    /// An asynchronous invocation of the nightly function with `event`.
    async fn invoke(&self, event: &impl serde::Serialize) -> Result<(), StoreError> {
        let payload = serde_json::to_vec(event).map_err(|e| {
            StoreError::Unavailable(WHAT, format!("the event cannot be encoded: {e}"))
        })?;
        let out = self
            .client
            .invoke()
            .function_name(&self.function)
            .invocation_type(InvocationType::Event)
            .payload(Blob::new(payload))
            .send()
            .await
            .map_err(|e| {
                StoreError::Unavailable(
                    WHAT,
                    format!(
                        "invoking {} failed: {}",
                        self.function,
                        DisplayErrorContext(e)
                    ),
                )
            })?;
        match out.status_code() {
            ACCEPTED => Ok(()),
            status => Err(StoreError::Unavailable(
                WHAT,
                format!(
                    "Lambda answered {status} to the asynchronous invocation of {} (expected 202)",
                    self.function
                ),
            )),
        }
    }
}

/// The launcher of a function that has no `nightly` function to invoke (`sync-call`, or
/// a local run without it): every start is refused, saying why.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLauncher;

#[async_trait]
impl RunLauncher for NoLauncher {
    async fn start(&self, _run: &ManualRun) -> Result<(), StoreError> {
        Self::refuse()
    }

    async fn continue_tick(&self, _after: &TickAfter) -> Result<(), StoreError> {
        Self::refuse()
    }
}

impl NoLauncher {
    fn refuse() -> Result<(), StoreError> {
        Err(StoreError::Unavailable(
            WHAT,
            format!(
                "{} is not set in this function's environment: the deploy template sets it for the status and nightly functions; locally, `make dev-up` writes it to .env.local",
                env::NIGHTLY_FUNCTION
            ),
        ))
    }
}
