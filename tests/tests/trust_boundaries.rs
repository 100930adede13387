//! A candidate document is untrusted: nothing in it may send credentials or data anywhere
//! the candidate does not own. Through the real handlers, moto and the fakes, with a
//! listener standing in for whoever would like to receive a LiveVox login or a report.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use callsync::adapters::webhook::WebhookNotifier;
use callsync::candidate::CandidateDoc;
use callsync::egress::Egress;
use callsync::nightly::{self, RunError, RunOptions};
use callsync::ports::Notifier;
use callsync::values::CandidateSlug;
use callsync_tests::api::{ApiWorld, Overrides, VAN_SECRET, authed, demo_doc, with_body};
use callsync_tests::harness::Answer;
use callsync_tests::night::{TestClock, Webhook, services};
use serde_json::json;

/// A TCP listener that counts the connections it is offered.
struct Listener {
    port: u16,
    connections: Arc<AtomicUsize>,
}

impl Listener {
    async fn start() -> Listener {
        let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = socket.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let seen = Arc::clone(&connections);
        tokio::spawn(async move {
            while let Ok((_stream, _)) = socket.accept().await {
                seen.fetch_add(1, Ordering::SeqCst);
            }
        });
        Listener { port, connections }
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

/// The demo candidate's stack. LiveVox is not overridden by the environment: a LiveVox
/// host in a document would really be used.
async fn world() -> ApiWorld {
    ApiWorld::start_with(
        Overrides { livevox: false },
        &[("callsync/other/van", VAN_SECRET.into())],
    )
    .await
}

fn fields(answer: &Answer) -> Vec<String> {
    let json = answer.json();
    json["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_draft_naming_another_candidates_secret_or_a_foreign_host_connects_nowhere() {
    let w = world().await;
    let listener = Listener::start().await;
    for (path, value, field) in [
        (
            "/van/secret_name",
            json!("callsync/other/van"),
            "van.secret_name",
        ),
        (
            "/van/secret_name",
            json!("arn:aws:secretsmanager:us-east-1:000000000000:secret:callsync/other/van"),
            "van.secret_name",
        ),
        (
            "/source/livevox/base_url",
            json!(format!("http://localhost@127.0.0.1:{}", listener.port)),
            "source.livevox.base_url",
        ),
        (
            "/source/livevox/base_url",
            json!(format!("https://127.0.0.1:{}", listener.port)),
            "source.livevox.base_url",
        ),
        (
            "/source/livevox/secret_name",
            json!("callsync/other/van"),
            "source.livevox.secret_name",
        ),
    ] {
        let mut doc = demo_doc();
        let (parent, name) = path.rsplit_once('/').unwrap();
        doc.pointer_mut(parent).unwrap()[name] = value.clone();
        let a = w
            .validate(with_body(authed("validate-post.json"), &doc.to_string()))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.json()["ok"], false, "{value}");
        assert!(
            fields(&a).contains(&field.to_owned()),
            "{value}: {}",
            a.body
        );
    }
    assert!(w.van.requests().is_empty(), "VAN was contacted");
    assert!(w.livevox.requests().is_empty(), "LiveVox was contacted");
    assert_eq!(listener.connections(), 0, "the listener was contacted");

    // A draft for another candidate's URL is refused before its secrets are looked at.
    let mut doc = demo_doc();
    doc["slug"] = "other".into();
    let a = w
        .validate(with_body(authed("validate-post.json"), &doc.to_string()))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(w.van.requests().is_empty());
}

#[tokio::test]
async fn configure_never_sends_a_stored_documents_livevox_login_to_a_foreign_host() {
    let w = world().await;
    let listener = Listener::start().await;
    // A document stored before the rule existed (written straight to the table).
    let mut doc = demo_doc();
    doc["source"]["livevox"]["base_url"] =
        format!("http://localhost@127.0.0.1:{}", listener.port).into();
    let doc: CandidateDoc = serde_json::from_value(doc).unwrap();
    w.ctx.config.put(&doc).await.unwrap();

    let a = w.configure(authed("configure-get.json")).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("source.livevox.base_url"), "{}", a.body);
    assert_eq!(listener.connections(), 0, "the LiveVox login went out");
    assert!(w.van.requests().is_empty());
}

#[tokio::test]
async fn a_report_webhook_on_a_private_address_or_behind_user_info_is_refused_when_saved() {
    let w = world().await;
    for url in [
        "https://10.0.0.5/hook",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00:ec2::254]/",
        "https://hooks.slack.com@10.0.0.5/hook",
        "http://hooks.slack.com/services/x",
    ] {
        let mut doc = demo_doc();
        doc["notify"] = json!({ "webhook_url": url });
        let a = w
            .configure(with_body(authed("candidates-put.json"), &doc.to_string()))
            .await;
        assert_eq!(a.status, 400, "{url}: {}", a.body);
        assert!(a.body.contains("notify.webhook_url"), "{url}: {}", a.body);
    }
    let got = w.configure(authed("candidates-get.json")).await;
    assert_eq!(got.status, 404, "nothing was stored");
}

#[tokio::test]
async fn the_report_goes_to_no_loopback_address_and_through_no_redirect() {
    let hook = Webhook::start().await;
    let report = json!({"text": "a night", "csv": ["https://presigned.example/x"]});

    // A deployed stack: loopback is closed, whatever the spelling.
    let strict = WebhookNotifier::with_egress(Egress::STRICT);
    let port = hook.url.rsplit(':').next().unwrap();
    for url in [
        hook.url.clone(),
        hook.url.replace("http://", "https://"),
        format!("https://localhost:{port}"),
        format!("https://[::ffff:127.0.0.1]:{port}"),
    ] {
        let err = strict.send(&url, &report).await.unwrap_err();
        assert!(err.contains("not used"), "{url}: {err}");
    }
    assert!(hook.bodies().is_empty(), "a report reached loopback");

    // A redirect (even to an allowed receiver) is not followed.
    let redirector = axum::Router::new().route(
        "/hook",
        axum::routing::post({
            let to = hook.url.clone();
            move || async move { axum::response::Redirect::temporary(&to) }
        }),
    );
    let socket = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(socket, redirector).await });
    let local = WebhookNotifier::with_egress(Egress::LOCAL);
    let err = local
        .send(&format!("http://{addr}/hook"), &report)
        .await
        .unwrap_err();
    assert!(err.contains("redirect"), "{err}");
    assert!(hook.bodies().is_empty(), "the redirect was followed");
    local.send(&hook.url, &report).await.unwrap();
    assert_eq!(hook.bodies().len(), 1);
}

#[tokio::test]
async fn a_stored_inbox_outside_the_candidates_prefix_moves_and_reads_nothing() {
    let w = world().await;
    let clock = TestClock::new("2026-11-04T12:00:00Z");
    let svc = services(&w.stack, clock);
    let export = "exports/other/2026-11-03/other-11-03-2026-1.csv";
    let calls = "inbox/other/calls.csv";
    for key in [export, calls] {
        svc.objects
            .put(key, b"Voter ID\n1\n".to_vec(), "text/csv")
            .await
            .unwrap();
    }
    for prefix in ["exports/", "inbox/other/", "inbox/demo/../other/"] {
        let mut doc = demo_doc();
        doc["source"] = json!({"cdr": {"inbox_prefix": prefix}});
        let doc: CandidateDoc = serde_json::from_value(doc).unwrap();
        svc.config.put(&doc).await.unwrap();
        let slug = CandidateSlug::parse("demo").unwrap();
        let date = jiff::civil::date(2026, 11, 3);
        let err = nightly::run(&svc, &slug, date, RunOptions::default())
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Candidate(_)), "{prefix}: {err}");
        assert!(err.to_string().contains("source.cdr.inbox_prefix"), "{err}");
    }
    for key in [export, calls] {
        assert!(svc.objects.get(key).await.is_ok(), "{key} was moved");
    }
    assert!(svc.objects.list("rejected/").await.unwrap().is_empty());
    assert!(svc.objects.list("processed/").await.unwrap().is_empty());
}
