//! The `validate` Lambda (API Gateway HTTP API): wiring only; the routes live in
//! `callsync::entrypoints::validate`.

use callsync::entrypoints::{http::ApiContext, validate};
use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    callsync::telemetry::init();
    let ctx = &ApiContext::from_env().await?;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(validate::handle(ctx, req).await)
    }))
    .await
}
