//! The nightly sync end to end: CDR files in the S3 inbox (moto) → `nightly` → ledger
//! (DynamoDB in moto) → SQS (moto) → `sync-call` → the fake VAN over HTTP, plus the CSV in
//! S3 and the report on a local webhook. Nothing of callsync's own is mocked.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use callsync::call::CallId;
use callsync::candidate::CandidateDoc;
use callsync::entrypoints::nightly as nightly_event;
use callsync::ledger::{CallKey, CallState, DayKey, Receipt};
use callsync::nightly;
use callsync::services::Services;
use callsync::values::CandidateSlug;
use callsync_tests::fake_livevox::{self, FakeLiveVox, LiveVoxData};
use callsync_tests::fake_van::{FakeVan, Fault, FaultKind, RateLimit, VanData};
use callsync_tests::harness::LocalStack;
use callsync_tests::night::{TestClock, Webhook, cdr_row, drain, drop_cdr, objects, services};
use jiff::civil::{Date, date};
use serde_json::{Value, json};

const VAN_SECRET: &str = r#"{"application_name":"callsync-demo","api_key":"demo-van-key"}"#;
const VAN_MYC_SECRET: &str = r#"{"application_name":"callsync-demo","api_key":"demo-myc-key"}"#;
const LIVEVOX_SECRET: &str = r#"{"access_token":"demo-lv-access","client_name":"callsync-demo","user_name":"demo","password":"demo-password"}"#;
/// 09:00 in New York on 22 Nov: past the 03:00 sync hour, so the 21st is due.
const MORNING: &str = "2026-11-22T14:00:00Z";
const DAY: Date = date(2026, 11, 21);

struct Night {
    van: FakeVan,
    livevox: FakeLiveVox,
    stack: LocalStack,
    svc: Services,
    clock: std::sync::Arc<TestClock>,
    hook: Webhook,
}

fn slug() -> CandidateSlug {
    CandidateSlug::parse("night").unwrap()
}

fn doc(strategy: Value, hook: &str) -> CandidateDoc {
    serde_json::from_value(json!({
        "slug": "night", "display_name": "Night for Congress", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": strategy,
        "van": {"secret_name": "callsync/night/van", "database_mode": "voter_file"},
        "results": [
            {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}],
             "activist_codes": [4400], "sync": true, "priority": 10},
            {"result": "Agent Cust 2", "display_name": "Lean support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9101}],
             "sync": true, "csv": true, "priority": 5},
            {"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
             "result_code_id": 20, "sync": true},
            {"result": "Agent Cust 5", "display_name": "Bad code", "success": false,
             "result_code_id": 999, "sync": true},
            {"result": "No Answer", "display_name": "No answer", "success": false,
             "result_code_id": 1, "csv": true},
            {"result": "Hung Up in Opening", "display_name": "Dropped", "success": false}
        ],
        "notify": {"webhook_url": hook}
    }))
    .unwrap()
}

/// The people the night's VAN database holds besides the demo's: every VAN id these tests
/// post to legitimately. 950000001 is left out on purpose: VAN does not know that person.
fn known_people() -> impl Iterator<Item = u64> {
    (100_001..=100_007)
        .chain([200_001])
        .chain(300_000..300_030)
        .chain([400_001, 410_001])
        .chain(500_001..=500_005)
        .chain(600_001..=600_004)
        .chain([700_001])
}

async fn night(strategy: Value) -> Night {
    let van = FakeVan::start(VanData::demo()).await;
    van.add_people(known_people());
    // LiveVox's demo account: 36 calls on 21 Nov (UTC), today 22 Nov.
    let livevox = FakeLiveVox::start(LiveVoxData::demo_for(date(2026, 11, 22))).await;
    let stack = LocalStack::up(
        &[
            ("callsync/night/van", VAN_SECRET.into()),
            ("callsync/night/van-myc", VAN_MYC_SECRET.into()),
            ("callsync/night/livevox", LIVEVOX_SECRET.into()),
        ],
        &[
            ("CALLSYNC_VAN_BASE_URL", van.base_url()),
            ("CALLSYNC_LIVEVOX_BASE_URL", livevox.base_url()),
        ],
    )
    .await;
    let clock = TestClock::new(MORNING);
    let svc = services(&stack, clock.clone());
    let hook = Webhook::start().await;
    svc.config.put(&doc(strategy, &hook.url)).await.unwrap();
    Night {
        van,
        livevox,
        stack,
        svc,
        clock,
        hook,
    }
}

impl Night {
    async fn run_event(&self, event: Value) -> Value {
        nightly_event::handle(&self.svc, event).await.unwrap()
    }

    async fn run(&self) -> Value {
        self.run_event(json!({"candidate": "night", "date": DAY.to_string()}))
            .await
    }

    async fn drain(&self) -> usize {
        drain(&self.stack, &self.svc).await
    }

    async fn tick(&self) -> Value {
        self.run_event(json!({"source": "aws.events", "detail-type": "Scheduled Event"}))
            .await
    }

    async fn states(&self, date: Date) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for r in self.svc.ledger.day(&day(date)).await.unwrap() {
            *out.entry(r.delivery.state.to_string()).or_default() += 1;
        }
        out
    }

    async fn state_of(&self, id: &str) -> callsync::ledger::CallRecord {
        self.svc
            .ledger
            .get(&CallKey {
                day: day(DAY),
                call_id: CallId(id.into()),
            })
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("call {id} is in the ledger"))
    }

    /// Requests (any answer) to post a result for this person.
    fn attempts_for(&self, van_id: u64) -> usize {
        self.van
            .count("POST", &format!("/people/{van_id}/canvassResponses"))
    }

    /// Results VAN accepted for this person.
    fn posts_for(&self, van_id: u64) -> usize {
        self.van
            .canvass_posts()
            .iter()
            .filter(|(id, _)| *id == van_id)
            .count()
    }
}

/// `n` VAN-bound calls (call ids from `first_id`, people 300000…) at noon on the day.
fn wrong_numbers(first_id: u64, n: u64) -> Vec<String> {
    (0..n)
        .map(|i| {
            cdr_row(
                first_id + i,
                &format!("ny14-van-{}", 300_000 + i),
                "212-555-0300",
                "21-11-2026 12:00:00",
                "Agent Cust 3",
            )
        })
        .collect()
}

fn day(date: Date) -> DayKey {
    DayKey {
        candidate: slug(),
        date,
    }
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// One of everything: posts, CSV rows, an ignored call, an unknown result, a result code
/// VAN refuses, a person VAN does not know, a bad row and a test account.
fn mixed_night() -> Vec<String> {
    vec![
        cdr_row(
            1001,
            "ny14-van-100001",
            "212-555-0101",
            "21-11-2026 18:04:11",
            "Agent Cust 1 (167)",
        ),
        cdr_row(
            1002,
            "ny14-van-100002",
            "212-555-0102",
            "21-11-2026 18:05:00",
            "Agent Cust 3",
        ),
        cdr_row(
            1003,
            "ny14-van-100003",
            "212-555-0103",
            "21-11-2026 18:06:00",
            "Agent Cust 2",
        ),
        cdr_row(
            1004,
            "ny14-van-100004",
            "212-555-0104",
            "21-11-2026 18:07:00",
            "No Answer",
        ),
        cdr_row(
            1005,
            "ny14-van-100005",
            "212-555-0105",
            "21-11-2026 18:08:00",
            "Hung Up in Opening",
        ),
        cdr_row(
            1006,
            "ny14-van-100006",
            "212-555-0106",
            "21-11-2026 18:09:00",
            "Agent Cust 9",
        ),
        cdr_row(
            1007,
            "ny14-van-100007",
            "212-555-0107",
            "21-11-2026 18:10:00",
            "Agent Cust 5",
        ),
        cdr_row(
            1008,
            "ny14-van-950000001",
            "212-555-0108",
            "21-11-2026 18:11:00",
            "Agent Cust 3",
        ),
        cdr_row(
            1009,
            "ny14-van-",
            "212-555-0109",
            "21-11-2026 18:12:00",
            "Agent Cust 1",
        ),
        cdr_row(
            1010,
            "TEST-1",
            "212-555-0110",
            "21-11-2026 18:13:00",
            "Agent Cust 1",
        ),
    ]
}

#[tokio::test]
async fn a_night_reaches_every_state_with_the_right_counts_and_one_report() {
    let n = night(json!("hybrid")).await;
    drop_cdr(&n.svc, "inbox/night/cdr-2026-11-21.csv", &mixed_night()).await;

    let summary = n.run().await;
    assert_eq!(summary["calls_read"], 8, "{summary:#}");
    assert_eq!(summary["bad_rows"], 1);
    assert_eq!(summary["test_rows"], 1);
    assert_eq!(summary["new_calls"], 9);
    // The file left the inbox once every row was recorded.
    assert!(objects(&n.svc, "inbox/night/").await.is_empty());
    assert_eq!(objects(&n.svc, "processed/night/").await.len(), 1);
    // Nothing is reported while calls are still queued.
    assert!(n.hook.bodies().is_empty());

    n.drain().await;
    n.tick().await;

    assert_eq!(
        n.states(DAY).await,
        counts(&[
            ("finished", 4),          // 1001, 1002 in VAN; 1003 (hybrid) and 1004 in the CSV
            ("attempted_error", 2),   // 1007: bad result code; 1008: VAN knows no such person
            ("ignored", 1),           // 1005
            ("unattempted_error", 2), // 1006: unknown result; 1009: bad account
        ])
    );
    assert_eq!(
        n.van.canvass_posts().len(),
        2,
        "1001 and 1002 were accepted"
    );
    for van_id in [100_001, 100_002, 100_007, 950_000_001] {
        assert_eq!(n.attempts_for(van_id), 1, "{van_id} was sent once");
    }
    let strong = n.state_of("1001").await;
    assert!(
        matches!(&strong.delivery.receipt, Some(Receipt::Van { status: 204, fingerprint, .. }) if fingerprint.len() == 64),
        "{:?}",
        strong.delivery.receipt
    );
    let unknown = n.state_of("1006").await;
    assert_eq!(
        unknown.delivery.error.as_ref().unwrap().code,
        "unknown_result"
    );
    // It says where the call was read and how to fix it, like every other bad row.
    let message = &unknown.delivery.error.as_ref().unwrap().message;
    for want in [".csv line ", r#", column "result" = "#, "POST /retry"] {
        assert!(message.contains(want), "missing {want}: {message}");
    }
    let bad = n
        .svc
        .ledger
        .day(&day(DAY))
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.key.call_id.0.starts_with("row:"))
        .unwrap();
    assert!(
        bad.delivery
            .error
            .as_ref()
            .unwrap()
            .message
            .contains("line 10"),
        "{:?}",
        bad.delivery.error
    );

    // Exactly one report, with the counts and the CSV link.
    n.tick().await;
    let reports = n.hook.bodies();
    assert_eq!(reports.len(), 1, "{reports:#?}");
    let report = &reports[0];
    assert_eq!(report["total"], 9);
    assert_eq!(report["synced"], 2);
    assert_eq!(report["exported"], 2);
    assert_eq!(report["errors"], 4);
    assert_eq!(report["by_display_name"]["Strong support"], 1);
    let text = report["text"].as_str().unwrap();
    assert!(
        text.contains("Night for Congress") && text.contains("CSV"),
        "{text}"
    );
    assert!(!text.contains("Doe"), "names stay out of reports: {text}");
}

#[tokio::test]
async fn the_csv_holds_the_kept_calls_byte_for_byte() {
    let n = night(json!("hybrid")).await;
    drop_cdr(&n.svc, "inbox/night/a.csv", &mixed_night()).await;
    n.run().await;

    let csv = objects(&n.svc, "exports/night/").await;
    assert_eq!(csv.len(), 1);
    assert_eq!(csv[0].0, "exports/night/2026-11-21/night-11-21-2026-1.csv");
    assert_eq!(
        String::from_utf8(csv[0].1.clone()).unwrap(),
        "\u{feff}Voter ID,Voter ID Type,Voter First Name,Voter Last Name,Voter Phone,Date Called,Time Called,Result,Caller Login,Call ID,Result Key,CSV Reason\n\
         100003,VANID,Pat,Doe 1003,2125550103,11/21/2026,18:06:00,Lean support,agent7,1003,agent cust 2,hybrid_csv_row\n\
         100004,VANID,Pat,Doe 1004,2125550104,11/21/2026,18:07:00,No answer,agent7,1004,no answer,csv_row\n"
    );
    let receipt = n.state_of("1004").await.delivery.receipt;
    assert!(
        matches!(&receipt, Some(Receipt::Csv { key, row: 2, .. }) if key.ends_with("-1.csv")),
        "{receipt:?}"
    );
}

#[tokio::test]
async fn rerun_of_a_finished_day_posts_nothing() {
    let n = night(json!("full")).await;
    drop_cdr(&n.svc, "inbox/night/a.csv", &mixed_night()).await;
    n.run().await;
    n.drain().await;
    let posts = n.van.canvass_posts().len();
    let before = n.states(DAY).await;

    // The same file dropped again, and the day run again.
    drop_cdr(&n.svc, "inbox/night/a.csv", &mixed_night()).await;
    let again = n.run().await;
    n.drain().await;
    assert_eq!(again["new_calls"], 0, "{again:#}");
    assert_eq!(again["known_calls"], 9);
    assert_eq!(
        n.van.canvass_posts().len(),
        posts,
        "nothing was posted twice"
    );
    assert_eq!(n.states(DAY).await, before);
    assert_eq!(
        objects(&n.svc, "exports/night/").await.len(),
        1,
        "no second CSV"
    );
}

#[tokio::test]
async fn a_worker_that_dies_holding_a_call_is_swept_and_the_call_posted_once() {
    let n = night(json!("full")).await;
    drop_cdr(
        &n.svc,
        "inbox/night/a.csv",
        &[cdr_row(
            2001,
            "ny14-van-200001",
            "212-555-0201",
            "21-11-2026 12:00:00",
            "Agent Cust 1",
        )],
    )
    .await;
    n.run().await;

    // A worker takes the call and dies before posting: its lease stands, its message is gone.
    let mut record = n.state_of("2001").await;
    record.delivery.state = CallState::InProgress;
    record.delivery.lease_until = Some(n.svc.clock.now() + Duration::from_secs(900));
    record.delivery.lease_id = Some("dead-worker".into());
    assert!(n.svc.ledger.replace(&mut record).await.unwrap());
    let sqs = aws_sdk_sqs::Client::new(&n.stack.aws);
    sqs.purge_queue()
        .queue_url(&n.stack.env["CALLSYNC_SYNC_QUEUE_URL"])
        .send()
        .await
        .unwrap();

    // Before the lease ends the sweep leaves it alone; after, it is queued and posted once.
    n.tick().await;
    n.drain().await;
    assert_eq!(n.posts_for(200_001), 0);
    n.clock.advance(Duration::from_secs(901));
    n.tick().await;
    n.drain().await;
    n.tick().await;
    n.drain().await;
    assert_eq!(n.posts_for(200_001), 1);
    assert_eq!(n.state_of("2001").await.delivery.state, CallState::Finished);
}

#[tokio::test]
async fn a_storm_of_429s_ends_with_every_call_finished() {
    let n = night(json!("full")).await;
    // The key configured far faster than VAN takes it: 429s until the governor slows it.
    let mut doc = doc(json!("full"), &n.hook.url);
    doc.van.as_mut().unwrap().rate_limit = Some(500.0);
    n.svc.config.put(&doc).await.unwrap();
    let rows = wrong_numbers(3000, 30);
    drop_cdr(&n.svc, "inbox/night/a.csv", &rows).await;
    n.run().await;
    n.van.set_rate_limit(Some(RateLimit {
        burst: 3,
        per_second: 20,
    }));
    n.drain().await;
    let limited = n.van.requests().iter().filter(|r| r.status == 429).count();
    assert!(limited > 0, "the fake refused some requests with 429");
    assert_eq!(n.states(DAY).await, counts(&[("finished", 30)]));
    assert_eq!(
        n.van.canvass_posts().len(),
        30,
        "each call posted exactly once"
    );
    // Every request, the refused ones too, is counted for the day.
    let used = n.svc.days.van_requests(&day(DAY)).await.unwrap();
    assert_eq!(used as usize, n.van.requests().len());
}

#[tokio::test]
async fn every_myc_call_goes_to_mycampaign_and_another_districts_rows_are_refused() {
    let n = night(json!("full")).await;
    let mut doc = doc(json!("full"), &n.hook.url);
    doc.district = Some("ny14".into());
    doc.van.as_mut().unwrap().other_databases = vec![callsync::candidate::DatabaseKey {
        database_mode: callsync::van::DatabaseMode::MyCampaign,
        secret_name: "callsync/night/van-myc".into(),
    }];
    n.svc.config.put(&doc).await.unwrap();
    // MyCampaign holds its own people, under its own ids.
    n.van.add_mycampaign_people([100_001, 100_003, 100_005]);
    drop_cdr(
        &n.svc,
        "inbox/night/a.csv",
        &[
            cdr_row(
                5001,
                "ny14-myc-100001",
                "212-555-0501",
                "21-11-2026 12:00:00",
                "Agent Cust 3",
            ),
            cdr_row(
                5002,
                "ny14-van-100002",
                "212-555-0502",
                "21-11-2026 12:01:00",
                "Agent Cust 3",
            ),
            cdr_row(
                5003,
                "MYC-NY-100003",
                "212-555-0503",
                "21-11-2026 12:02:00",
                "No Answer",
            ),
            cdr_row(
                5004,
                "ca12-van-100004",
                "212-555-0504",
                "21-11-2026 12:03:00",
                "Agent Cust 3",
            ),
        ],
    )
    .await;
    n.run().await;
    n.drain().await;
    let mode_of = |van_id: &str| -> Vec<Option<String>> {
        n.van
            .requests()
            .iter()
            .filter(|r| {
                r.method == "POST" && r.path == format!("/people/{van_id}/canvassResponses")
            })
            .map(|r| r.db_mode.clone())
            .collect()
    };
    assert_eq!(
        mode_of("100001"),
        vec![Some("1".into())],
        "myc: MyCampaign key and mode"
    );
    assert_eq!(mode_of("100002"), vec![Some("0".into())], "van: VoterFile");
    assert_eq!(n.state_of("5001").await.delivery.state, CallState::Finished);
    assert_eq!(n.state_of("5002").await.delivery.state, CallState::Finished);
    let csv = objects(&n.svc, "exports/night/").await;
    let text = String::from_utf8(csv[0].1.clone()).unwrap();
    assert!(text.contains("\n100003,MyCampaignID,"), "{text}");
    let bad: Vec<_> = n
        .svc
        .ledger
        .day(&day(DAY))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.delivery.state == CallState::UnattemptedError)
        .collect();
    assert_eq!(bad.len(), 1, "{bad:?}");
    let message = &bad[0].delivery.error.as_ref().unwrap().message;
    assert!(
        message.contains("ca12") && message.contains("ny14"),
        "{message}"
    );
    assert!(message.contains("line 5"), "{message}");
    assert_eq!(
        mode_of("100004"),
        Vec::<Option<String>>::new(),
        "nothing posted for it"
    );

    // Without a MyCampaign key, a myc call is an error saying so, and nothing is posted.
    doc.van.as_mut().unwrap().other_databases.clear();
    n.svc.config.put(&doc).await.unwrap();
    drop_cdr(
        &n.svc,
        "inbox/night/b.csv",
        &[cdr_row(
            5005,
            "ny14-myc-100005",
            "212-555-0505",
            "21-11-2026 13:00:00",
            "Agent Cust 3",
        )],
    )
    .await;
    n.run().await;
    n.drain().await;
    let r = n.state_of("5005").await;
    assert_eq!(r.delivery.state, CallState::UnattemptedError);
    let e = r.delivery.error.unwrap();
    assert_eq!(e.code, "no_key_for_database");
    assert!(e.message.contains("MyCampaign"), "{}", e.message);
    assert_eq!(mode_of("100005"), Vec::<Option<String>>::new());
}

#[tokio::test]
async fn a_worker_killed_mid_batch_leaves_no_van_request_uncounted() {
    let n = night(json!("full")).await;
    let rows = wrong_numbers(3100, 10);
    drop_cdr(&n.svc, "inbox/night/a.csv", &rows).await;
    n.run().await;
    // Slow posts, so the worker is killed with some posts answered and some in flight.
    n.van.inject(
        Fault::once(
            "canvassResponses",
            FaultKind::Delay(Duration::from_millis(400)),
        )
        .for_method("POST")
        .times(100),
    );
    let messages: Vec<callsync::ports::SyncMessage> = n
        .svc
        .ledger
        .day(&day(DAY))
        .await
        .unwrap()
        .into_iter()
        .filter(|r| r.post.is_some())
        .map(|r| callsync::ports::SyncMessage {
            candidate: slug(),
            date: DAY,
            call_id: r.key.call_id,
            destination: None,
        })
        .collect();
    assert_eq!(messages.len(), 10);
    let svc = n.svc.clone();
    let worker =
        tokio::spawn(async move { callsync::deliver::deliver_batch(&svc, &messages).await });
    for _ in 0..1000 {
        if n.van.canvass_posts().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !worker.is_finished(),
        "the batch was still running when it was killed"
    );
    worker.abort();
    let _ = worker.await;
    let received = n.van.requests().len();
    assert!(
        n.van.canvass_posts().len() >= 4,
        "posts reached VAN before the kill"
    );
    let counted = n.svc.days.van_requests(&day(DAY)).await.unwrap();
    assert!(
        counted as usize >= received,
        "{counted} counted, {received} received by VAN"
    );
}

#[tokio::test]
async fn a_permanent_400_is_an_attempted_error_keeping_vans_envelope() {
    let n = night(json!("full")).await;
    drop_cdr(
        &n.svc,
        "inbox/night/a.csv",
        &[cdr_row(
            4001,
            "ny14-van-400001",
            "212-555-0401",
            "21-11-2026 12:00:00",
            "Agent Cust 5",
        )],
    )
    .await;
    n.run().await;
    n.drain().await;
    let record = n.state_of("4001").await;
    assert_eq!(record.delivery.state, CallState::AttemptedError);
    let error = record.delivery.error.unwrap();
    assert_eq!(error.status, Some(400));
    assert_eq!(
        error.van.as_ref().unwrap()["errors"][0]["code"],
        "INVALID_PARAMETER"
    );
    assert_eq!(n.attempts_for(400_001), 1, "a 400 is never retried");
}

#[tokio::test]
async fn a_call_for_a_person_van_does_not_know_is_an_attempted_error_naming_the_van_id() {
    let n = night(json!("full")).await;
    drop_cdr(
        &n.svc,
        "inbox/night/a.csv",
        &[
            cdr_row(
                4201,
                "ny14-van-950000001",
                "212-555-0421",
                "21-11-2026 12:00:00",
                "Agent Cust 3",
            ),
            cdr_row(
                4202,
                "ny14-van-100001",
                "212-555-0422",
                "21-11-2026 12:01:00",
                "Agent Cust 3",
            ),
        ],
    )
    .await;
    n.run().await;
    n.drain().await;

    let record = n.state_of("4201").await;
    assert_eq!(record.delivery.state, CallState::AttemptedError);
    let error = record.delivery.error.unwrap();
    assert_eq!(error.status, Some(404));
    assert!(
        error
            .message
            .contains("VAN has no person with VAN id 950000001 in this database"),
        "{}",
        error.message
    );
    assert!(
        error.message.contains("account number") && error.message.contains("database_mode"),
        "the message says what to check: {}",
        error.message
    );
    assert!(!error.message.contains("Doe"), "{}", error.message);
    assert_eq!(
        error.van.as_ref().unwrap()["errors"][0]["code"],
        "NOT_FOUND"
    );
    assert_eq!(n.state_of("4202").await.delivery.state, CallState::Finished);

    // Later ticks and drains leave it alone: a 404 is never retried.
    n.tick().await;
    n.drain().await;
    n.clock.advance(Duration::from_secs(7 * 3600));
    n.tick().await;
    n.drain().await;
    assert_eq!(n.attempts_for(950_000_001), 1, "posted once, never retried");
    assert_eq!(n.posts_for(950_000_001), 0);
    assert_eq!(
        n.state_of("4201").await.delivery.state,
        CallState::AttemptedError
    );
}

#[tokio::test]
async fn a_server_error_is_retried_and_the_call_finishes() {
    let n = night(json!("full")).await;
    drop_cdr(
        &n.svc,
        "inbox/night/a.csv",
        &[cdr_row(
            4101,
            "ny14-van-410001",
            "212-555-0411",
            "21-11-2026 12:00:00",
            "Agent Cust 3",
        )],
    )
    .await;
    n.run().await;
    n.van
        .inject(Fault::once("canvassResponses", FaultKind::ServerError).times(2));
    n.drain().await;
    assert_eq!(n.state_of("4101").await.delivery.state, CallState::Finished);
}

#[tokio::test]
async fn strategies_split_the_same_night_as_the_planner_says() {
    let rows = || {
        vec![
            cdr_row(
                5001,
                "ny14-van-500001",
                "212-555-0501",
                "21-11-2026 10:00:00",
                "Agent Cust 1",
            ),
            cdr_row(
                5002,
                "ny14-van-500002",
                "212-555-0502",
                "21-11-2026 10:01:00",
                "Agent Cust 2",
            ),
            cdr_row(
                5003,
                "ny14-van-500003",
                "212-555-0503",
                "21-11-2026 10:02:00",
                "Agent Cust 3",
            ),
            cdr_row(
                5004,
                "ny14-van-500004",
                "212-555-0504",
                "21-11-2026 10:03:00",
                "No Answer",
            ),
            cdr_row(
                5005,
                "ny14-van-500005",
                "212-555-0505",
                "21-11-2026 10:04:00",
                "Hung Up in Opening",
            ),
        ]
    };
    // (strategy, calls posted, calls in the CSV)
    let cases = [
        (json!("full"), 3, 1),
        (json!("hybrid"), 2, 2),
        (json!("all_csv"), 0, 4),
        (json!({"budget": {"daily_free_requests": 1}}), 1, 3),
    ];
    for (strategy, posted, exported) in cases {
        let n = night(strategy.clone()).await;
        drop_cdr(&n.svc, "inbox/night/a.csv", &rows()).await;
        n.run().await;
        n.drain().await;
        assert_eq!(n.van.canvass_posts().len(), posted, "{strategy}");
        let csv = objects(&n.svc, "exports/night/").await;
        let lines = csv
            .iter()
            .map(|(_, b)| b.split(|&c| c == b'\n').filter(|l| !l.is_empty()).count() - 1)
            .sum::<usize>();
        assert_eq!(lines, exported, "{strategy}");
        if posted == 1 {
            // The budget went to the highest priority: Strong support.
            assert_eq!(n.posts_for(500_001), 1, "{strategy}");
        }
    }
}

#[tokio::test]
async fn calls_around_local_midnight_land_on_their_local_day() {
    let n = night(json!("all_csv")).await;
    drop_cdr(
        &n.svc,
        "inbox/night/a.csv",
        &[
            cdr_row(
                6001,
                "ny14-van-600001",
                "212-555-0601",
                "20-11-2026 23:59:59",
                "No Answer",
            ),
            cdr_row(
                6002,
                "ny14-van-600002",
                "212-555-0602",
                "21-11-2026 00:00:01",
                "No Answer",
            ),
            cdr_row(
                6003,
                "ny14-van-600003",
                "212-555-0603",
                "21-11-2026 23:59:59",
                "No Answer",
            ),
            cdr_row(
                6004,
                "ny14-van-600004",
                "212-555-0604",
                "22-11-2026 00:00:01",
                "No Answer",
            ),
        ],
    )
    .await;
    n.run().await;
    let ids = |records: Vec<callsync::ledger::CallRecord>| -> Vec<String> {
        records
            .into_iter()
            .map(|r| r.key.call_id.0.into())
            .collect()
    };
    assert_eq!(
        ids(n.svc.ledger.day(&day(date(2026, 11, 20))).await.unwrap()),
        ["6001"]
    );
    assert_eq!(
        ids(n.svc.ledger.day(&day(DAY)).await.unwrap()),
        ["6002", "6003"]
    );
    // Today's call is recorded under today and waits for today to end.
    assert_eq!(
        ids(n.svc.ledger.day(&day(date(2026, 11, 22))).await.unwrap()),
        ["6004"]
    );
    assert_eq!(n.state_of("6003").await.delivery.state, CallState::Finished);
}

#[tokio::test]
async fn a_retry_after_a_mapping_fix_posts_the_fixed_calls_and_nothing_else() {
    let n = night(json!("full")).await;
    drop_cdr(&n.svc, "inbox/night/a.csv", &mixed_night()).await;
    n.run().await;
    n.drain().await;
    let before = n.van.canvass_posts().len();

    // Map the unknown result, then retry the day's unattempted errors.
    let mut fixed = doc(json!("full"), &n.hook.url);
    fixed.results.push(
        serde_json::from_value(json!({
        "result": "Agent Cust 9", "display_name": "Moved", "success": false,
        "result_code_id": 18, "sync": true}))
        .unwrap(),
    );
    n.svc.config.put(&fixed).await.unwrap();
    let retried = nightly::retry(
        &n.svc,
        &slug(),
        DAY,
        &[CallState::UnattemptedError, CallState::Finished],
        &nightly::RetryScope::Everything,
    )
    .await
    .unwrap();
    assert_eq!(retried.unreadable, 1, "the bad row needs its file fixed");
    n.drain().await;
    let after = n.van.canvass_posts();
    assert_eq!(after.len(), before + 1, "only the fixed call was posted");
    assert_eq!(after.last().unwrap().0, 100_006);
    assert_eq!(n.state_of("1006").await.delivery.state, CallState::Finished);
}

#[tokio::test]
async fn a_dry_run_writes_nothing_and_shows_the_plan() {
    let n = night(json!("full")).await;
    drop_cdr(&n.svc, "inbox/night/a.csv", &mixed_night()).await;
    let plan = n
        .run_event(json!({"candidate": "night", "date": DAY.to_string(), "dry_run": true}))
        .await;
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["planned"]["unsynced"], 5, "{plan:#}");
    assert_eq!(plan["planned_by_display_name"]["Strong support"], 1);
    let sample = &plan["sample_requests"][0];
    assert_eq!(sample["path"], "/people/100001/canvassResponses");
    assert_eq!(sample["body"]["canvassContext"]["contactTypeId"], 1);

    assert!(n.svc.ledger.day(&day(DAY)).await.unwrap().is_empty());
    assert_eq!(
        objects(&n.svc, "inbox/night/").await.len(),
        1,
        "the file stays"
    );
    assert!(objects(&n.svc, "exports/").await.is_empty());
    assert!(n.svc.days.get(&day(DAY)).await.unwrap().is_none());
    assert!(n.van.canvass_posts().is_empty());
}

#[tokio::test]
async fn a_malformed_event_is_refused_with_what_is_wrong() {
    let n = night(json!("full")).await;
    let err = nightly_event::handle(&n.svc, json!({"candidate": "night", "date": "21/11/2026"}))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("`date`"), "{err}");
}

#[tokio::test]
async fn the_sample_events_are_understood() {
    use callsync_tests::harness::event;
    let n = night(json!("full")).await;
    let tick = n.run_event(event("nightly-scheduled.json")).await;
    assert!(tick["tick"].is_array(), "{tick:#}");
    // The rest of a tick handed on: the candidates after "demo" ("night").
    let rest = n.run_event(event("nightly-tick-after.json")).await;
    assert_eq!(rest["tick"][0]["candidate"], "night", "{rest:#}");
    for name in ["nightly-manual.json", "nightly-dry-run.json"] {
        let run: nightly_event::ManualRun = serde_json::from_value(event(name)).unwrap();
        assert_eq!(run.candidate.as_str(), "demo", "{name}");
    }
    let batch: aws_lambda_events::sqs::SqsEvent =
        serde_json::from_value(event("sync-call-batch.json")).unwrap();
    let body = batch.records[0].body.as_deref().unwrap();
    let message: callsync::ports::SyncMessage = serde_json::from_str(body).unwrap();
    assert_eq!(message.call_id.0, "101312525040");
}

#[tokio::test]
async fn status_shows_the_day_and_retry_replans_only_errors() {
    use callsync::entrypoints::status;
    use callsync_tests::harness::{Answer, TEST_TOKEN, event, for_candidate, request, with_token};
    let n = night(json!("hybrid")).await;
    drop_cdr(&n.svc, "inbox/night/a.csv", &mixed_night()).await;
    n.run().await;
    n.drain().await;
    let ctx = n.stack.api_context();

    let mut get = for_candidate(event("status-get.json"), "night");
    get["rawQueryString"] = "date=2026-11-21".into();
    get["queryStringParameters"] = json!({"date": "2026-11-21"});
    let a = Answer::from(
        status::handle(
            &ctx,
            &n.svc,
            request(&with_token(get.clone(), Some(TEST_TOKEN))),
        )
        .await,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    let s = a.json();
    assert_eq!(s["total"], 9);
    assert_eq!(s["by_state"]["finished"], 4);
    assert_eq!(s["errors_total"], 4);
    assert!(s["errors"][0]["error"]["message"].is_string(), "{s:#}");
    assert!(s["van_requests"].as_u64().unwrap() >= 4);
    assert!(
        s["csv"][0]["url"]
            .as_str()
            .unwrap()
            .contains("X-Amz-Signature"),
        "{s:#}"
    );

    let unauthorized =
        Answer::from(status::handle(&ctx, &n.svc, request(&with_token(get, None))).await);
    assert_eq!(unauthorized.status, 401);

    // A finished call is never re-planned.
    let mut retry = event("retry-post.json");
    retry["body"] = json!({"candidate": "night", "date": "2026-11-21", "states": ["finished"]})
        .to_string()
        .into();
    let refused = Answer::from(
        status::handle(
            &ctx,
            &n.svc,
            request(&with_token(retry.clone(), Some(TEST_TOKEN))),
        )
        .await,
    );
    assert_eq!(refused.status, 400, "{}", refused.body);

    retry["body"] = json!({"candidate": "night", "date": "2026-11-21"})
        .to_string()
        .into();
    let done = Answer::from(
        status::handle(&ctx, &n.svc, request(&with_token(retry, Some(TEST_TOKEN)))).await,
    );
    assert_eq!(done.status, 200, "{}", done.body);
    // Nothing changed in the mapping: the errors stay errors, and nothing new was posted.
    let before = n.van.canvass_posts().len();
    n.drain().await;
    assert_eq!(n.van.canvass_posts().len(), before);
}

#[tokio::test]
async fn a_run_request_is_handed_to_the_nightly_function() {
    use callsync::adapters::memory::MemoryLauncher;
    use callsync::entrypoints::status;
    use callsync_tests::harness::{Answer, TEST_TOKEN, event, request, with_token};
    use std::sync::Arc;
    let n = night(json!("full")).await;
    let launcher = Arc::new(MemoryLauncher::default());
    let mut svc = n.svc.clone();
    svc.launcher = launcher.clone();
    let ctx = n.stack.api_context();
    let post = |body: Value, token: Option<&str>| {
        let mut e = event("runs-post.json");
        e["body"] = body.to_string().into();
        request(&with_token(e, token))
    };
    let started = || launcher.started.lock().unwrap().clone();
    let ask = |body: Value, token: Option<&str>| {
        let req = post(body, token);
        let (ctx, svc) = (&ctx, &svc);
        async move { Answer::from(status::handle(ctx, svc, req).await) }
    };

    let a = ask(
        json!({"candidate": "night", "date": "2026-11-21"}),
        Some(TEST_TOKEN),
    )
    .await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(
        a.json(),
        json!({"accepted": true, "candidate": "night", "date": "2026-11-21",
               "status": "/status/night?date=2026-11-21"})
    );
    let run = nightly_event::ManualRun {
        candidate: slug(),
        date: Some(DAY),
        dry_run: false,
        continuation: 0,
    };
    assert_eq!(started(), vec![run.clone()]);
    assert_eq!(
        serde_json::to_value(&run).unwrap(),
        json!({"candidate": "night", "date": "2026-11-21", "dry_run": false}),
        "the nightly function gets its manual event"
    );
    assert!(
        n.svc.ledger.day(&day(DAY)).await.unwrap().is_empty(),
        "nothing ran here"
    );

    // No date: yesterday in New York (09:00 on the 22nd there).
    let a = ask(json!({"candidate": "night"}), Some(TEST_TOKEN)).await;
    assert_eq!(a.status, 202, "{}", a.body);
    assert_eq!(a.json()["date"], "2026-11-21");
    assert_eq!(started(), vec![run.clone(), run.clone()]);

    let a = ask(json!({"candidate": "night", "date": "2026-11-21"}), None).await;
    assert_eq!(a.status, 401, "{}", a.body);

    let a = ask(
        json!({"candidate": "pa07", "date": "2026-11-21"}),
        Some(TEST_TOKEN),
    )
    .await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert_eq!(a.json()["known"], json!(["night"]));

    let a = ask(
        json!({"candidate": "night", "date": "2026-12-30"}),
        Some(TEST_TOKEN),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["error"], "future_date");

    let a = ask(
        json!({"candidate": "night", "date": "21/11/2026"}),
        Some(TEST_TOKEN),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(a.json()["field"], "date");

    assert_eq!(started().len(), 2, "a refused request starts nothing");
}

#[tokio::test]
async fn a_dry_run_request_answers_the_plan_inline() {
    use callsync::adapters::memory::MemoryLauncher;
    use callsync::entrypoints::status;
    use callsync_tests::harness::{Answer, TEST_TOKEN, event, request, with_token};
    use std::sync::Arc;
    let n = night(json!("full")).await;
    drop_cdr(&n.svc, "inbox/night/a.csv", &mixed_night()).await;
    let launcher = Arc::new(MemoryLauncher::default());
    let mut svc = n.svc.clone();
    svc.launcher = launcher.clone();
    let ctx = n.stack.api_context();

    let mut e = event("runs-post-dry-run.json");
    e["body"] = json!({"candidate": "night", "date": "2026-11-21", "dry_run": true})
        .to_string()
        .into();
    let a =
        Answer::from(status::handle(&ctx, &svc, request(&with_token(e, Some(TEST_TOKEN)))).await);
    assert_eq!(a.status, 200, "{}", a.body);
    let plan = a.json();
    assert_eq!(plan["dry_run"], true);
    assert_eq!(plan["date"], "2026-11-21");
    assert_eq!(plan["planned"]["unsynced"], 5, "{plan:#}");
    assert_eq!(plan["planned"]["queued_for_csv"], 1, "{plan:#}");
    assert_eq!(plan["planned_by_display_name"]["Strong support"], 1);

    assert!(launcher.started.lock().unwrap().is_empty());
    assert!(n.svc.ledger.day(&day(DAY)).await.unwrap().is_empty());
    assert!(n.svc.days.get(&day(DAY)).await.unwrap().is_none());
    assert_eq!(
        objects(&n.svc, "inbox/night/").await.len(),
        1,
        "the file stays"
    );
    assert!(objects(&n.svc, "exports/").await.is_empty());
}

impl Night {
    /// Switch the candidate to the LiveVox API (service 1001) in `zone`.
    async fn use_livevox(&self, zone: &str) {
        let mut d = doc(json!("full"), &self.hook.url);
        d.time_zone = zone.into();
        d.source.cdr = None;
        d.source.livevox = Some(callsync::candidate::LiveVoxSource {
            secret_name: "callsync/night/livevox".into(),
            base_url: None,
            services: vec![1001],
        });
        self.svc.config.put(&d).await.unwrap();
    }
}

#[tokio::test]
async fn livevox_calls_of_the_day_are_read_and_recorded_once() {
    let n = night(json!("full")).await;
    n.use_livevox("UTC").await;
    let summary = n.run().await;
    // Service 1001 has every third of the day's 36 calls; two of those are test accounts.
    assert_eq!(summary["livevox"]["rows"], 12, "{summary:#}");
    assert_eq!(summary["test_rows"], 2);
    let records = n.svc.ledger.day(&day(DAY)).await.unwrap();
    assert_eq!(records.len(), 10);
    assert!(
        records
            .iter()
            .all(|r| r.call.as_ref().unwrap().service.as_deref() == Some("1001"))
    );
    let again = n.run().await;
    assert_eq!(again["new_calls"], 0);
    assert_eq!(again["known_calls"], 10);
}

#[tokio::test]
async fn a_livevox_day_cut_short_keeps_the_pages_read_and_the_next_run_reads_the_rest_once() {
    let mut n = night(json!("full")).await;
    n.svc.connectors.livevox_options.retry.max_attempts = 1;
    n.svc.connectors.livevox_options.page_size = 10;
    n.use_livevox("UTC").await;
    // 25 calls of the day on service 1001: three pages of 10.
    n.livevox.with_data(|d| {
        let model = d
            .call_details
            .iter()
            .find(|c| c.service_id == 1001 && c.account.contains("van"))
            .cloned()
            .unwrap();
        d.call_details = (0..25u64)
            .map(|i| fake_livevox::CallDetail {
                call_id: 700_000_000 + i,
                account: format!("ny14-van-{}", 1_000_000 + i),
                start: fake_livevox::EpochMs::Number(model.start.millis() + i as i64 * 1_000),
                end: fake_livevox::EpochMs::Number(model.start.millis() + i as i64 * 1_000 + 500),
                ..model.clone()
            })
            .collect();
    });
    // LiveVox fails on the third page.
    n.livevox.reporting_down_from(Some(20));
    let summary = n.run().await;
    assert_eq!(summary["livevox"]["rows"], 20, "{summary:#}");
    assert_eq!(summary["problems"][0]["source"], "livevox", "{summary:#}");
    let message = summary["problems"][0]["message"].as_str().unwrap();
    assert!(
        message.contains("the 20 calls read are recorded") && message.contains("503"),
        "{message}"
    );
    // Each page was recorded as it came: the two read are in the ledger.
    assert_eq!(n.svc.ledger.day(&day(DAY)).await.unwrap().len(), 20);
    let record = n.svc.days.get(&day(DAY)).await.unwrap().unwrap();
    assert!(record.livevox_read_at.is_none(), "the day is read on");
    let at = record.livevox_progress.unwrap();
    assert_eq!((at.groups, at.offset), (0, 20));
    // GET /status says how far the day is read.
    {
        use callsync::entrypoints::status;
        use callsync_tests::harness::{
            Answer, TEST_TOKEN, event, for_candidate, request, with_token,
        };
        let mut get = for_candidate(event("status-get.json"), "night");
        get["rawQueryString"] = "date=2026-11-21".into();
        get["queryStringParameters"] = json!({"date": "2026-11-21"});
        let ctx = n.stack.api_context();
        let get = request(&with_token(get, Some(TEST_TOKEN)));
        let a = Answer::from(status::handle(&ctx, &n.svc, get).await);
        assert_eq!(
            a.json()["reading"],
            json!({"files": {}, "livevox": {"groups": 0, "offset": 20}}),
            "{}",
            a.body
        );
    }

    // The tick takes the day up after the calls recorded: LiveVox is asked from the 21st
    // on, and no call is written twice.
    n.livevox.reporting_down_from(None);
    let asked = n.livevox.requests().len();
    let tick = n.tick().await;
    let again = &tick["tick"][0]["run"];
    assert_eq!(again["livevox"]["rows"], 5, "{tick:#}");
    assert_eq!(
        (again["new_calls"].as_u64(), again["known_calls"].as_u64()),
        (Some(5), Some(0))
    );
    assert!(
        again["problems"].as_array().is_none_or(Vec::is_empty),
        "{again:#}"
    );
    let offsets: Vec<String> = n.livevox.requests()[asked..]
        .iter()
        .filter(|r| r.path.ends_with("callDetail"))
        .filter_map(|r| {
            r.query
                .iter()
                .find(|(k, _)| k == "offset")
                .map(|(_, v)| v.clone())
        })
        .collect();
    assert_eq!(
        offsets.first().map(String::as_str),
        Some("20"),
        "{offsets:?}"
    );
    assert_eq!(n.svc.ledger.day(&day(DAY)).await.unwrap().len(), 25);
    let record = n.svc.days.get(&day(DAY)).await.unwrap().unwrap();
    assert!(record.livevox_read_at.is_some());
    assert_eq!(record.livevox_progress, None);

    // A run asked for by hand reads the whole day again (LiveVox may have more by now).
    let by_hand = n.run().await;
    assert_eq!(by_hand["livevox"]["rows"], 25, "{by_hand:#}");
    assert_eq!(by_hand["known_calls"], 25);
}

#[tokio::test]
async fn a_day_livevox_does_not_serve_yet_waits_and_is_read_by_a_later_tick() {
    let n = night(json!("full")).await;
    // In New York the 21st ends at 05:00 UTC on the 22nd, which LiveVox (today: the 22nd)
    // does not serve yet.
    n.use_livevox("America/New_York").await;
    let summary = n.run().await;
    assert_eq!(summary["problems"][0]["source"], "livevox", "{summary:#}");
    assert_eq!(summary["days"][0]["report"]["status"], "waiting");
    let record = n.svc.days.get(&day(DAY)).await.unwrap().unwrap();
    assert!(!record.complete && record.livevox_read_at.is_none());
    assert!(n.hook.bodies().is_empty(), "no report for a day not read");

    // A day later LiveVox serves it, and the tick reads it.
    n.livevox.with_data(|d| d.today = date(2026, 11, 23));
    n.clock.set("2026-11-23T09:00:00Z");
    n.tick().await;
    let record = n.svc.days.get(&day(DAY)).await.unwrap().unwrap();
    assert!(record.livevox_read_at.is_some());
    assert_eq!(n.svc.ledger.day(&day(DAY)).await.unwrap().len(), 10);
}

#[tokio::test]
async fn a_call_vans_errors_outlast_is_released_delivered_again_and_posted_once() {
    let n = night(json!("full")).await;
    let mut svc = n.svc.clone();
    svc.connectors.van_options.retry.max_attempts = 2;
    drop_cdr(
        &svc,
        "inbox/night/a.csv",
        &[cdr_row(
            7001,
            "ny14-van-700001",
            "212-555-0701",
            "21-11-2026 12:00:00",
            "Agent Cust 3",
        )],
    )
    .await;
    n.run().await;
    // Two deliveries fail both their attempts; the third gets through after one more.
    n.van
        .inject(Fault::once("/people/700001/canvassResponses", FaultKind::ServerError).times(5));
    drain(&n.stack, &svc).await;
    let record = n.state_of("7001").await;
    assert_eq!(record.delivery.state, CallState::Finished);
    assert_eq!(record.delivery.attempts, 3, "leased once per delivery");
    assert_eq!(n.posts_for(700_001), 1);
    assert_eq!(n.attempts_for(700_001), 6);
}

/// A VAN key replaced in Secrets Manager (VAN refuses the old one at once) does not fail
/// the calls a warm worker sends in the minutes it still holds the old one: the refused
/// key is read afresh and the request sent again with the new one — the post, and an
/// extension's lookup before it. A key VAN refuses that was not replaced stays refused,
/// asked once.
#[tokio::test]
async fn a_van_key_replaced_while_workers_hold_the_old_one_still_delivers_each_call_once() {
    const SECRET: &str = "callsync/rotation/van";
    let w = callsync_tests::night::NightStack::up(
        100_001..=100_010,
        &[(SECRET, VAN_SECRET.into())],
        &[],
    )
    .await;
    let rotation = CandidateSlug::parse("rotation").unwrap();
    let state = |id: &'static str| {
        let svc = &w.svc;
        let key = CallKey {
            day: DayKey {
                candidate: rotation.clone(),
                date: DAY,
            },
            call_id: CallId(id.into()),
        };
        async move { svc.ledger.get(&key).await.unwrap().unwrap() }
    };
    let answers = |method: &str, path: String| {
        w.van
            .requests()
            .into_iter()
            .filter(|r| r.method == method && r.path == path)
            .map(|r| r.status)
            .collect::<Vec<u16>>()
    };
    let posts_to = |van_id: u64| answers("POST", format!("/people/{van_id}/canvassResponses"));
    let lookups_of = |van_id: u64| answers("GET", format!("/people/{van_id}"));
    // The key becomes `to`: VAN takes only it, and Secrets Manager holds it when `stored`.
    let replace = |from: &'static str, to: &'static str, stored: bool| {
        let w = &w;
        async move {
            if stored {
                let value = format!(r#"{{"application_name":"callsync-demo","api_key":"{to}"}}"#);
                w.stack.put_secret(SECRET, &value).await;
            }
            w.van.replace_key(from, to);
        }
    };
    let night_of = |id: u64| {
        let svc = &w.svc;
        let stack = &w.stack;
        async move {
            let row = cdr_row(
                id,
                &format!("ny14-van-{}", 100_000 + id - 1000),
                "212-555-0101",
                "21-11-2026 19:00:00",
                "Agent Cust 1",
            );
            drop_cdr(svc, &format!("inbox/rotation/{id}.csv"), &[row]).await;
            callsync_tests::night::run_day(svc, "rotation", DAY).await;
            drain(stack, svc).await;
        }
    };

    // Calls 1001 and 1002 leave the worker's secret and VAN connection warm.
    callsync_tests::night::one_result_van_night(&w.svc, "rotation", 2, None).await;
    drain(&w.stack, &w.svc).await;
    assert_eq!(state("1001").await.delivery.state, CallState::Finished);

    // The key is replaced; the worker still holds the old one.
    replace("demo-van-key", "second-key", true).await;
    night_of(1003).await;
    assert_eq!(state("1003").await.delivery.state, CallState::Finished);
    assert_eq!(
        posts_to(100_003),
        vec![401, 204],
        "refused with the old key, then posted once with the new"
    );
    night_of(1004).await;
    assert_eq!(posts_to(100_004), vec![204], "the new key is kept");

    // VAN refuses the key, and no other replaced it: an attempted error keeping VAN's
    // envelope, posted once.
    replace("second-key", "elsewhere-key", false).await;
    night_of(1005).await;
    let refused = state("1005").await;
    assert_eq!(refused.delivery.state, CallState::AttemptedError);
    let error = refused.delivery.error.unwrap();
    assert_eq!(error.status, Some(401));
    assert_eq!(
        error.van.as_ref().unwrap()["errors"][0]["code"],
        "UNAUTHORIZED"
    );
    assert_eq!(posts_to(100_005), vec![401], "not tried again");

    // `phone_ids` asks VAN for the person's phones before each post, with a client of
    // its own holding the key.
    let mut doc = w.svc.config.get(&rotation).await.unwrap().unwrap();
    doc.extensions = Some(vec!["phone_ids".into()]);
    w.svc.config.put(&doc).await.unwrap();
    w.van.add_person(json!({
        "vanId": 100_006, "firstName": "Pat", "lastName": "Doe",
        "phones": [{"phoneId": 5_000_666, "phoneNumber": "2125550101"}], "emails": []
    }));
    replace("elsewhere-key", "third-key", true).await;
    night_of(1006).await;
    assert_eq!(state("1006").await.delivery.state, CallState::Finished);
    assert_eq!(
        lookups_of(100_006),
        vec![401, 200],
        "looked up again with the new key"
    );
    let posts: BTreeMap<u64, Value> = w.van.canvass_posts().into_iter().collect();
    assert_eq!(
        posts[&100_006]["canvassContext"]["phoneId"],
        json!(5_000_666),
        "the post carries what the lookup with the new key found"
    );
    assert_eq!(posts_to(100_006), vec![204]);

    // A key refused and not replaced fails the lookup once, and nothing is posted.
    replace("third-key", "fourth-key", false).await;
    night_of(1007).await;
    let refused = state("1007").await;
    assert_eq!(refused.delivery.state, CallState::UnattemptedError);
    let error = refused.delivery.error.unwrap();
    assert_eq!(error.code, "extension_failed");
    assert!(error.message.contains("401"), "{}", error.message);
    assert_eq!(lookups_of(100_007), vec![401], "not tried again");
    assert!(
        posts_to(100_007).is_empty(),
        "nothing is posted with a refused key"
    );
}
