//! Destinations end to end: a night read from the S3 inbox (moto), planned into the ledger
//! (DynamoDB in moto) with one delivery per call and destination, fanned out on SQS (moto)
//! and delivered by `sync-call` to the fake VAN and to a signed webhook receiver over HTTP.
//! Nothing of callsync's own is mocked.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use callsync::call::CallId;
use callsync::candidate::CandidateDoc;
use callsync::deliver::Outcome;
use callsync::entrypoints::nightly as nightly_event;
use callsync::fanout;
use callsync::ledger::{CallKey, CallState, DayKey, DeliveryKey, DeliveryRecord, Receipt};
use callsync::nightly::{self, RetryScope};
use callsync::ports::SyncMessage;
use callsync::values::CandidateSlug;
use callsync_tests::fake_receiver::{Behaviour, Receiver};
use callsync_tests::fake_tls::{self, Pki, TlsReceiver};
use callsync_tests::night::{
    NightStack, cdr_row, drain, drain_killing, drop_cdr, objects, run_day, services,
    ten_call_night, tick,
};
use jiff::civil::{Date, date};
use serde_json::{Value, json};

const SIGNING_SECRET: &str = "whsec-test-0f3c9a6b2e71d48c5a09f3e7b1c2d4a6";
const DAY: Date = date(2026, 11, 21);
const HOOK: &str = "crm-hook";
const ESB: &str = "city-esb";

/// The night's stack (its fields reached through the world), the webhook receiver, and
/// the partner over mutual TLS, when the test configures it.
struct World {
    night: NightStack,
    receiver: Receiver,
    esb: Option<Esb>,
}

impl std::ops::Deref for World {
    type Target = NightStack;

    fn deref(&self) -> &NightStack {
        &self.night
    }
}

fn slug() -> CandidateSlug {
    CandidateSlug::parse("night").unwrap()
}

fn day() -> DayKey {
    DayKey {
        candidate: slug(),
        date: DAY,
    }
}

/// The candidate: VAN for synced calls (the CSV for `csv` rows), and, when `hook` is
/// given, the signed webhook for every synced call.
fn doc(report: &str, hook: Option<&str>, strong: &str) -> CandidateDoc {
    let mut doc = json!({
        "slug": "night", "display_name": "Night for Congress", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": "full",
        "van": {"secret_name": "callsync/night/van", "database_mode": "voter_file"},
        "results": [
            {"result": "Agent Cust 1", "display_name": strong, "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}],
             "activist_codes": [4400], "sync": true, "priority": 10},
            {"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
             "result_code_id": 20, "sync": true},
            {"result": "No Answer", "display_name": "No answer", "success": false,
             "result_code_id": 1, "csv": true}
        ],
        "notify": {"webhook_url": report}
    });
    if let Some(url) = hook {
        doc["destinations"] = json!([
            {"name": "van", "kind": "van"},
            {"name": HOOK, "kind": "webhook", "url": url,
             "secret_name": "callsync/night/crm-hook", "rate_limit": 50, "timeout_secs": 2}
        ]);
    }
    serde_json::from_value(doc).unwrap()
}

async fn world() -> World {
    build(None).await
}

/// The partner's destination: a SOAP message per "Agent Cust 1" call (the only result it
/// has a code for), over mutual TLS with the client certificate in `secret`.
fn esb_destination(url: &str, secret: &str) -> callsync::destinations::DestinationDoc {
    serde_json::from_value(json!({
        "name": ESB, "kind": "http_template", "url": format!("{url}?activity={{{{ call.id }}}}"),
        "headers": {"SOAPAction": "urn:submitCall"},
        "format": "xml",
        "body": concat!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
            "<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\">",
            "<soapenv:Body><submitCall><emi>{{ call.id }}</emi>",
            "<id>{{ contact.van_id }}</id><outcome_code>{{ code }}</outcome_code>",
            "<activity_details>{{ contact.first_name }} {{ contact.last_name }}</activity_details>",
            "<activity_date>{{ call.local_date }}</activity_date>",
            "</submitCall></soapenv:Body></soapenv:Envelope>"
        ),
        "result_codes": {"Agent Cust 1": "COMPLET1"},
        "failure_pattern": "<soapenv:Fault>",
        "secret_name": secret,
        "rate_limit": 50,
        "timeout_secs": 5
    }))
    .unwrap()
}

struct Esb {
    receiver: TlsReceiver,
    pki: Pki,
    secret_name: String,
}

/// The TLS secret a test gives the partner's destination.
struct EsbSetup {
    pki: Pki,
    /// The secret's name: unique per test (candidate secrets are shared by every stack on
    /// one moto, and each test makes its own certificates).
    secret_name: String,
    secret: Value,
}

/// `{"client_certificate", "client_key", "ca_bundle"}` for `pki`'s good client.
fn tls_secret(pki: &Pki) -> Value {
    json!({
        "client_certificate": pki.client_cert_pem,
        "client_key": pki.client_key_pem,
        "ca_bundle": pki.ca_pem,
    })
}

async fn build(esb: Option<EsbSetup>) -> World {
    let mut secrets = vec![(
        "callsync/night/crm-hook",
        json!({"signing_secret": SIGNING_SECRET}).to_string(),
    )];
    if let Some(e) = &esb {
        secrets.push((e.secret_name.as_str(), e.secret.to_string()));
    }
    let mut night = NightStack::up(100_001..=100_020, &secrets, &[]).await;
    // A failed try's delayed message comes back after real minutes, while these tests move
    // a clock of their own: the tick's sweep of messages taken for lost stands in for it.
    night.svc.settings.requeue_stale_after = Duration::from_secs(3600);
    let receiver = Receiver::start(SIGNING_SECRET).await;
    let mut document = doc(&night.report.url, Some(&receiver.url), "Strong support");
    let esb = match esb {
        None => None,
        Some(e) => {
            let partner = TlsReceiver::start(&e.pki).await;
            document
                .destinations
                .push(esb_destination(&partner.url, &e.secret_name));
            Some(Esb {
                receiver: partner,
                pki: e.pki,
                secret_name: e.secret_name,
            })
        }
    };
    night.svc.config.put(&document).await.unwrap();
    World {
        night,
        receiver,
        esb,
    }
}

/// Ten calls ([`ten_call_night`]): six posted to VAN and to the webhook (1001–1006), two
/// for the CSV only (1007–1008, not synced: not for the webhook), one unknown result
/// (1009), and one whose person VAN does not know (1010: VAN refuses it; the webhook still
/// takes it).
fn night_rows() -> Vec<String> {
    ten_call_night()
}

/// The calls the webhook takes (synced rows, known results).
const HOOKED: [&str; 7] = ["1001", "1002", "1003", "1004", "1005", "1006", "1010"];

impl World {
    async fn run(&self) -> Value {
        run_day(&self.svc, "night", DAY).await
    }

    async fn tick(&self) -> Value {
        tick(&self.svc).await
    }

    async fn drain(&self) -> usize {
        drain(&self.stack, &self.svc).await
    }

    async fn deliveries(&self) -> BTreeMap<String, DeliveryRecord> {
        self.svc
            .ledger
            .deliveries(&day(), HOOK)
            .await
            .unwrap()
            .into_iter()
            .map(|d| (d.key.call.call_id.0.to_string(), d))
            .collect()
    }

    async fn delivery(&self, id: &str) -> DeliveryRecord {
        self.delivery_to(HOOK, id).await
    }

    async fn delivery_to(&self, destination: &str, id: &str) -> DeliveryRecord {
        let key = DeliveryKey {
            call: CallKey {
                day: day(),
                call_id: CallId(id.into()),
            },
            destination: destination.into(),
        };
        self.svc.ledger.get_delivery(&key).await.unwrap().unwrap()
    }

    async fn hook_states(&self) -> BTreeMap<CallState, u64> {
        self.states_of(HOOK).await
    }

    async fn states_of(&self, destination: &str) -> BTreeMap<CallState, u64> {
        let candidate = self.svc.candidate(&slug()).await.unwrap();
        let calls = self.svc.ledger.day(&day()).await.unwrap();
        let counts = fanout::counts(&self.svc, &candidate, &day(), fanout::own_counts(&calls))
            .await
            .unwrap();
        counts[destination].by_state.clone()
    }

    /// Call ids the receiver accepted, one entry per accepted request.
    fn accepted_ids(&self) -> Vec<String> {
        self.receiver
            .delivered()
            .iter()
            .map(|r| r.body["call"]["id"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Move the clock past any back-off, then let the tick sweep and the workers deliver.
    async fn later(&self) {
        self.clock.advance(Duration::from_secs(4 * 3600));
        self.tick().await;
        self.drain().await;
    }
}

fn states(pairs: &[(CallState, u64)]) -> BTreeMap<CallState, u64> {
    pairs.iter().copied().collect()
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

#[tokio::test]
async fn a_night_reaches_van_the_csv_and_a_signed_webhook_each_exactly_once() {
    let w = world().await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;

    let summary = w.run().await;
    let settled = &summary["days"][0]["destinations"][HOOK];
    assert_eq!(settled["planned"], 10, "{summary:#}");
    assert_eq!(settled["enqueued"], 7, "the seven synced calls");
    w.drain().await;
    w.tick().await;

    // VAN and the CSV as without destinations.
    assert_eq!(
        w.van.canvass_posts().len(),
        6,
        "1001–1006 posted; 1010 refused"
    );
    let csv = objects(&w.svc, "exports/night/").await;
    assert_eq!(csv.len(), 1);
    // The webhook: each synced call once, signed, and nothing else.
    assert_eq!(sorted(w.accepted_ids()), HOOKED);
    assert_eq!(w.receiver.received().len(), 7, "no request was sent twice");
    assert_eq!(
        w.hook_states().await,
        states(&[
            (CallState::Finished, 7),
            (CallState::Ignored, 2),          // 1007, 1008: not marked sync
            (CallState::UnattemptedError, 1), // 1009: the rule needs the result's row
        ])
    );
    let mut keys = BTreeSet::new();
    for r in w.receiver.received() {
        assert!(r.verified, "signature checks out: {:?}", r.signature);
        assert_eq!(r.content_type.as_deref(), Some("application/json"));
        assert_eq!(r.body["state"], "new");
        keys.insert(r.idempotency_key.clone().unwrap());
    }
    assert_eq!(keys.len(), 7, "an idempotency key per delivery");

    // What a receiver is sent about one call.
    let strong = w
        .receiver
        .delivered()
        .into_iter()
        .find(|r| r.body["call"]["id"] == "1001")
        .unwrap()
        .body;
    assert_eq!(strong["call"]["local_date"], "2026-11-21");
    assert_eq!(strong["call"]["result"], "Agent Cust 1");
    assert_eq!(strong["call"]["display_name"], "Strong support");
    assert_eq!(strong["call"]["agent"], "agent7");
    assert_eq!(strong["call"]["source"], "cdr");
    assert!(strong["call"]["started_at"].is_string());
    assert_eq!(strong["contact"]["van_id"], 100_001);
    assert_eq!(strong["contact"]["database_mode"], "voter_file");
    assert_eq!(strong["contact"]["first_name"], "Pat");
    assert!(strong["contact"]["phone"].is_string());

    // The ledger holds the receipt of each delivery, and why the others were not sent.
    let sent = w.delivery("1001").await;
    assert!(
        matches!(&sent.delivery.receipt, Some(Receipt::Http { status: 200, attempts: 1, fingerprint, .. }) if fingerprint.len() == 64),
        "{:?}",
        sent.delivery.receipt
    );
    let skipped = w.delivery("1007").await;
    assert!(skipped.reason.unwrap().contains("not marked sync"));
    let unknown = w.delivery("1009").await;
    assert_eq!(unknown.delivery.error.unwrap().code, "unknown_result");
    // The VAN refusal of 1010 is VAN's alone.
    let refused = w
        .svc
        .ledger
        .get(&CallKey {
            day: day(),
            call_id: CallId("1010".into()),
        })
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused.delivery.state, CallState::AttemptedError);
    assert_eq!(w.delivery("1010").await.delivery.state, CallState::Finished);

    // The report, once, says per destination what was delivered and what failed.
    let reports = w.report.bodies();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0]["destinations"][HOOK]["delivered"], 7);
    assert_eq!(reports[0]["destinations"][HOOK]["failed"], 1);
    // VAN and the CSV are reported as destinations too: six posted, 1010 refused; the
    // two no-answers exported.
    assert_eq!(reports[0]["destinations"]["van"]["delivered"], 6);
    assert_eq!(reports[0]["destinations"]["van"]["failed"], 1);
    assert_eq!(reports[0]["destinations"]["csv"]["delivered"], 2);
    assert_eq!(reports[0]["destinations"]["csv"]["failed"], 0);
    let text = reports[0]["text"].as_str().unwrap();
    assert!(text.contains("crm-hook: 7 delivered, 1 failed"), "{text}");
    assert!(text.contains("van: 6 delivered, 1 failed"), "{text}");
    assert!(text.contains("csv: 2 delivered, 0 failed"), "{text}");
}

#[tokio::test]
async fn a_receiver_down_for_half_the_night_holds_back_neither_van_nor_its_own_calls() {
    let w = world().await;
    w.receiver.set(Behaviour::FailFirst { n: 4, status: 503 });
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    w.drain().await;

    // VAN posted everything while the receiver was failing.
    assert_eq!(w.van.canvass_posts().len(), 6);
    let waiting = w.deliveries().await;
    let retrying: Vec<&DeliveryRecord> = waiting
        .values()
        .filter(|d| d.delivery.state == CallState::Unsynced)
        .collect();
    assert_eq!(
        retrying.len(),
        4,
        "the four refused wait for their next try"
    );
    for d in &retrying {
        assert_eq!(d.delivery.attempts, 1);
        let at = d.delivery.next_attempt_at.expect("a next try is scheduled");
        assert!(at > w.clock_now(), "back-off, not an immediate retry");
        let error = d.delivery.error.as_ref().unwrap();
        assert_eq!(error.status, Some(503));
        assert!(error.answer.as_deref().unwrap().contains("Bad Gateway"));
    }
    // The day is not reported while deliveries are pending.
    w.tick().await;
    assert!(w.report.bodies().is_empty());

    // The receiver is back: the sweep hands the waiting ones to the workers.
    w.later().await;
    assert_eq!(sorted(w.accepted_ids()), HOOKED, "each call accepted once");
    assert_eq!(
        w.receiver.received().len(),
        7 + 4,
        "7 accepted + 4 refused tries"
    );
    assert_eq!(w.van.canvass_posts().len(), 6, "VAN got nothing twice");
    for id in HOOKED {
        assert_eq!(
            w.delivery(id).await.delivery.state,
            CallState::Finished,
            "{id}"
        );
    }
    // Later tries of a delivery carry its key again, so a receiver can tell a repeat.
    let by_call: BTreeMap<String, BTreeSet<String>> =
        w.receiver
            .received()
            .into_iter()
            .fold(BTreeMap::new(), |mut m, r| {
                m.entry(r.body["call"]["id"].as_str().unwrap().to_owned())
                    .or_default()
                    .insert(r.idempotency_key.unwrap());
                m
            });
    assert!(by_call.values().all(|keys| keys.len() == 1), "{by_call:?}");
    w.tick().await;
    assert_eq!(
        w.report.bodies().len(),
        1,
        "reported once everything landed"
    );
}

#[tokio::test]
async fn a_receiver_that_never_comes_back_ends_in_attempted_error_after_ten_tries() {
    let w = world().await;
    w.receiver.set(Behaviour::HangUp);
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()[..1]).await;
    w.run().await;
    w.drain().await;
    for _ in 0..12 {
        w.later().await;
    }
    let d = w.delivery("1001").await;
    assert_eq!(d.delivery.state, CallState::AttemptedError);
    assert_eq!(d.delivery.attempts, 10);
    let error = d.delivery.error.unwrap();
    assert_eq!(error.code, "destination_unavailable");
    assert!(
        error.message.contains("gave up after 10 attempts"),
        "{}",
        error.message
    );
    assert!(error.message.contains("no connection"), "{}", error.message);
    assert_eq!(w.receiver.received().len(), 10);
    assert_eq!(w.van.canvass_posts().len(), 1, "VAN took the call at once");

    // The receiver is fixed: a retry of that destination delivers it, once.
    w.receiver.set(Behaviour::Accept);
    let retried = w
        .retry_destination(HOOK, &[CallState::AttemptedError])
        .await;
    assert_eq!(
        retried.destinations[HOOK].replanned[&CallState::Unsynced],
        1
    );
    w.drain().await;
    assert_eq!(w.accepted_ids(), ["1001"]);
    assert_eq!(w.delivery("1001").await.delivery.state, CallState::Finished);
    assert_eq!(w.van.canvass_posts().len(), 1);
}

#[tokio::test]
async fn a_destination_added_after_a_night_receives_that_day_alone_when_it_is_run_again() {
    let w = world().await;
    w.svc
        .config
        .put(&doc(&w.report.url, None, "Strong support"))
        .await
        .unwrap();
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    w.drain().await;
    w.tick().await;
    assert_eq!(w.report.bodies().len(), 1);
    let posts = w.van.canvass_posts().len();
    let csv = objects(&w.svc, "exports/night/").await;
    let calls = w.svc.ledger.day(&day()).await.unwrap();

    // The webhook is added; the past day is run again.
    w.svc
        .config
        .put(&doc(&w.report.url, Some(&w.receiver.url), "Strong support"))
        .await
        .unwrap();
    w.run().await;
    w.drain().await;
    w.later().await;

    assert_eq!(
        sorted(w.accepted_ids()),
        HOOKED,
        "the new destination got the day"
    );
    assert_eq!(w.van.canvass_posts().len(), posts, "VAN got nothing again");
    assert_eq!(
        objects(&w.svc, "exports/night/").await,
        csv,
        "no second CSV"
    );
    let again = w.svc.ledger.day(&day()).await.unwrap();
    for (before, after) in calls.iter().zip(&again) {
        assert_eq!(
            (before.delivery.state, &before.delivery.receipt),
            (after.delivery.state, &after.delivery.receipt),
            "{}",
            before.key
        );
    }
    // A third run changes nothing anywhere.
    w.run().await;
    w.drain().await;
    assert_eq!(w.receiver.received().len(), 7);
}

#[tokio::test]
async fn a_mapping_fix_sends_a_delivered_call_again_as_updated_and_only_once() {
    let w = world().await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    w.drain().await;
    let first = w.delivery("1001").await;
    assert_eq!(first.delivery.state, CallState::Finished);

    // The display name of "Agent Cust 1" is fixed, then the destination retried.
    w.svc
        .config
        .put(&doc(
            &w.report.url,
            Some(&w.receiver.url),
            "Strong support (verified)",
        ))
        .await
        .unwrap();
    let retried = w.retry_destination(HOOK, &[]).await;
    assert_eq!(
        retried.destinations[HOOK].updated, 4,
        "1001, 1003, 1005 and 1010 are \"Agent Cust 1\" calls"
    );
    w.drain().await;
    let updates: Vec<_> = w
        .receiver
        .delivered()
        .into_iter()
        .filter(|r| r.body["state"] == "updated")
        .collect();
    let ids: BTreeSet<&str> = updates
        .iter()
        .map(|r| r.body["call"]["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, BTreeSet::from(["1001", "1003", "1005", "1010"]));
    for u in &updates {
        assert_eq!(u.body["call"]["display_name"], "Strong support (verified)");
        assert!(u.verified);
    }
    let original_key = w
        .receiver
        .delivered()
        .into_iter()
        .find(|r| r.body["call"]["id"] == "1001" && r.body["state"] == "new")
        .unwrap()
        .idempotency_key;
    let update_key = updates
        .iter()
        .find(|r| r.body["call"]["id"] == "1001")
        .unwrap()
        .idempotency_key
        .clone();
    assert_ne!(original_key, update_key, "new content, new key");
    assert_eq!(w.van.canvass_posts().len(), 6, "VAN is never re-posted");

    // Nothing changed since: retrying again, or a restart re-running the day, sends nothing.
    let before = w.receiver.received().len();
    w.retry_destination(HOOK, &[]).await;
    w.run().await;
    w.drain().await;
    assert_eq!(w.receiver.received().len(), before);
}

impl World {
    /// `POST /retry` for one destination's deliveries in `states`.
    async fn retry_destination(
        &self,
        destination: &str,
        states: &[CallState],
    ) -> nightly::RetrySummary {
        nightly::retry(
            &self.svc,
            &slug(),
            DAY,
            states,
            &RetryScope::Destination(destination.into()),
        )
        .await
        .unwrap()
    }

    fn clock_now(&self) -> jiff::Timestamp {
        use callsync::ports::Clock;
        self.clock.now()
    }
}

#[tokio::test]
async fn a_dry_run_shows_what_the_webhook_would_be_sent_and_sends_nothing() {
    let w = world().await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    let summary = nightly::run(
        &w.svc,
        &slug(),
        DAY,
        nightly::RunOptions {
            dry_run: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let samples = &summary.sample_payloads[HOOK];
    assert_eq!(samples.len(), 3, "{samples:#?}");
    assert_eq!(samples[0]["call"]["id"], "1001");
    assert_eq!(samples[0]["contact"]["van_id"], 100_001);
    w.drain().await;
    assert!(w.receiver.received().is_empty());
    assert!(w.deliveries().await.is_empty(), "nothing recorded");
}

#[tokio::test]
async fn a_delivery_whose_worker_died_holding_it_is_delivered_once_after_its_lease() {
    let w = world().await;
    w.receiver.set(Behaviour::Fail(503));
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()[..1]).await;
    w.run().await;
    w.drain().await;
    // A worker took the delivery and died before sending (its lease is all that is left).
    let mut held = w.delivery("1001").await;
    held.delivery.state = CallState::InProgress;
    held.delivery.lease_id = Some("dead-worker".into());
    held.delivery.lease_until = Some(w.clock_now() + Duration::from_secs(900));
    assert!(w.svc.ledger.replace_delivery(&mut held).await.unwrap());
    w.receiver.set(Behaviour::Accept);
    // Inside the lease, the sweep leaves it alone.
    w.tick().await;
    w.drain().await;
    assert!(w.receiver.delivered().is_empty());
    // Once it has run out, the sweep hands it to a worker again: delivered once.
    w.later().await;
    assert_eq!(w.accepted_ids(), ["1001"]);
    assert_eq!(w.delivery("1001").await.delivery.state, CallState::Finished);
    w.later().await;
    assert_eq!(w.accepted_ids(), ["1001"]);
}

/// The "Agent Cust 1" calls: the only result the partner has a code for.
const FOR_ESB: [&str; 4] = ["1001", "1003", "1005", "1010"];

fn esb_setup(tag: &str, secret: impl FnOnce(&Pki) -> Value) -> EsbSetup {
    let pki = Pki::generate();
    EsbSetup {
        secret: secret(&pki),
        secret_name: format!("callsync/night/esb-tls-{tag}-{}", std::process::id()),
        pki,
    }
}

impl World {
    fn esb(&self) -> &TlsReceiver {
        &self.esb.as_ref().unwrap().receiver
    }

    /// Call ids the partner took, one entry per request it accepted.
    fn esb_ids(&self) -> Vec<String> {
        self.esb()
            .delivered()
            .iter()
            .map(|r| {
                let q = r.path_and_query.split_once("activity=").unwrap().1;
                q.to_owned()
            })
            .collect()
    }
}

#[tokio::test]
async fn a_night_reaches_van_the_csv_a_webhook_and_a_partner_over_mutual_tls_each_once() {
    let w = build(Some(esb_setup("night", tls_secret))).await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    w.drain().await;
    w.tick().await;

    assert_eq!(w.van.canvass_posts().len(), 6);
    assert_eq!(objects(&w.svc, "exports/night/").await.len(), 1);
    assert_eq!(sorted(w.accepted_ids()), HOOKED);
    assert_eq!(sorted(w.esb_ids()), FOR_ESB);
    assert_eq!(w.esb().received().len(), 4, "no request was sent twice");
    assert_eq!(
        w.states_of(ESB).await,
        states(&[
            (CallState::Finished, 4),
            // 1002, 1004, 1006: no code for "Wrong number"; 1007, 1008: not synced.
            (CallState::Ignored, 5),
            (CallState::UnattemptedError, 1), // 1009: an unknown result
        ])
    );
    let why = w.delivery_to(ESB, "1002").await.reason.unwrap();
    assert_eq!(
        why,
        "result \"Wrong number\" has no code in this destination's result_codes"
    );

    // What the partner received: the template, values escaped for XML once, over a
    // connection that presented the client certificate.
    let one = w
        .esb()
        .delivered()
        .into_iter()
        .find(|r| r.path_and_query.ends_with("activity=1001"))
        .unwrap();
    assert_eq!(one.method, "POST");
    assert_eq!(
        one.client_subject_cn.as_deref(),
        Some("callsync-test-client")
    );
    let header = |name: &str| {
        one.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    assert_eq!(header("content-type"), Some("text/xml; charset=utf-8"));
    assert_eq!(header("soapaction"), Some("urn:submitCall"));
    assert!(
        one.body.starts_with("<?xml version=\"1.0\""),
        "{}",
        one.body
    );
    assert!(
        one.body
            .contains("<emi>1001</emi><id>100001</id><outcome_code>COMPLET1</outcome_code>"),
        "{}",
        one.body
    );
    assert!(
        one.body
            .contains("<activity_date>2026-11-21</activity_date>")
    );
    let receipt = w.delivery_to(ESB, "1001").await.delivery.receipt;
    assert!(
        matches!(&receipt, Some(Receipt::Http { status: 200, attempts: 1, fingerprint, .. }) if fingerprint.len() == 64),
        "{receipt:?}"
    );

    let reports = w.report.bodies();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    assert_eq!(reports[0]["destinations"][ESB]["delivered"], 4);
    assert_eq!(reports[0]["destinations"][HOOK]["delivered"], 7);
}

#[tokio::test]
async fn a_wrong_client_certificate_is_a_clear_error_and_the_calls_go_once_it_is_fixed() {
    let w = build(Some(esb_setup("stranger", |pki| {
        let (cert, key) = pki.stranger_client();
        json!({"client_certificate": cert, "client_key": key, "ca_bundle": pki.ca_pem})
    })))
    .await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    w.drain().await;

    // Nothing reached the partner, and the ledger says why and what to do.
    assert!(w.esb().received().is_empty());
    assert!(w.esb().refused_handshakes() >= 1);
    for id in FOR_ESB {
        let d = w.delivery_to(ESB, id).await;
        assert_eq!(d.delivery.state, CallState::UnattemptedError, "{id}");
        let error = d.delivery.error.unwrap();
        assert_eq!(error.code, "destination_setup");
        assert!(
            error.message.contains("refused the TLS handshake")
                && error.message.contains("client_certificate"),
            "{}",
            error.message
        );
    }
    // VAN and the webhook are not held back.
    assert_eq!(w.van.canvass_posts().len(), 6);
    assert_eq!(sorted(w.accepted_ids()), HOOKED);

    // The right certificate is put in the secret; a fresh worker (no cached secret) and a
    // retry of the destination deliver each call once.
    let esb = w.esb.as_ref().unwrap();
    aws_sdk_secretsmanager::Client::new(&w.stack.aws)
        .put_secret_value()
        .secret_id(&esb.secret_name)
        .secret_string(tls_secret(&esb.pki).to_string())
        .send()
        .await
        .unwrap();
    let mut fresh = services(&w.stack, w.clock.clone());
    fresh.settings.requeue_stale_after = Duration::from_secs(3600);
    let retried = nightly::retry(
        &fresh,
        &slug(),
        DAY,
        &[CallState::UnattemptedError],
        &RetryScope::Destination(ESB.into()),
    )
    .await
    .unwrap();
    assert_eq!(retried.destinations[ESB].replanned[&CallState::Unsynced], 4);
    drain(&w.stack, &fresh).await;
    assert_eq!(sorted(w.esb_ids()), FOR_ESB);
    assert_eq!(w.states_of(ESB).await[&CallState::Finished], 4);
    assert_eq!(w.van.canvass_posts().len(), 6, "VAN got nothing twice");
}

#[tokio::test]
async fn a_partner_whose_server_certificate_does_not_verify_is_sent_nothing() {
    // The right client certificate, but no CA bundle: the partner's certificate comes from
    // a private CA the public roots do not know.
    let w = build(Some(esb_setup(
        "no-ca",
        |pki| json!({"client_certificate": pki.client_cert_pem, "client_key": pki.client_key_pem}),
    )))
    .await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()[..1]).await;
    w.run().await;
    w.drain().await;
    assert!(w.esb().received().is_empty());
    let error = w.delivery_to(ESB, "1001").await.delivery.error.unwrap();
    assert_eq!(error.code, "destination_setup");
    assert!(
        error.message.contains("does not verify") && error.message.contains("ca_bundle"),
        "{}",
        error.message
    );
}

#[tokio::test]
async fn a_soap_fault_answered_with_200_is_a_failure_and_a_503_is_tried_again() {
    let w = build(Some(esb_setup("fault", tls_secret))).await;
    w.esb()
        .set(fake_tls::Behaviour::FailFirst { n: 2, status: 503 });
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    w.drain().await;
    assert_eq!(w.esb_ids().len(), 2, "two accepted, two waiting");
    assert_eq!(w.states_of(ESB).await[&CallState::Unsynced], 2);

    // The partner is back but its bus answers 200 with a SOAP fault.
    w.esb().set(fake_tls::Behaviour::Fault);
    w.later().await;
    let faulted: Vec<DeliveryRecord> = {
        let mut out = Vec::new();
        for id in FOR_ESB {
            let d = w.delivery_to(ESB, id).await;
            if d.delivery.state == CallState::AttemptedError {
                out.push(d);
            }
        }
        out
    };
    assert_eq!(faulted.len(), 2, "the fault is final: no third try");
    for d in &faulted {
        assert_eq!(d.delivery.attempts, 2);
        let error = d.delivery.error.as_ref().unwrap();
        assert_eq!(error.code, "destination_rejected");
        assert_eq!(error.status, Some(200));
        assert!(
            error.message.contains("failure_pattern"),
            "{}",
            error.message
        );
        assert!(
            error
                .answer
                .as_deref()
                .unwrap()
                .contains("CSR rejected the activity")
        );
    }
    assert_eq!(w.esb().received().len(), 2 + 2 + 2);

    // Fixed on the partner's side: a retry sends the two again, once.
    w.esb().set(fake_tls::Behaviour::Accept);
    w.retry_destination(ESB, &[CallState::AttemptedError]).await;
    w.drain().await;
    assert_eq!(sorted(w.esb_ids()), FOR_ESB);
    w.later().await;
    assert_eq!(w.esb().received().len(), 2 + 2 + 2 + 2, "nothing more");
}

impl World {
    /// `GET /status/night?date=…` or `POST /retry` through the status function's handler.
    async fn api(&self, event: Value) -> callsync_tests::harness::Answer {
        use callsync_tests::harness::{Answer, TEST_TOKEN, request, with_token};
        let ctx = self.stack.api_context();
        Answer::from(
            callsync::entrypoints::status::handle(
                &ctx,
                &self.svc,
                request(&with_token(event, Some(TEST_TOKEN))),
            )
            .await,
        )
    }

    async fn status_route(&self) -> Value {
        use callsync_tests::harness::{event, for_candidate};
        let mut get = for_candidate(event("status-get.json"), "night");
        get["rawQueryString"] = format!("date={DAY}").into();
        get["queryStringParameters"] = json!({"date": DAY.to_string()});
        let a = self.api(get).await;
        assert_eq!(a.status, 200, "{}", a.body);
        a.json()
    }

    async fn retry_route(&self, body: Value) -> callsync_tests::harness::Answer {
        let mut post = callsync_tests::harness::event("retry-post.json");
        post["body"] = body.to_string().into();
        self.api(post).await
    }
}

#[tokio::test]
async fn the_status_route_counts_each_destination_and_the_retry_route_retries_one() {
    let w = world().await;
    // The receiver refuses everything: final answers, the deliveries end in errors.
    w.receiver.set(Behaviour::Fail(422));
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    w.drain().await;

    let s = w.status_route().await;
    let hook = &s["destinations"][HOOK];
    assert_eq!(hook["kind"], "webhook", "{s:#}");
    assert_eq!(hook["total"], 10);
    assert_eq!(
        hook["by_state"],
        json!({"attempted_error": 7, "ignored": 2, "unattempted_error": 1})
    );
    let errors = hook["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 8, "{hook:#}");
    assert!(
        errors.iter().any(|e| e.to_string().contains("422")),
        "the receiver's answer is shown: {hook:#}"
    );
    // The calls' own status is VAN's: 1010 refused there, and nothing of the webhook's.
    assert_eq!(s["by_state"]["finished"], 8, "{s:#}");
    // VAN and the CSV are destinations on the same page, counted from the calls' own
    // deliveries: seven calls posted (six taken, 1010 refused), the two no-answers exported.
    // The unknown result went to neither, so neither counts it.
    let van = &s["destinations"]["van"];
    assert_eq!(van["kind"], "van", "{s:#}");
    assert_eq!(van["total"], 7, "{s:#}");
    assert_eq!(
        van["by_state"],
        json!({"finished": 6, "attempted_error": 1}),
        "{s:#}"
    );
    let van_errors = van["errors"].as_array().unwrap();
    assert_eq!(van_errors.len(), 1, "{van:#}");
    assert_eq!(van_errors[0]["call_id"], "1010", "{van:#}");
    let csv = &s["destinations"]["csv"];
    assert_eq!(csv["kind"], "csv", "{s:#}");
    assert_eq!(csv["by_state"], json!({"finished": 2}), "{s:#}");
    assert_eq!(csv["errors"], json!([]), "{s:#}");

    // An unknown destination is a 404 naming the ones there are.
    let unknown = w
        .retry_route(json!({"candidate": "night", "date": DAY.to_string(), "destination": "crm"}))
        .await;
    assert_eq!(unknown.status, 404, "{}", unknown.body);
    assert_eq!(
        unknown.json()["error"],
        "no_such_destination",
        "{}",
        unknown.body
    );
    assert!(unknown.body.contains("crm-hook"), "{}", unknown.body);

    // The receiver is fixed; a retry of that destination alone sends its seven once.
    w.receiver.set(Behaviour::Accept);
    let retried = w
        .retry_route(json!({"candidate": "night", "date": DAY.to_string(), "destination": HOOK}))
        .await;
    assert_eq!(retried.status, 200, "{}", retried.body);
    w.drain().await;
    assert_eq!(sorted(w.accepted_ids()), HOOKED);
    assert_eq!(w.van.canvass_posts().len(), 6, "VAN was not retried");
    let s = w.status_route().await;
    assert_eq!(
        s["destinations"][HOOK]["by_state"],
        json!({"finished": 7, "ignored": 2, "unattempted_error": 1})
    );
}

#[tokio::test]
async fn the_sample_candidate_with_every_destination_is_accepted_as_written() {
    use callsync::entrypoints::configure;
    use callsync_tests::harness::{Answer, TEST_TOKEN, event, request, with_token};
    let w = world().await;
    let put = with_token(event("candidates-put-destinations.json"), Some(TEST_TOKEN));
    let a = Answer::from(configure::handle(&w.stack.api_context(), request(&put)).await);
    assert_eq!(a.status, 200, "{}", a.body);
    let demo = w
        .svc
        .candidate(&CandidateSlug::parse("demo").unwrap())
        .await
        .unwrap();
    let kinds: Vec<(&str, &str)> = demo
        .destinations
        .iter()
        .map(|d| (d.name.as_str(), d.kind()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("crm-hook", "webhook"),
            ("city-esb", "http_template"),
            ("warehouse", "sql"),
            ("supporters", "action_network")
        ]
    );
}

/// Every call of the night and every delivery ended in a terminal state.
async fn all_terminal(w: &World) -> bool {
    let calls = w.svc.ledger.day(&day()).await.unwrap();
    let deliveries = w.deliveries().await;
    calls.iter().all(|c| {
        !matches!(
            c.delivery.state,
            CallState::Unsynced | CallState::InProgress
        )
    }) && deliveries.values().all(|d| {
        !matches!(
            d.delivery.state,
            CallState::Unsynced | CallState::InProgress
        )
    })
}

#[tokio::test]
async fn soak_workers_killed_mid_batch_with_a_flaky_receiver_lose_nothing_and_repeat_only_with_one_key()
 {
    const CALLS: u64 = 60;
    let w = world().await;
    w.van.add_people(200_001..=200_000 + CALLS);
    w.receiver.set(Behaviour::Flaky);
    let rows: Vec<String> = (1..=CALLS)
        .map(|i| {
            cdr_row(
                2000 + i,
                &format!("ny14-van-{}", 200_000 + i),
                &format!("212-555-{:04}", 2000 + i),
                &format!("21-11-2026 20:{:02}:{:02}", i / 60, i % 60),
                if i % 3 == 0 {
                    "Agent Cust 3"
                } else {
                    "Agent Cust 1"
                },
            )
        })
        .collect();
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &rows).await;
    w.run().await;

    // Half the batches die somewhere in their first 400 ms — before, during or after a
    // send, between the lease and the receipt — while the receiver fails a third of its
    // requests. Each round, the clock moves past back-offs and leases and the tick sweeps.
    let mut kills = 0u32;
    let mut kill = || {
        fastrand::bool().then(|| {
            kills += 1;
            Duration::from_millis(fastrand::u64(0..400))
        })
    };
    let mut rounds = 0;
    while rounds < 40 && !all_terminal(&w).await {
        drain_killing(&w.stack, &w.svc, &mut kill).await;
        w.clock.advance(Duration::from_secs(4 * 3600));
        w.tick().await;
        rounds += 1;
    }
    // The workers stop dying; whatever is left finishes.
    for _ in 0..20 {
        if all_terminal(&w).await {
            break;
        }
        w.later().await;
    }
    assert!(
        all_terminal(&w).await,
        "after {rounds} rounds and {kills} kills"
    );

    // Every delivery is terminal; each finished one was accepted by the receiver, and
    // every request the receiver accepted for a call carries that delivery's one key.
    let deliveries = w.deliveries().await;
    assert_eq!(deliveries.len() as u64, CALLS);
    let mut accepted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut accepted_requests = 0;
    for r in w.receiver.delivered() {
        accepted_requests += 1;
        accepted
            .entry(r.body["call"]["id"].as_str().unwrap().to_owned())
            .or_default()
            .insert(r.idempotency_key.unwrap());
    }
    for (id, d) in &deliveries {
        match d.delivery.state {
            CallState::Finished => {
                let keys = &accepted[id];
                assert_eq!(keys.len(), 1, "{id}: one key for every repeat: {keys:?}");
                let Some(Receipt::Http {
                    idempotency_key, ..
                }) = &d.delivery.receipt
                else {
                    panic!("{id}: a finished delivery has its receipt")
                };
                assert!(
                    keys.contains(idempotency_key),
                    "{id}: the receipt names what was accepted"
                );
            }
            // Ten failed tries in a row: possible with this receiver, never silent.
            CallState::AttemptedError => assert!(d.delivery.error.is_some(), "{id}"),
            other => panic!("{id}: {other}"),
        }
    }
    let finished = deliveries
        .values()
        .filter(|d| d.delivery.state == CallState::Finished)
        .count();
    assert!(
        finished as u64 >= CALLS - 2,
        "{finished} of {CALLS} delivered"
    );
    // A repeat is only a worker dying between the receiver's 2xx and the receipt.
    let repeats = accepted_requests - accepted.len();
    assert!(repeats as u32 <= kills, "{repeats} repeats, {kills} kills");

    // VAN: every call terminal, none lost, posted at most once beyond the same window.
    let calls = w.svc.ledger.day(&day()).await.unwrap();
    assert_eq!(calls.len() as u64, CALLS);
    let posts = w.van.canvass_posts().len();
    assert!(
        posts as u64 >= CALLS && posts as u64 <= CALLS + u64::from(kills),
        "{posts} posts"
    );
    // (The clock moved on by days: the ticks also ran the empty days after.)
    let reports: Vec<Value> = w
        .report
        .bodies()
        .into_iter()
        .filter(|b| b["text"].as_str().unwrap().contains("calls of 2026-11-21"))
        .collect();
    assert_eq!(reports.len(), 1, "the night is reported once: {reports:#?}");
    println!(
        "soak: {CALLS} calls, {rounds} rounds, {kills} workers killed, {} receiver requests, {repeats} webhook repeats (same key), {} VAN posts",
        w.receiver.received().len(),
        posts
    );
}

#[tokio::test]
async fn a_nightly_run_killed_at_any_step_of_the_fan_out_is_finished_by_the_next_run_once() {
    let w = world().await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    // The run dies after 5, 10, 20 … ms: between reading, recording the calls, planning the
    // deliveries, exporting the CSV and queueing. Each next run starts from what the last
    // one left.
    let mut killed = 0;
    for ms in [
        5u64, 10, 20, 40, 60, 80, 120, 160, 200, 240, 280, 320, 400, 500, 650,
    ] {
        let run = nightly_event::handle(
            &w.svc,
            json!({"candidate": "night", "date": DAY.to_string()}),
        );
        if tokio::time::timeout(Duration::from_millis(ms), run)
            .await
            .is_err()
        {
            killed += 1;
        }
        println!(
            "killed after {ms} ms: {} calls, {} deliveries recorded",
            w.svc.ledger.day(&day()).await.unwrap().len(),
            w.deliveries().await.len()
        );
        // A dead run's lock runs out before the next one.
        w.clock.advance(Duration::from_secs(3600));
    }
    assert!(killed > 0, "at least one run was cut short");
    w.run().await;
    w.drain().await;
    w.later().await;
    w.tick().await;

    assert_eq!(sorted(w.accepted_ids()), HOOKED, "each webhook call once");
    assert_eq!(w.receiver.received().len(), 7, "nothing sent twice");
    assert_eq!(w.van.canvass_posts().len(), 6, "each VAN call once");
    assert!(all_terminal(&w).await);
    let exported: Vec<String> = objects(&w.svc, "exports/night/")
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(exported.len(), 1, "one CSV: {exported:?}");
    let reports: Vec<Value> = w
        .report
        .bodies()
        .into_iter()
        .filter(|b| b["text"].as_str().unwrap().contains("calls of 2026-11-21"))
        .collect();
    assert_eq!(reports.len(), 1, "{reports:#?}");
}

/// Panics anywhere in this test process (a caught one too: `sync-call` hands a message
/// whose delivery panicked back to the queue, which would hide the defect).
static PANICS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A number a document may carry, biased to the edges: zero, negatives, subnormals, the
/// ends of every documented range, and the largest finite values.
fn hostile_f64(rng: &mut fastrand::Rng) -> f64 {
    const EDGES: [f64; 16] = [
        0.0,
        -0.0,
        -1.0,
        5e-324,
        f64::MIN_POSITIVE,
        1e-300,
        1e-100,
        1e-19,
        1.0 / 60.0 - 1e-12,
        1.0 / 60.0,
        0.5,
        4.0,
        1000.0,
        1_000.000_001,
        1e300,
        f64::MAX,
    ];
    if rng.bool() {
        EDGES[rng.usize(..EDGES.len())]
    } else {
        let sign = if rng.u8(..10) == 0 { -1.0 } else { 1.0 };
        sign * 10f64.powi(rng.i32(-320..=308)) * (1.0 + rng.f64())
    }
}

fn hostile_u64(rng: &mut fastrand::Rng) -> u64 {
    const EDGES: [u64; 8] = [0, 1, 2, 30, 31, 3600, u64::MAX / 1000, u64::MAX];
    if rng.bool() {
        EDGES[rng.usize(..EDGES.len())]
    } else {
        rng.u64(..)
    }
}

#[tokio::test]
async fn seeded_fuzz_of_every_numeric_destination_setting_never_panics_sync_call() {
    std::panic::set_hook(Box::new(|info| {
        PANICS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        eprintln!("panic: {info}");
    }));
    let mut w = world().await;
    // A slow pace hands the rest of its group back at the batch's deadline: keep it short.
    w.night.svc.settings.post_deadline = Duration::from_millis(1500);
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    // A templated destination (unsigned: the receiver answers it 401) beside the webhook, so both kinds' numbers are tried.
    let plain = |rate: Option<f64>, timeout: Option<u64>| {
        let mut d = json!({"name": "plain", "kind": "http_template", "url": w.receiver.url,
                           "format": "json", "body": "{\"id\": {{ call.id }}}",
                           "result_codes": {"Agent Cust 1": "S1"}});
        if let Some(r) = rate {
            d["rate_limit"] = json!(r);
        }
        if let Some(t) = timeout {
            d["timeout_secs"] = json!(t);
        }
        serde_json::from_value::<callsync::destinations::DestinationDoc>(d).unwrap()
    };
    let mut base = doc(&w.report.url, Some(&w.receiver.url), "Strong support");
    base.destinations.push(plain(None, None));
    w.svc.config.put(&base).await.unwrap();
    w.run().await;
    let egress = w.stack.api_context().connectors.egress;

    let message = |id: &str, destination: Option<&str>| {
        let mut m = aws_lambda_events::sqs::SqsMessage::default();
        m.message_id = Some(format!("{id}-{}", destination.unwrap_or("van")));
        m.body = Some(
            json!({"candidate": "night", "date": DAY.to_string(), "call_id": id,
                   "destination": destination})
            .to_string(),
        );
        m
    };
    let mut rng = fastrand::Rng::with_seed(0x5eed_2026);
    for case in 0..24 {
        let rate = hostile_f64(&mut rng);
        let timeout = hostile_u64(&mut rng);
        let mut fuzzed = base.clone();
        for d in &mut fuzzed.destinations[1..] {
            d.rate_limit = Some(if rng.bool() {
                rate
            } else {
                hostile_f64(&mut rng)
            });
            let t = if rng.bool() {
                timeout
            } else {
                hostile_u64(&mut rng)
            };
            d.settings.insert("timeout_secs".into(), json!(t));
        }
        // What PUT would say of it; stored whatever it says, as a document from before
        // these checks would be.
        let accepted = callsync::destinations::Compiled::from_doc(fuzzed.clone(), egress).is_ok();
        w.svc.config.put(&fuzzed).await.unwrap();
        // Every delivery of the day waits again, so each case sends.
        for destination in [HOOK, "plain"] {
            for mut d in w.svc.ledger.deliveries(&day(), destination).await.unwrap() {
                if d.payload.is_some() {
                    d.delivery = callsync::ledger::Delivery::new(CallState::Unsynced);
                    assert!(w.svc.ledger.replace_delivery(&mut d).await.unwrap());
                }
            }
        }
        let mut event = aws_lambda_events::sqs::SqsEvent::default();
        event.records.push(message("1001", None));
        for id in HOOKED {
            event.records.push(message(id, Some(HOOK)));
        }
        for id in ["1001", "1003", "1005"] {
            event.records.push(message(id, Some("plain")));
        }
        let answer = callsync::entrypoints::sync_call::handle(&w.svc, event.clone()).await;
        let what = format!("case {case}: rate {rate:e}, timeout {timeout}, accepted {accepted}");
        assert_eq!(
            PANICS.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "{what}"
        );
        let failed: BTreeSet<String> = answer
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.clone())
            .collect();
        assert!(
            !failed.contains("1001-van"),
            "{what}: VAN's call is its own"
        );
        for destination in [HOOK, "plain"] {
            for d in w.svc.ledger.deliveries(&day(), destination).await.unwrap() {
                if d.payload.is_none() {
                    continue;
                }
                let state = d.delivery.state;
                let id = format!("{}-{destination}", d.key.call.call_id);
                if !event
                    .records
                    .iter()
                    .any(|m| m.message_id.as_deref() == Some(&id))
                {
                    continue;
                }
                if accepted && failed.contains(&id) {
                    // Not started before the batch's deadline (a slow pace): handed back.
                    assert_eq!(state, CallState::Unsynced, "{what}: {id}");
                } else if accepted {
                    // Sent: taken, or refused by the receiver (the unsigned kind's 401).
                    let refused = d.delivery.error.as_ref().and_then(|e| e.status);
                    assert!(
                        state == CallState::Finished
                            || (state == CallState::AttemptedError && refused == Some(401)),
                        "{what}: {id} {state} {:?}",
                        d.delivery.error
                    );
                } else {
                    // The stored document is refused where it is loaded: nothing is sent,
                    // and the error says why.
                    assert_eq!(state, CallState::UnattemptedError, "{what}: {id}");
                    assert_eq!(
                        d.delivery.error.as_ref().unwrap().code,
                        "candidate_unusable",
                        "{what}: {id}"
                    );
                }
            }
        }
    }
}

#[tokio::test]
async fn call_data_cannot_change_the_shape_of_a_partners_request() {
    let w = world().await;
    // Two calls whose data would reshape a request if it were pasted in: an agent login of
    // "..", and a first name that closes the JSON string it lands in.
    let hostile_name = r#"x", "admin": true, "y": ""#;
    let csv_name = format!("\"{}\"", hostile_name.replace('"', "\"\""));
    let rows = vec![
        format!(
            "2001,ny14-van-100001,{csv_name},Doe,212-555-0101,21-11-2026 18:01:00,21-11-2026 18:01:00,21-11-2026 18:01:00,agent7,Agent Cust 1,C1"
        ),
        "2002,ny14-van-100002,Pat,Doe,212-555-0102,21-11-2026 18:02:00,21-11-2026 18:02:00,21-11-2026 18:02:00,..,Agent Cust 1,C1".to_owned(),
    ];
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &rows).await;
    let partner = |name: &str, url: String| {
        serde_json::from_value::<callsync::destinations::DestinationDoc>(json!({
            "name": name, "kind": "http_template", "url": url, "format": "json",
            "body": "{\"id\": {{ call.id }}, \"name\": {{ contact.first_name }}}",
            "result_codes": {"Agent Cust 1": "S1"}, "rate_limit": 50
        }))
        .unwrap()
    };
    let mut document = doc(&w.report.url, None, "Strong support");
    document
        .destinations
        .push(partner("by-body", w.receiver.url.clone()));
    document.destinations.push(partner(
        "by-path",
        format!("{}/{{{{ call.agent }}}}/activity", w.receiver.url),
    ));
    w.svc.config.put(&document).await.unwrap();
    w.run().await;
    w.drain().await;

    // The JSON body kept its two fields; the name arrived as one string value.
    let bodies: Vec<Value> = w.receiver.received().into_iter().map(|r| r.body).collect();
    let sent = bodies.iter().find(|b| b["id"] == "2001").unwrap();
    assert_eq!(sent.as_object().unwrap().len(), 2, "{sent}");
    assert_eq!(sent["name"], hostile_name);
    assert!(sent.get("admin").is_none());

    // The ".." agent would have climbed the partner's path: nothing was sent for it, and
    // the delivery says which template and why, without the value.
    let climbed = w.delivery_to("by-path", "2002").await;
    assert_eq!(climbed.delivery.state, CallState::UnattemptedError);
    let error = climbed.delivery.error.unwrap();
    assert!(error.message.contains("url"), "{}", error.message);
    assert!(error.message.contains("segment"), "{}", error.message);
    assert_eq!(climbed.delivery.attempts, 0, "never sent");
    // The other call went to the same template's path as its own segment.
    assert_eq!(
        w.delivery_to("by-path", "2001").await.delivery.state,
        CallState::AttemptedError,
        "sent (the receiver has no such path and says 404)"
    );
}

#[tokio::test]
async fn a_webhook_receiver_with_a_private_ca_is_told_what_the_webhook_kind_takes() {
    let w = build(Some(esb_setup("hook-tls", tls_secret))).await;
    // The webhook pointed at the partner's server: a private CA, and client certificates.
    let document = doc(&w.report.url, Some(&w.esb().url), "Strong support");
    w.svc.config.put(&document).await.unwrap();
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()[..1]).await;
    w.run().await;
    w.drain().await;
    assert!(w.esb().received().is_empty());
    let d = w.delivery("1001").await;
    assert_eq!(d.delivery.state, CallState::UnattemptedError);
    let error = d.delivery.error.unwrap();
    assert_eq!(error.code, "destination_setup");
    assert!(
        error.message.contains("does not verify")
            && error
                .message
                .contains("the webhook trusts only certificates from public CAs"),
        "{}",
        error.message
    );
    assert!(
        !error.message.contains("in the destination's secret"),
        "the webhook's secret takes no certificates: {}",
        error.message
    );
}

#[tokio::test]
async fn a_template_that_passes_with_the_sample_but_not_a_real_call_fails_that_call_alone() {
    let w = world().await;
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()[..2]).await;
    // Quiet for the sample call; for any other, about 3.8 MB from loops over the last
    // name — past the body's 1 MiB cap, which stops the render as it grows.
    let body = format!(
        "{{% if call.id != 'cdr-2026-11-03-000123' %}}{{% for a in contact.last_name %}}{{% for b in contact.last_name %}}{}{{% endfor %}}{{% endfor %}}{{% endif %}}",
        "x".repeat(60_000)
    );
    let mut document = doc(&w.report.url, Some(&w.receiver.url), "Strong support");
    document.destinations.push(
        serde_json::from_value(json!({
            "name": "greedy", "kind": "http_template", "url": w.receiver.url,
            "format": "text", "body": body,
            "result_codes": {"Agent Cust 1": "S", "Agent Cust 3": "W"}
        }))
        .unwrap(),
    );
    w.svc.config.put(&document).await.unwrap();
    w.run().await;
    w.drain().await;
    for id in ["1001", "1002"] {
        let d = w.delivery_to("greedy", id).await;
        assert_eq!(d.delivery.state, CallState::UnattemptedError, "{id}");
        let message = d.delivery.error.unwrap().message;
        assert!(
            message.contains("body") && message.contains("over 1048576 bytes"),
            "{message}"
        );
    }
    // The night's other deliveries went on: VAN and the webhook took both calls.
    assert_eq!(w.van.canvass_posts().len(), 2);
    assert_eq!(sorted(w.accepted_ids()), ["1001", "1002"]);
}

/// The bodies of the messages waiting on `queue` (the stack's variable naming it), each
/// received once and made visible again for the workers.
async fn waiting_on(w: &World, queue: &str) -> Vec<Value> {
    let sqs = aws_sdk_sqs::Client::new(&w.stack.aws);
    let url = &w.stack.env[queue];
    let mut bodies = Vec::new();
    let mut handles = Vec::new();
    loop {
        let messages = callsync_tests::night::receive(&sqs, url, 60).await;
        if messages.is_empty() {
            break;
        }
        for m in &messages {
            bodies.push(serde_json::from_str(m.body().unwrap()).unwrap());
            handles.push(m.receipt_handle().unwrap().to_owned());
        }
    }
    for handle in handles {
        callsync_tests::night::release(&sqs, url, handle).await;
    }
    bodies
}

#[tokio::test]
async fn a_partner_that_stalls_all_night_never_shares_a_batch_with_van() {
    let w = world().await;
    w.receiver.set(Behaviour::Stall);
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    // VAN's calls wait in their own queue, the webhook's deliveries in theirs: a worker's
    // batch holds one or the other, so VAN's workers never wait on the stalled partner.
    let calls = waiting_on(&w, "CALLSYNC_SYNC_QUEUE_URL").await;
    let deliveries = waiting_on(&w, "CALLSYNC_DELIVERY_QUEUE_URL").await;
    assert_eq!(calls.len(), 7, "{calls:?}");
    assert!(
        calls.iter().all(|m| m.get("destination").is_none()),
        "{calls:?}"
    );
    assert_eq!(deliveries.len(), 7, "{deliveries:?}");
    assert!(
        deliveries.iter().all(|m| m["destination"] == HOOK),
        "{deliveries:?}"
    );
    w.drain().await;
    assert_eq!(w.van.canvass_posts().len(), 6, "VAN took its calls");
    assert!(
        w.receiver.delivered().is_empty(),
        "the partner took nothing"
    );
    assert_eq!(
        w.hook_states().await[&CallState::Unsynced],
        7,
        "the partner's deliveries wait for their next try"
    );
}

#[tokio::test]
async fn a_client_key_that_is_not_the_certificates_is_named_before_anything_is_sent() {
    // The partner's certificate with the key of another: a mix-up when the secret was filled.
    let mut mixed_up = Value::Null;
    let w = build(Some(esb_setup("mixed-up", |pki| {
        let (_, other_key) = pki.stranger_client();
        mixed_up = json!({"client_certificate": pki.client_cert_pem, "client_key": other_key,
                          "ca_bundle": pki.ca_pem});
        tls_secret(pki)
    })))
    .await;
    let sm = aws_sdk_secretsmanager::Client::new(&w.stack.aws);
    let secret_name = w.esb.as_ref().unwrap().secret_name.clone();
    let put = |value: Value| {
        sm.put_secret_value()
            .secret_id(&secret_name)
            .secret_string(value.to_string())
            .send()
    };
    put(mixed_up.clone()).await.unwrap();
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()[..1]).await;

    // Found before the night: it does not run, and says why without quoting the key.
    let refused = nightly_event::handle(
        &w.svc,
        json!({"candidate": "night", "date": DAY.to_string()}),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(
        refused.contains("client_key does not belong to client_certificate"),
        "{refused}"
    );
    assert!(!refused.contains("PRIVATE KEY"), "{refused}");
    assert!(w.svc.ledger.day(&day()).await.unwrap().is_empty());

    // Mixed up after the night was planned: the send finds it before connecting. (Each
    // step with services of its own: a function instance keeps the secrets it read.)
    put(tls_secret(&w.esb.as_ref().unwrap().pki)).await.unwrap();
    nightly_event::handle(
        &services(&w.stack, w.clock.clone()),
        json!({"candidate": "night", "date": DAY.to_string()}),
    )
    .await
    .unwrap();
    put(mixed_up).await.unwrap();
    drain(&w.stack, &services(&w.stack, w.clock.clone())).await;
    assert!(w.esb().received().is_empty());
    assert_eq!(w.esb().refused_handshakes(), 0, "no connection was tried");
    let d = w.delivery_to(ESB, "1001").await;
    assert_eq!(d.delivery.state, CallState::UnattemptedError);
    let error = d.delivery.error.unwrap();
    assert_eq!(error.code, "destination_setup");
    assert!(
        error
            .message
            .contains("client_key does not belong to client_certificate"),
        "{}",
        error.message
    );
    assert!(!error.message.contains("PRIVATE KEY"), "{}", error.message);
}

#[tokio::test]
async fn a_partner_that_stalls_costs_a_batch_one_timeout_and_holds_back_no_other_destination() {
    let w = world().await;
    w.receiver.set(Behaviour::Stall);
    // A second receiver beside the stalled one, in the same lane.
    let healthy = Receiver::start(SIGNING_SECRET).await;
    let mut document = doc(&w.report.url, Some(&w.receiver.url), "Strong support");
    let mut second = document.destinations[1].clone();
    second.name = "second-hook".into();
    second.settings.insert("url".into(), json!(healthy.url));
    document.destinations.push(second);
    w.svc.config.put(&document).await.unwrap();
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;

    // One batch holding every delivery of both, the stalled partner's first.
    let message = |id: &str, destination: &str| {
        let mut m = aws_lambda_events::sqs::SqsMessage::default();
        m.message_id = Some(format!("{id}-{destination}"));
        m.body = Some(
            json!({"candidate": "night", "date": DAY.to_string(), "call_id": id,
                   "destination": destination})
            .to_string(),
        );
        m
    };
    let mut event = aws_lambda_events::sqs::SqsEvent::default();
    for destination in [HOOK, "second-hook"] {
        for id in HOOKED {
            event.records.push(message(id, destination));
        }
    }
    let answer = callsync::entrypoints::sync_call::handle(&w.svc, event).await;
    assert!(
        answer.batch_item_failures.is_empty(),
        "nothing is left to the visibility timeout: {:?}",
        answer.batch_item_failures
    );

    // The healthy destination took everything, in the batch the stalled one was in.
    let accepted: Vec<String> = healthy
        .delivered()
        .iter()
        .map(|r| r.body["call"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(sorted(accepted), HOOKED);
    // The stalled partner got one wave of sends (one timeout); the rest of its messages
    // went back to the queue untried, not waited through one timeout after another.
    let wave = w.svc.settings.destination_concurrency;
    assert_eq!(w.receiver.received().len(), wave);
    let deliveries = w.deliveries().await;
    let deliveries: Vec<&DeliveryRecord> = HOOKED.iter().map(|id| &deliveries[*id]).collect();
    let tried: Vec<_> = deliveries
        .iter()
        .filter(|d| d.delivery.attempts == 1)
        .collect();
    let untried: Vec<_> = deliveries
        .iter()
        .filter(|d| d.delivery.attempts == 0)
        .collect();
    assert_eq!(tried.len(), wave);
    assert_eq!(untried.len(), HOOKED.len() - wave);
    for d in tried {
        assert_eq!(d.delivery.state, CallState::Unsynced);
        assert!(d.delivery.next_attempt_at.is_some(), "backs off: {d:?}");
    }
    for d in untried {
        assert_eq!(d.delivery.state, CallState::Unsynced);
        assert_eq!(d.delivery.next_attempt_at, None, "not a failed try: {d:?}");
    }
    // Every one of the stalled partner's deliveries has a message waiting to come back.
    let sqs = aws_sdk_sqs::Client::new(&w.stack.aws);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&w.stack.env["CALLSYNC_DELIVERY_QUEUE_URL"])
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed: usize = attributes.attributes().unwrap()
        [&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed]
        .parse()
        .unwrap();
    assert_eq!(delayed, HOOKED.len(), "one delayed message per delivery");
}

#[tokio::test]
async fn a_destination_whose_schedule_is_taken_hands_its_messages_back_unleased() {
    let w = world().await;
    w.svc
        .config
        .put(&doc(&w.report.url, Some(&w.receiver.url), "Strong support"))
        .await
        .unwrap();
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &night_rows()).await;
    w.run().await;
    // Other workers have taken the webhook's next minute of slots.
    let taken = callsync::ports::RateState {
        next_ms: jiff::Timestamp::now().as_millisecond() + 60_000,
        slow: 1.0,
        hit_at_ms: 0,
        version: 1,
    };
    let key = format!("webhook/night/{HOOK}");
    assert!(w.svc.rates.put_rate(&key, &taken, None).await.unwrap());

    let messages: Vec<SyncMessage> = HOOKED
        .iter()
        .map(|id| SyncMessage {
            candidate: CandidateSlug::parse("night").unwrap(),
            date: DAY,
            call_id: CallId((*id).into()),
            destination: Some(HOOK.into()),
        })
        .collect();
    let before = queued(&w).await;
    let outcomes = callsync::deliver::deliver_batch(&w.svc, &messages).await;
    // Nothing sent, nothing left to the visibility timeout: every message went back to the
    // queue with a delay, never leased — no attempt counted, no back-off.
    assert!(w.receiver.received().is_empty());
    assert!(
        outcomes.iter().all(|o| *o == Outcome::Skipped),
        "{outcomes:?}"
    );
    let deliveries = w.deliveries().await;
    let waiting: Vec<&DeliveryRecord> = HOOKED
        .iter()
        .map(|id| &deliveries[*id])
        .filter(|d| d.delivery.state != CallState::Finished)
        .collect();
    assert_eq!(waiting.len(), HOOKED.len());
    for d in &waiting {
        assert_eq!(d.delivery.state, CallState::Unsynced);
        assert_eq!(d.delivery.attempts, 0, "never leased: {d:?}");
        assert_eq!(d.delivery.lease_id, None);
        assert_eq!(d.delivery.next_attempt_at, None, "not a failed try: {d:?}");
    }
    // Each back on the queue, held back until about when the schedule has slots again.
    let after = queued(&w).await;
    assert_eq!(after.0, before.0);
    assert_eq!(after.1, before.1 + HOOKED.len(), "one delayed message each");
}

/// Messages on the delivery queue: visible, and delayed.
async fn queued(w: &World) -> (usize, usize) {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let sqs = aws_sdk_sqs::Client::new(&w.stack.aws);
    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&w.stack.env["CALLSYNC_DELIVERY_QUEUE_URL"])
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let attributes = attributes.attributes().unwrap();
    let count = |a: A| attributes[&a].parse::<usize>().unwrap();
    (
        count(A::ApproximateNumberOfMessages),
        count(A::ApproximateNumberOfMessagesDelayed),
    )
}
