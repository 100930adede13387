//! The configuration gate: a candidate whose destinations or extensions are not fully
//! configured does not run its night — nothing read, planned or delivered — and the day
//! record, `GET /status` and `GET /validate` say why, until it is fixed. Real handlers,
//! moto, the fake VAN and a signed webhook receiver.
#![allow(clippy::unwrap_used)]

use callsync::candidate::CandidateDoc;
use callsync::entrypoints::nightly as nightly_event;
use callsync::ledger::DayKey;
use callsync::services::Services;
use callsync::values::CandidateSlug;
use callsync_tests::fake_receiver::Receiver;
use callsync_tests::fake_van::{FakeVan, VanData};
use callsync_tests::harness::{
    Answer, LocalStack, TEST_TOKEN, event, for_candidate, request, with_token,
};
use callsync_tests::night::{
    MORNING, TestClock, VAN_SECRET, Webhook, cdr_row, drain, drop_cdr, services,
};
use jiff::civil::{Date, date};
use serde_json::{Value, json};

const SIGNING_SECRET: &str = "whsec-test-0f3c9a6b2e71d48c5a09f3e7b1c2d4a6";
const DAY: Date = date(2026, 11, 21);
// Candidate secrets are shared by every stack on one moto: these candidates' names are
// their own, so a secret one test lacks is not another test's.
const HOOK_SLUG: &str = "gate-hook";
const HOOK_SECRET: &str = "callsync/gate-hook/crm-hook";
const EXT_SLUG: &str = "gate-ext";

fn doc(slug: &str, report: &str, hook: &str, extensions: Value) -> CandidateDoc {
    serde_json::from_value(json!({
        "slug": slug, "display_name": "Night for Congress", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": "full",
        "van": {"secret_name": format!("callsync/{slug}/van"), "database_mode": "voter_file"},
        "results": [
            {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}], "sync": true}
        ],
        "notify": {"webhook_url": report},
        "extensions": extensions,
        "destinations": [
            {"name": "crm-hook", "kind": "webhook", "url": hook,
             "secret_name": format!("callsync/{slug}/crm-hook"), "rate_limit": 50, "timeout_secs": 2}
        ]
    }))
    .unwrap()
}

fn day(slug: &str) -> DayKey {
    DayKey {
        candidate: CandidateSlug::parse(slug).unwrap(),
        date: DAY,
    }
}

async fn run(svc: &Services, slug: &str) -> Result<Value, String> {
    nightly_event::handle(svc, json!({"candidate": slug, "date": DAY.to_string()}))
        .await
        .map_err(|e| e.to_string())
}

async fn status(stack: &LocalStack, svc: &Services) -> Value {
    let mut get = for_candidate(event("status-get.json"), HOOK_SLUG);
    get["rawQueryString"] = format!("date={DAY}").into();
    get["queryStringParameters"] = json!({"date": DAY.to_string()});
    let ctx = stack.api_context();
    let a = Answer::from(
        callsync::entrypoints::status::handle(
            &ctx,
            svc,
            request(&with_token(get, Some(TEST_TOKEN))),
        )
        .await,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

async fn validate(stack: &LocalStack) -> Value {
    let get = for_candidate(event("validate-get.json"), HOOK_SLUG);
    let ctx = stack.api_context();
    let a = Answer::from(
        callsync::entrypoints::validate::handle(&ctx, request(&with_token(get, Some(TEST_TOKEN))))
            .await,
    );
    assert_eq!(a.status, 200, "{}", a.body);
    a.json()
}

#[tokio::test]
async fn a_candidate_with_a_destination_not_fully_configured_does_not_run_and_says_why() {
    let van = FakeVan::start(VanData::demo()).await;
    van.add_people(100_001..=100_003);
    // The webhook's signing secret is missing from Secrets Manager.
    let stack = LocalStack::up(
        &[("callsync/gate-hook/van", VAN_SECRET.to_owned())],
        &[("CALLSYNC_VAN_BASE_URL", van.base_url())],
    )
    .await;
    let svc = services(&stack, TestClock::new(MORNING));
    let report = Webhook::start().await;
    let receiver = Receiver::start(SIGNING_SECRET).await;
    svc.config
        .put(&doc(HOOK_SLUG, &report.url, &receiver.url, json!([])))
        .await
        .unwrap();
    let rows: Vec<String> = (1..=3u64)
        .map(|i| {
            cdr_row(
                1000 + i,
                &format!("ny14-van-{}", 100_000 + i),
                &format!("212-555-01{i:02}"),
                &format!("21-11-2026 18:{i:02}:00"),
                "Agent Cust 1",
            )
        })
        .collect();
    drop_cdr(&svc, "inbox/gate-hook/cdr.csv", &rows).await;

    // A dry run still shows the plan, and what would keep the night from running.
    let dry = nightly_event::handle(
        &svc,
        json!({"candidate": HOOK_SLUG, "date": DAY.to_string(), "dry_run": true}),
    )
    .await
    .unwrap();
    assert_eq!(dry["planned"]["unsynced"], 3, "{dry:#}");
    let named = dry["not_configured"].to_string();
    assert!(named.contains(HOOK_SECRET), "{dry:#}");

    let refused = run(&svc, HOOK_SLUG).await.unwrap_err();
    assert!(
        refused.contains("not fully configured") && refused.contains(HOOK_SECRET),
        "{refused}"
    );
    // Nothing of the night happened: no call read into the ledger, the file still waits in
    // the inbox, VAN and the webhook were sent nothing.
    assert!(svc.ledger.day(&day(HOOK_SLUG)).await.unwrap().is_empty());
    let inbox = svc.objects.list("inbox/gate-hook/").await.unwrap();
    assert_eq!(inbox.len(), 1, "{inbox:?}");
    drain(&stack, &svc).await;
    assert!(van.canvass_posts().is_empty());
    assert!(receiver.received().is_empty());
    // The tick refuses it the same way, and the day says why.
    let tick = nightly_event::handle(
        &svc,
        json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
    )
    .await
    .unwrap();
    assert!(tick.to_string().contains("not fully configured"), "{tick}");
    let blocked = svc
        .days
        .get(&day(HOOK_SLUG))
        .await
        .unwrap()
        .unwrap()
        .blocked
        .unwrap();
    assert_eq!(blocked.problems.len(), 1, "{blocked:?}");
    assert!(
        blocked.problems[0].starts_with("destination \"crm-hook\": ")
            && blocked.problems[0].contains(HOOK_SECRET),
        "{blocked:?}"
    );
    let s = status(&stack, &svc).await;
    assert_eq!(s["blocked"]["problems"], json!(blocked.problems), "{s:#}");
    let v = validate(&stack).await;
    assert_eq!(v["ok"], false, "{v:#}");
    assert!(
        v["errors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["field"] == "destinations[0]"
                && e["message"].as_str().unwrap().contains(HOOK_SECRET)),
        "{v:#}"
    );

    // The secret is created: the next run runs the night, once, and the block is lifted.
    let sm = aws_sdk_secretsmanager::Client::new(&stack.aws);
    let value = json!({"signing_secret": SIGNING_SECRET}).to_string();
    if sm
        .create_secret()
        .name(HOOK_SECRET)
        .secret_string(&value)
        .send()
        .await
        .is_err()
    {
        // Left by an earlier run on this moto.
        sm.put_secret_value()
            .secret_id(HOOK_SECRET)
            .secret_string(&value)
            .send()
            .await
            .unwrap();
    }
    run(&svc, HOOK_SLUG).await.unwrap();
    drain(&stack, &svc).await;
    assert_eq!(van.canvass_posts().len(), 3);
    assert_eq!(receiver.delivered().len(), 3);
    let day_record = svc.days.get(&day(HOOK_SLUG)).await.unwrap().unwrap();
    assert_eq!(day_record.blocked, None);
    assert_eq!(status(&stack, &svc).await["blocked"], Value::Null);
}

#[tokio::test]
async fn an_extension_not_fully_configured_keeps_the_night_from_running() {
    let van = FakeVan::start(VanData::demo()).await;
    // phone_ids reads VAN with the candidate's key, and the key's secret is missing.
    let stack = LocalStack::up(
        &[(
            "callsync/gate-ext/crm-hook",
            json!({"signing_secret": SIGNING_SECRET}).to_string(),
        )],
        &[("CALLSYNC_VAN_BASE_URL", van.base_url())],
    )
    .await;
    let svc = services(&stack, TestClock::new(MORNING));
    let report = Webhook::start().await;
    let receiver = Receiver::start(SIGNING_SECRET).await;
    svc.config
        .put(&doc(
            EXT_SLUG,
            &report.url,
            &receiver.url,
            json!(["phone_ids"]),
        ))
        .await
        .unwrap();
    drop_cdr(
        &svc,
        "inbox/gate-ext/cdr.csv",
        &[cdr_row(
            1001,
            "ny14-van-100001",
            "212-555-0101",
            "21-11-2026 18:01:00",
            "Agent Cust 1",
        )],
    )
    .await;
    let refused = run(&svc, EXT_SLUG).await.unwrap_err();
    assert!(refused.contains("extension phone_ids"), "{refused}");
    assert!(svc.ledger.day(&day(EXT_SLUG)).await.unwrap().is_empty());
    let blocked = svc
        .days
        .get(&day(EXT_SLUG))
        .await
        .unwrap()
        .unwrap()
        .blocked
        .unwrap();
    assert!(
        blocked.problems[0].starts_with("extension phone_ids: "),
        "{blocked:?}"
    );
    assert!(van.requests().is_empty(), "nothing was sent to VAN");
}
