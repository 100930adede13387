//! A night on the local stack: the sync's real wiring (DynamoDB, S3, SQS and Secrets
//! Manager in moto, the fake VAN over HTTP, a webhook that records what it is sent), a
//! clock the test moves, CDR files to drop in the inbox, and the queue driven the way
//! Lambda's SQS event source drives `sync-call` (batches of ten, partial failures
//! redelivered).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
use callsync::adapters::env::Vars;
use callsync::entrypoints::sync_call;
use callsync::ports::Clock;
use callsync::services::Services;
use jiff::Timestamp;

use crate::fake_van::{FakeVan, VanData};
use crate::harness::LocalStack;

pub use crate::api::VAN_SECRET;

/// 09:00 in New York on 22 Nov 2026: past the 03:00 sync hour, so the 21st is due.
pub const MORNING: &str = "2026-11-22T14:00:00Z";

/// The candidate "night" the destination tests share: New York, VAN for synced calls
/// ("Agent Cust 1" strong support, "Agent Cust 3" a wrong number) and the CSV for "No
/// Answer", its report sent to `report`; each field of `more` (its `destinations`,
/// mostly) set over it.
pub fn night_doc(report: &str, more: serde_json::Value) -> callsync::candidate::CandidateDoc {
    let mut doc = serde_json::json!({
        "slug": "night", "display_name": "Night for Congress", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": "full",
        "van": {"secret_name": "callsync/night/van", "database_mode": "voter_file"},
        "results": [
            {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}], "sync": true},
            {"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
             "result_code_id": 20, "sync": true},
            {"result": "No Answer", "display_name": "No answer", "success": false,
             "result_code_id": 1, "csv": true}
        ],
        "notify": {"webhook_url": report}
    });
    for (field, value) in more.as_object().expect("`more` is an object") {
        doc[field] = value.clone();
    }
    serde_json::from_value(doc).expect("a candidate document")
}

/// What a destination test's night stands on: the fake VAN, a local stack, the sync's
/// services on a clock the test moves (at [`MORNING`]) and the webhook the report goes to.
#[derive(Debug)]
pub struct NightStack {
    pub van: FakeVan,
    pub stack: LocalStack,
    pub svc: Services,
    pub clock: Arc<TestClock>,
    pub report: Webhook,
}

impl NightStack {
    /// The fake VAN knowing the people `people` (by VAN id), and a local stack with the
    /// night's VAN key and `secrets`, reaching that VAN and what `vars` names.
    pub async fn up(
        people: std::ops::RangeInclusive<u64>,
        secrets: &[(&str, String)],
        vars: &[(&str, String)],
    ) -> NightStack {
        let van = FakeVan::start(VanData::demo()).await;
        van.add_people(people);
        let mut all_secrets = vec![("callsync/night/van", VAN_SECRET.to_owned())];
        all_secrets.extend(secrets.iter().cloned());
        let mut all_vars = vec![("CALLSYNC_VAN_BASE_URL", van.base_url())];
        all_vars.extend(vars.iter().cloned());
        let stack = LocalStack::up(&all_secrets, &all_vars).await;
        let clock = TestClock::new(MORNING);
        let svc = services(&stack, clock.clone());
        let report = Webhook::start().await;
        NightStack {
            van,
            stack,
            svc,
            clock,
            report,
        }
    }
}

/// A clock the test sets.
#[derive(Debug)]
pub struct TestClock(Mutex<Timestamp>);

impl TestClock {
    pub fn new(at: &str) -> Arc<Self> {
        Arc::new(Self(Mutex::new(at.parse().expect("an RFC 3339 instant"))))
    }

    pub fn set(&self, at: &str) {
        *self.0.lock().expect("lock") = at.parse().expect("an RFC 3339 instant");
    }

    pub fn advance(&self, by: Duration) {
        let mut now = self.0.lock().expect("lock");
        *now += by;
    }
}

impl Clock for TestClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().expect("lock")
    }
}

/// A webhook receiver on a local port that keeps every JSON body posted to it.
#[derive(Debug, Clone)]
pub struct Webhook {
    pub url: String,
    pub received: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let received: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let kept = Arc::clone(&received);
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |axum::Json(body): axum::Json<serde_json::Value>| {
                let kept = Arc::clone(&kept);
                async move {
                    kept.lock().expect("lock").push(body);
                    "ok"
                }
            }),
        );
        let (listener, local) = crate::fake_van::serve::bind(([127, 0, 0, 1], 0).into())
            .await
            .expect("bind a local port");
        crate::fake_van::serve::spawn(listener, app);
        let url = format!("http://{local}/hook");
        Webhook { url, received }
    }

    pub fn bodies(&self) -> Vec<serde_json::Value> {
        self.received.lock().expect("lock").clone()
    }
}

/// The sync's services on a local stack, with short retry waits and the given clock.
pub fn services(stack: &LocalStack, clock: Arc<TestClock>) -> Services {
    let mut svc = Services::build(&stack.aws, &Vars::from_map(stack.env.clone()))
        .expect("the template gives the sync functions every variable they need");
    svc.clock = clock;
    svc.connectors.van_options.retry.base_delay = Duration::from_millis(5);
    svc.connectors.van_options.retry.max_delay = Duration::from_millis(200);
    svc.connectors.van_options.retry.deadline = Duration::from_secs(20);
    svc.connectors.van_options.retry.max_attempts = 30;
    svc
}

/// The standard LiveVox CDR header.
pub const CDR_HEADER: &str = "id,account number,first name,last name,phone dialed,connect time,start time,finish time,caller login,result,campaign id";

/// One CDR line: `local` is `DD-MM-YYYY HH:MM:SS` in the candidate's zone.
pub fn cdr_row(id: u64, account: &str, phone: &str, local: &str, result: &str) -> String {
    format!("{id},{account},Pat,Doe {id},{phone},{local},{local},{local},agent7,{result},C1")
}

/// The destinations' test night, ten calls of 21 Nov 2026: 1001–1006 for VAN ("Agent
/// Cust 1", and "Agent Cust 3" — wrong numbers — for the even ones), 1007–1008 "No Answer"
/// on one shared phone, 1009 a result no mapping has ("Agent Cust 9"), and 1010 a person
/// VAN does not know (VAN refuses it).
pub fn ten_call_night() -> Vec<String> {
    let mut rows = Vec::new();
    for i in 1..=6u64 {
        let result = if i % 2 == 0 {
            "Agent Cust 3"
        } else {
            "Agent Cust 1"
        };
        rows.push(cdr_row(
            1000 + i,
            &format!("ny14-van-{}", 100_000 + i),
            &format!("212-555-01{i:02}"),
            &format!("21-11-2026 18:{i:02}:00"),
            result,
        ));
    }
    for i in 7..=8u64 {
        rows.push(cdr_row(
            1000 + i,
            &format!("ny14-van-{}", 100_000 + i),
            "212-555-0199",
            &format!("21-11-2026 19:{i:02}:00"),
            "No Answer",
        ));
    }
    rows.push(cdr_row(
        1009,
        "ny14-van-100009",
        "212-555-0109",
        "21-11-2026 19:30:00",
        "Agent Cust 9",
    ));
    rows.push(cdr_row(
        1010,
        "ny14-van-950000001",
        "212-555-0110",
        "21-11-2026 19:40:00",
        "Agent Cust 1",
    ));
    rows
}

/// `nightly` for `candidate`'s `date`, as the manual event runs it: the run's summary.
pub async fn run_day(
    svc: &Services,
    candidate: &str,
    date: jiff::civil::Date,
) -> serde_json::Value {
    callsync::entrypoints::nightly::handle(
        svc,
        serde_json::json!({"candidate": candidate, "date": date.to_string()}),
    )
    .await
    .expect("the nightly run")
}

/// `nightly`'s hourly tick, as EventBridge sends it.
pub async fn tick(svc: &Services) -> serde_json::Value {
    callsync::entrypoints::nightly::handle(
        svc,
        serde_json::json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
    )
    .await
    .expect("the tick")
}

pub async fn drop_cdr(svc: &Services, key: &str, rows: &[String]) {
    let mut text = String::from(CDR_HEADER);
    for r in rows {
        text.push('\n');
        text.push_str(r);
    }
    text.push('\n');
    svc.objects
        .put(key, text.into_bytes(), "text/csv")
        .await
        .expect("put the CDR file");
}

/// A candidate `slug` with one result, "Agent Cust 1" (Strong support), posted to VAN with
/// the secret `callsync/<slug>/van` (VAN's key at `van_rate` requests a second, when
/// given), and a night of `calls` such calls of people 100,001… run by `nightly` for
/// 2026-11-21: every call is on the queue when this returns.
pub async fn one_result_van_night(svc: &Services, slug: &str, calls: u64, van_rate: Option<f64>) {
    let doc = serde_json::from_value(serde_json::json!({
        "slug": slug, "display_name": "One result", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": "full",
        "van": {"secret_name": format!("callsync/{slug}/van"), "database_mode": "voter_file",
                "rate_limit": van_rate},
        "results": [{"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
                     "survey_responses": [{"question_id": 2300, "response_id": 9100}],
                     "sync": true}]
    }))
    .expect("the candidate");
    svc.config.put(&doc).await.expect("store the candidate");
    let rows: Vec<String> = (1..=calls)
        .map(|i| {
            cdr_row(
                1000 + i,
                &format!("ny14-van-{}", 100_000 + i),
                "212-555-0101",
                &format!("21-11-2026 18:{:02}:{:02}", i / 60, i % 60),
                "Agent Cust 1",
            )
        })
        .collect();
    drop_cdr(svc, &format!("inbox/{slug}/cdr.csv"), &rows).await;
    callsync::entrypoints::nightly::handle(
        svc,
        serde_json::json!({"candidate": slug, "date": "2026-11-21"}),
    )
    .await
    .expect("the night runs");
}

/// Drive `sync-call` from the queue until it is empty: batches of ten, failed messages
/// made visible again (as their visibility timeout would). Returns the batches handled.
pub async fn drain(stack: &LocalStack, svc: &Services) -> usize {
    drain_killing(stack, svc, &mut || None).await
}

/// [`drain`], with workers that die: for each batch `kill` may give a time after which the
/// worker is stopped wherever it is (its future dropped between any two requests, as a
/// Lambda killed by its timeout or a crash). A killed batch's messages come back, as
/// their visibility timeout would make them, with nothing of the batch recorded beyond
/// what the worker wrote before it died. Both queues `sync-call` reads are drained, a batch
/// from each in turn, as their two event sources would hand them over.
pub async fn drain_killing(
    stack: &LocalStack,
    svc: &Services,
    kill: &mut dyn FnMut() -> Option<Duration>,
) -> usize {
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let urls = [
        stack.env["CALLSYNC_SYNC_QUEUE_URL"].clone(),
        stack.env["CALLSYNC_DELIVERY_QUEUE_URL"].clone(),
    ];
    let mut batches = 0;
    let mut empty = 0;
    while empty < 2 && batches < 500 {
        let mut handled = 0;
        for url in &urls {
            if one_batch(&sqs, url, svc, kill).await {
                handled += 1;
            }
        }
        batches += handled;
        empty = if handled == 0 { empty + 1 } else { 0 };
    }
    batches
}

/// Up to ten of `url`'s messages, hidden from other receivers for `visibility_secs`.
pub async fn receive(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    visibility_secs: i32,
) -> Vec<aws_sdk_sqs::types::Message> {
    sqs.receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .visibility_timeout(visibility_secs)
        .send()
        .await
        .expect("receive")
        .messages
        .unwrap_or_default()
}

/// Make a received message of `url` visible again at once.
pub async fn release(sqs: &aws_sdk_sqs::Client, url: &str, handle: String) {
    sqs.change_message_visibility()
        .queue_url(url)
        .receipt_handle(handle)
        .visibility_timeout(0)
        .send()
        .await
        .expect("make visible again");
}

/// One `sync-call` invocation on a batch of `url`'s messages; false when there were none.
async fn one_batch(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    svc: &Services,
    kill: &mut dyn FnMut() -> Option<Duration>,
) -> bool {
    let messages = receive(sqs, url, 60).await;
    if messages.is_empty() {
        return false;
    }
    let mut handles = HashMap::new();
    let mut event = SqsEvent::default();
    for m in &messages {
        let id = m.message_id.clone().unwrap_or_default();
        handles.insert(id.clone(), m.receipt_handle.clone().unwrap_or_default());
        let mut record = SqsMessage::default();
        record.message_id = Some(id);
        record.body = m.body.clone();
        event.records.push(record);
    }
    let answer = match kill() {
        None => sync_call::handle(svc, event).await,
        Some(after) => {
            match tokio::time::timeout(after, sync_call::handle(svc, event)).await {
                Ok(answer) => answer,
                Err(_) => {
                    // Died: every message of the batch comes back.
                    let mut all = aws_lambda_events::sqs::SqsBatchResponse::default();
                    for id in handles.keys() {
                        let mut f = aws_lambda_events::sqs::BatchItemFailure::default();
                        f.item_identifier = id.clone();
                        all.batch_item_failures.push(f);
                    }
                    all
                }
            }
        }
    };
    let failed: Vec<String> = answer
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    for (id, handle) in handles {
        if failed.contains(&id) {
            release(sqs, url, handle).await;
        } else {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(handle)
                .send()
                .await
                .expect("delete");
        }
    }
    true
}

/// Objects under a prefix, as (key, bytes).
pub async fn objects(svc: &Services, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for o in svc.objects.list(prefix).await.expect("list") {
        let bytes = svc.objects.get(&o.key).await.expect("get");
        out.push((o.key, bytes));
    }
    out
}
