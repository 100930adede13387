//! The `status` Lambda (API Gateway HTTP API): wiring only; the routes live in
//! `callsync::entrypoints::status`.

use callsync::adapters::env;
use callsync::entrypoints::{http::ApiContext, status};
use callsync::services::Services;
use lambda_http::{Error, Request, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), Error> {
    callsync::telemetry::init();
    let aws = env::aws().await;
    let ctx = &ApiContext::build(&aws, env::Vars::process())?;
    let svc = &Services::build(&aws, &env::Vars::process())?;
    run(service_fn(move |req: Request| async move {
        Ok::<_, Error>(status::handle(ctx, svc, req).await)
    }))
    .await
}
