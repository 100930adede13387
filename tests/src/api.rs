//! The API functions on a local stack, as the API tests share them: the demo candidate's
//! secrets in moto, the fake VAN and LiveVox over HTTP, the real `configure`, `validate`
//! and `status` handlers, and the events of events/ with the stack's token.

use std::sync::Arc;

use callsync::adapters::memory::MemoryLauncher;
use callsync::entrypoints::http::ApiContext;
use callsync::entrypoints::{configure, status, validate};
use callsync::services::Services;
use serde_json::Value;

use crate::fake_livevox::{FakeLiveVox, LiveVoxData};
use crate::fake_van::{FakeVan, VanData};
use crate::harness::{Answer, LocalStack, TEST_TOKEN, event, request, with_token};
use crate::night::{TestClock, services};

pub const VAN_SECRET: &str = r#"{"application_name":"callsync-demo","api_key":"demo-van-key"}"#;
pub const VAN_MYC_SECRET: &str = r#"{"application_name":"callsync-demo","api_key":"demo-myc-key"}"#;
pub const LIVEVOX_SECRET: &str = r#"{"access_token":"demo-lv-access","client_name":"callsync-demo","user_name":"demo","password":"demo-password"}"#;

#[derive(Debug)]
pub struct ApiWorld {
    pub van: FakeVan,
    pub livevox: FakeLiveVox,
    pub stack: LocalStack,
    pub ctx: ApiContext,
    /// The status function's sync wiring; runs it starts are kept, not run.
    pub svc: Services,
}

/// Which URLs the deployment's environment overrides.
#[derive(Debug, Clone, Copy)]
pub struct Overrides {
    /// `CALLSYNC_LIVEVOX_BASE_URL` points at the fake; without it a LiveVox host named in
    /// a document would really be used.
    pub livevox: bool,
}

impl ApiWorld {
    /// VAN and LiveVox both the fakes, by the environment.
    pub async fn start() -> ApiWorld {
        Self::start_with(Overrides { livevox: true }, &[]).await
    }

    pub async fn start_with(overrides: Overrides, extra_secrets: &[(&str, String)]) -> ApiWorld {
        let van = FakeVan::start(VanData::demo()).await;
        let livevox = FakeLiveVox::start(LiveVoxData::demo()).await;
        let mut secrets = vec![
            ("callsync/demo/van", VAN_SECRET.to_owned()),
            ("callsync/demo/van-myc", VAN_MYC_SECRET.to_owned()),
            ("callsync/demo/livevox", LIVEVOX_SECRET.to_owned()),
        ];
        secrets.extend(extra_secrets.iter().map(|(k, v)| (*k, v.clone())));
        let mut vars = vec![("CALLSYNC_VAN_BASE_URL", van.base_url())];
        if overrides.livevox {
            vars.push(("CALLSYNC_LIVEVOX_BASE_URL", livevox.base_url()));
        }
        let stack = LocalStack::up(&secrets, &vars).await;
        let ctx = stack.api_context();
        let mut svc = services(&stack, TestClock::new("2026-11-04T15:00:00Z"));
        svc.launcher = Arc::new(MemoryLauncher::default());
        ApiWorld {
            van,
            livevox,
            stack,
            ctx,
            svc,
        }
    }

    pub async fn configure(&self, event: Value) -> Answer {
        Answer::from(configure::handle(&self.ctx, request(&event)).await)
    }

    pub async fn validate(&self, event: Value) -> Answer {
        Answer::from(validate::handle(&self.ctx, request(&event)).await)
    }

    /// Store the demo candidate from events/candidates-put.json.
    pub async fn seed(&self) {
        let a = self.configure(authed("candidates-put.json")).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }

    pub async fn status(&self, event: Value) -> Answer {
        Answer::from(status::handle(&self.ctx, &self.svc, request(&event)).await)
    }
}

/// An event from events/ carrying the local stack's token.
pub fn authed(name: &str) -> Value {
    with_token(event(name), Some(TEST_TOKEN))
}

pub fn with_body(mut event: Value, body: &str) -> Value {
    event["body"] = body.into();
    event
}

/// The demo candidate's document, as events/candidates-put.json sends it.
pub fn demo_doc() -> Value {
    serde_json::from_str(
        event("candidates-put.json")["body"]
            .as_str()
            .unwrap_or_default(),
    )
    .expect("events/candidates-put.json carries a JSON document")
}
