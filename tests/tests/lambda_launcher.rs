//! The launcher `POST /runs` uses, through the real Lambda SDK client against a fake Lambda
//! endpoint on a local port: the asynchronous `Invoke` on the wire, and what a refusal
//! becomes.
#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use aws_sdk_lambda::config::retry::RetryConfig;
use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use callsync::adapters::lambda_launcher::LambdaLauncher;
use callsync::entrypoints::nightly::{ManualRun, TickAfter};
use callsync::ports::{RunLauncher, StoreError};
use callsync::values::CandidateSlug;
use serde_json::json;

const FUNCTION: &str = "callsync-NightlyFunction";

/// One request the fake Lambda received.
#[derive(Debug, Clone)]
struct Invocation {
    function: String,
    invocation_type: Option<String>,
    body: Vec<u8>,
}

#[derive(Debug, Clone)]
struct FakeLambda {
    answer: StatusCode,
    seen: Arc<Mutex<Vec<Invocation>>>,
}

async fn invoke(
    State(fake): State<FakeLambda>,
    Path(function): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    fake.seen.lock().unwrap().push(Invocation {
        function,
        invocation_type: headers
            .get("x-amz-invocation-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body: body.to_vec(),
    });
    fake.answer
}

/// A fake Lambda answering every invocation with `answer`; returns its URL and what it saw.
async fn fake_lambda(answer: StatusCode) -> (String, Arc<Mutex<Vec<Invocation>>>) {
    let seen = Arc::<Mutex<Vec<Invocation>>>::default();
    let app = axum::Router::new()
        .route(
            "/2015-03-31/functions/{function}/invocations",
            axum::routing::post(invoke),
        )
        .with_state(FakeLambda {
            answer,
            seen: Arc::clone(&seen),
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, seen)
}

fn launcher(url: &str) -> LambdaLauncher {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("test", "test", None, None, "test"))
        .endpoint_url(url)
        // One request per start, so the test can count them.
        .retry_config(RetryConfig::disabled())
        .build();
    LambdaLauncher::new(aws_sdk_lambda::Client::from_conf(conf), FUNCTION.into())
}

fn run() -> ManualRun {
    ManualRun {
        candidate: CandidateSlug::parse("night").unwrap(),
        date: Some(jiff::civil::date(2026, 11, 21)),
        dry_run: false,
        continuation: 0,
    }
}

#[tokio::test]
async fn the_launcher_invokes_the_nightly_function_asynchronously() {
    let (url, seen) = fake_lambda(StatusCode::ACCEPTED).await;
    launcher(&url).start(&run()).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].function, FUNCTION);
    assert_eq!(seen[0].invocation_type.as_deref(), Some("Event"));
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({"candidate": "night", "date": "2026-11-21", "dry_run": false})
    );
    let back: ManualRun = serde_json::from_value(body).unwrap();
    assert_eq!(back, run(), "the nightly function reads it as the same run");
}

#[tokio::test]
async fn a_run_and_a_tick_handed_on_reach_the_nightly_function_as_events_it_reads() {
    let (url, seen) = fake_lambda(StatusCode::ACCEPTED).await;
    let next = ManualRun {
        continuation: 2,
        ..run()
    };
    launcher(&url).start(&next).await.unwrap();
    let rest = TickAfter {
        tick_after: CandidateSlug::parse("ny14-smith").unwrap(),
    };
    launcher(&url).continue_tick(&rest).await.unwrap();

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen.iter()
            .all(|s| s.invocation_type.as_deref() == Some("Event"))
    );
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        json!({"candidate": "night", "date": "2026-11-21", "dry_run": false, "continuation": 2})
    );
    assert_eq!(serde_json::from_value::<ManualRun>(body).unwrap(), next);
    let body: serde_json::Value = serde_json::from_slice(&seen[1].body).unwrap();
    assert_eq!(body, json!({"tick_after": "ny14-smith"}));
    assert_eq!(serde_json::from_value::<TickAfter>(body).unwrap(), rest);
}

#[tokio::test]
async fn an_invocation_lambda_did_not_accept_is_an_error() {
    // A failing Lambda, or an answer other than "accepted for later" (200 is what a
    // synchronous invocation gets), means the run was not started.
    for answer in [StatusCode::INTERNAL_SERVER_ERROR, StatusCode::OK] {
        let (url, seen) = fake_lambda(answer).await;
        let err = launcher(&url).start(&run()).await.unwrap_err();
        assert!(
            matches!(&err, StoreError::Unavailable("the nightly function", m) if m.contains(FUNCTION)),
            "{answer}: {err}"
        );
        assert_eq!(seen.lock().unwrap().len(), 1, "{answer}");
    }
}
