//! Extensions end to end: each hook through the `example` extension in a night read from
//! the S3 inbox (moto), delivered by `sync-call` to the fake VAN and a signed webhook;
//! enabling by the deployment and by the document; `phone_ids` against the fake VAN; the
//! document checks and `GET /extensions` through the real handlers.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use callsync::call::CallId;
use callsync::candidate::CandidateDoc;
use callsync::entrypoints::nightly as nightly_event;
use callsync::ledger::{CallKey, CallRecord, CallState, DayKey, DeliveryKey, NoteEffect, Receipt};
use callsync::planning::CsvReason;
use callsync::services::Services;
use callsync::values::CandidateSlug;
use callsync_tests::api::{ApiWorld, authed, demo_doc, with_body};
use callsync_tests::fake_receiver::Receiver;
use callsync_tests::fake_van::FakeVan;
use callsync_tests::harness::LocalStack;
use callsync_tests::night::{NightStack, Webhook, cdr_row, drain, drop_cdr, night_doc};
use jiff::civil::{Date, date};
use serde_json::{Value, json};

const SIGNING_SECRET: &str = "whsec-test-0f3c9a6b2e71d48c5a09f3e7b1c2d4a6";
const DAY: Date = date(2026, 11, 21);
const HOOK: &str = "crm-hook";

struct World {
    van: FakeVan,
    #[allow(dead_code)]
    stack: LocalStack,
    svc: Services,
    report: Webhook,
    receiver: Receiver,
}

fn day() -> DayKey {
    DayKey {
        candidate: CandidateSlug::parse("night").unwrap(),
        date: DAY,
    }
}

/// The night's document: VAN, a webhook that takes every call, and `more` merged in.
fn doc(report: &str, hook: &str, more: Value) -> CandidateDoc {
    let mut fields = json!({
        "destinations": [
            {"name": HOOK, "kind": "webhook", "url": hook, "select": "all",
             "secret_name": "callsync/night/crm-hook", "rate_limit": 50, "timeout_secs": 2}
        ]
    });
    for (k, v) in more.as_object().unwrap() {
        fields[k] = v.clone();
    }
    night_doc(report, fields)
}

async fn world(vars: &[(&str, String)], more: Value) -> World {
    let NightStack {
        van,
        stack,
        svc,
        report,
        ..
    } = NightStack::up(
        100_001..=100_010,
        &[(
            "callsync/night/crm-hook",
            json!({"signing_secret": SIGNING_SECRET}).to_string(),
        )],
        vars,
    )
    .await;
    let receiver = Receiver::start(SIGNING_SECRET).await;
    svc.config
        .put(&doc(&report.url, &receiver.url, more))
        .await
        .unwrap();
    World {
        van,
        stack,
        svc,
        report,
        receiver,
    }
}

/// 1001 and 1004 strong support, 1002 a wrong number, 1003 no answer.
fn rows() -> Vec<String> {
    [
        (1001, "Agent Cust 1"),
        (1002, "Agent Cust 3"),
        (1003, "No Answer"),
        (1004, "Agent Cust 1"),
    ]
    .iter()
    .map(|(id, result)| {
        cdr_row(
            *id,
            &format!("ny14-van-{}", 100_000 + id - 1000),
            &format!("212-555-01{:02}", id - 1000),
            &format!("21-11-2026 18:{:02}:00", id - 1000),
            result,
        )
    })
    .collect()
}

impl World {
    async fn night(&self) {
        drop_cdr(&self.svc, "inbox/night/cdr.csv", &rows()).await;
        nightly_event::handle(
            &self.svc,
            json!({"candidate": "night", "date": DAY.to_string()}),
        )
        .await
        .unwrap();
        drain(&self.stack, &self.svc).await;
        // The next tick finds nothing pending and reports the day.
        nightly_event::handle(
            &self.svc,
            json!({"source": "aws.events", "detail-type": "Scheduled Event"}),
        )
        .await
        .unwrap();
    }

    async fn calls(&self) -> BTreeMap<String, CallRecord> {
        self.svc
            .ledger
            .day(&day())
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.key.call_id.0.to_string(), r))
            .collect()
    }

    async fn hook_delivery(&self, id: &str) -> callsync::ledger::DeliveryRecord {
        let key = DeliveryKey {
            call: CallKey {
                day: day(),
                call_id: CallId(id.into()),
            },
            destination: HOOK.into(),
        };
        self.svc.ledger.get_delivery(&key).await.unwrap().unwrap()
    }

    fn hooked(&self) -> BTreeMap<String, Value> {
        self.receiver
            .delivered()
            .into_iter()
            .map(|r| (r.body["call"]["id"].as_str().unwrap().to_owned(), r.body))
            .collect()
    }
}

#[tokio::test]
async fn every_hook_of_the_example_runs_in_a_night_and_a_failing_hook_fails_only_what_it_touched() {
    let w = world(
        &[],
        json!({
            "extensions": ["example"],
            "extension_settings": {"example": {
                "note": "weekend bank",
                "drop_results": ["No Answer"],
                "fail_results": ["agent cust 3"],
                "tag": "weekend"
            }}
        }),
    )
    .await;
    w.night().await;
    let calls = w.calls().await;

    // after_read, annotate: the note is kept on the call; the call goes on as usual.
    for id in ["1001", "1004"] {
        let r = &calls[id];
        assert_eq!(r.delivery.state, CallState::Finished, "{id}");
        assert_eq!(r.notes.len(), 1, "{id}: {:?}", r.notes);
        assert_eq!(r.notes[0].extension, "example");
        assert_eq!(r.notes[0].text, "weekend bank");
        assert_eq!(r.notes[0].effect, NoteEffect::Note);
    }
    // after_read, drop: delivered nowhere, and the ledger says which extension and why.
    let dropped = &calls["1003"];
    assert_eq!(dropped.delivery.state, CallState::Ignored);
    let why = dropped.notes.last().unwrap();
    assert_eq!(
        (why.extension.as_str(), why.effect),
        ("example", NoteEffect::Dropped)
    );
    assert!(why.text.contains("drop_results"), "{}", why.text);
    let skipped = w.hook_delivery("1003").await;
    assert_eq!(skipped.delivery.state, CallState::Ignored);
    assert!(
        skipped
            .reason
            .as_deref()
            .unwrap()
            .contains("extension example"),
        "{skipped:?}"
    );
    // after_read, failing: that call alone is an error naming the extension, for VAN and
    // for the webhook; nothing of it is sent.
    let failed = &calls["1002"];
    assert_eq!(failed.delivery.state, CallState::UnattemptedError);
    let error = failed.delivery.error.as_ref().unwrap();
    assert_eq!(error.code, "extension_failed");
    assert!(
        error.message.contains("extension example") && error.message.contains("fail_results"),
        "{}",
        error.message
    );
    let hook_failed = w.hook_delivery("1002").await;
    assert_eq!(hook_failed.delivery.state, CallState::UnattemptedError);
    assert_eq!(
        hook_failed.delivery.error.as_ref().unwrap().code,
        "extension_failed"
    );
    let mut posted: Vec<u64> = w.van.canvass_posts().iter().map(|(id, _)| *id).collect();
    posted.sort_unstable();
    assert_eq!(posted, [100_001, 100_004], "VAN got the kept calls only");

    // before_send: the webhook's payload is amended; VAN's post is not.
    let hooked = w.hooked();
    assert_eq!(
        hooked.keys().map(String::as_str).collect::<Vec<_>>(),
        ["1001", "1004"]
    );
    for body in hooked.values() {
        assert_eq!(body["example"], json!({"tag": "weekend"}), "{body}");
    }
    for (_, body) in w.van.canvass_posts() {
        assert!(body.get("example").is_none(), "{body}");
    }

    // on_settled: the report carries what the extension added, under its name.
    let reports = w.report.bodies();
    assert_eq!(reports.len(), 1, "{reports:?}");
    let added = &reports[0]["extensions"]["example"]["delivered"];
    assert_eq!(added["van"], 2, "{added}");
    assert_eq!(added[HOOK], 2, "{added}");
}

#[tokio::test]
async fn a_hook_that_fails_before_a_send_fails_that_destinations_deliveries_alone() {
    let w = world(
        &[],
        json!({
            "extensions": ["example"],
            "extension_settings": {"example": {"fail_destinations": [HOOK]}}
        }),
    )
    .await;
    w.night().await;
    // VAN is untouched: three synced calls posted (the no-answer goes to the CSV).
    assert_eq!(w.van.canvass_posts().len(), 3);
    assert!(
        w.receiver.received().is_empty(),
        "nothing reached the webhook"
    );
    for id in ["1001", "1002", "1003", "1004"] {
        let d = w.hook_delivery(id).await;
        assert_eq!(d.delivery.state, CallState::UnattemptedError, "{id}");
        let error = d.delivery.error.unwrap();
        assert_eq!(error.code, "extension_failed");
        assert!(
            error.message.contains("extension example")
                && error.message.contains("fail_destinations"),
            "{}",
            error.message
        );
    }
}

#[tokio::test]
async fn the_deployment_enables_extensions_for_documents_without_their_own_list() {
    let settings = json!({"extension_settings": {"example": {"tag": "from-env"}}});
    let w = world(&[("CALLSYNC_EXTENSIONS", "example".to_owned())], settings).await;
    let slug = CandidateSlug::parse("night").unwrap();
    let names = |c: &callsync::destinations::Compiled| -> Vec<&'static str> {
        c.extensions.iter().map(|e| e.name()).collect()
    };
    assert_eq!(names(&w.svc.candidate(&slug).await.unwrap()), ["example"]);
    w.night().await;
    assert!(
        w.hooked()
            .values()
            .all(|b| b["example"] == json!({"tag": "from-env"})),
        "{:?}",
        w.hooked()
    );

    // A document's own list replaces the deployment's: `[]` runs none.
    let mut own = doc(
        &w.report.url,
        &w.receiver.url,
        json!({"extensions": [], "extension_settings": {"example": {"tag": "from-env"}}}),
    );
    w.svc.config.put(&own).await.unwrap();
    assert!(names(&w.svc.candidate(&slug).await.unwrap()).is_empty());
    own.extensions = Some(vec!["phone_ids".into()]);
    w.svc.config.put(&own).await.unwrap();
    assert_eq!(names(&w.svc.candidate(&slug).await.unwrap()), ["phone_ids"]);
}

#[tokio::test]
async fn phone_ids_posts_vans_phone_id_for_the_dialed_number_and_counts_the_lookup() {
    let w = world(&[], json!({"extensions": ["phone_ids"]})).await;
    w.van.add_person(json!({
        "vanId": 100_001, "firstName": "Pat", "lastName": "Doe",
        "phones": [{"phoneId": 5_000_777, "phoneNumber": "2125550101"},
                   {"phoneId": 5_000_778, "phoneNumber": "2125550999"}],
        "emails": []
    }));
    w.night().await;
    let posts: BTreeMap<u64, Value> = w.van.canvass_posts().into_iter().collect();
    assert_eq!(posts.len(), 3);
    assert_eq!(
        posts[&100_001]["canvassContext"]["phoneId"],
        json!(5_000_777),
        "the dialed number's id"
    );
    // A person with no phones on file is posted without one.
    assert!(
        posts[&100_002]["canvassContext"].get("phoneId").is_none()
            || posts[&100_002]["canvassContext"]["phoneId"].is_null(),
        "{}",
        posts[&100_002]
    );
    // Every lookup is a counted VAN request: the day's counter equals what VAN received.
    assert_eq!(w.van.count("GET", "/people/"), 3, "one lookup per post");
    let counted = w.svc.days.van_requests(&day()).await.unwrap();
    assert_eq!(counted, w.van.requests().len() as u64);
}

#[tokio::test]
async fn unknown_extensions_and_bad_settings_are_refused_when_saved_and_get_extensions_lists_them()
{
    let mut w = ApiWorld::start().await;
    let refused = |doc: &Value| with_body(authed("candidates-put.json"), &doc.to_string());

    let mut doc = demo_doc();
    doc["extensions"] = json!(["phone_ids", "teleport"]);
    let a = w.configure(refused(&doc)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let errors = &a.json()["errors"];
    assert_eq!(errors[0]["field"], "extensions[1]", "{errors}");
    let message = errors[0]["message"].as_str().unwrap();
    assert!(
        message.contains("teleport")
            && message.contains("phone_ids")
            && message.contains("example"),
        "names the known ones: {message}"
    );

    let mut doc = demo_doc();
    doc["extensions"] = json!(["example"]);
    doc["extension_settings"] = json!({"example": {"colour": "red"}, "teleport": {}});
    let a = w.configure(refused(&doc)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let fields: Vec<String> = a.json()["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        fields,
        ["extension_settings.example", "extension_settings.teleport"],
        "{}",
        a.body
    );
    let got = w.configure(authed("candidates-get.json")).await;
    assert_eq!(got.status, 404, "nothing was stored: {}", got.body);

    w.ctx.connectors.default_extensions = vec!["phone_ids".into()];
    let listed = w.configure(authed("extensions-get.json")).await;
    assert_eq!(listed.status, 200, "{}", listed.body);
    let body = listed.json();
    let by_name: BTreeMap<String, Value> = body["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_owned(), e.clone()))
        .collect();
    assert_eq!(
        by_name.keys().map(String::as_str).collect::<Vec<_>>(),
        ["cost_guard", "example", "person_match", "phone_ids"]
    );
    assert_eq!(by_name["person_match"]["spends_money"], true);
    assert_eq!(by_name["cost_guard"]["needs_settings"], true);
    let phone_ids = &by_name["phone_ids"];
    assert_eq!(phone_ids["spends_money"], true);
    assert_eq!(phone_ids["money_spending_hooks"], json!(["before_send"]));
    assert_eq!(phone_ids["enabled_by_default"], true);
    assert_eq!(
        by_name["example"]["hooks"],
        json!(["after_read", "before_send", "on_settled"])
    );
    assert_eq!(by_name["example"]["enabled_by_default"], false);
    assert_eq!(body["deployment_default"], json!(["phone_ids"]));
}

#[tokio::test]
async fn cost_guard_stops_van_requests_at_the_days_cap_and_sends_the_rest_to_the_csv() {
    // Two type lookups and two posts fit under 4; the third synced call does not.
    let w = world(
        &[],
        json!({
            "extensions": ["cost_guard"],
            "extension_settings": {"cost_guard": {"daily_van_requests": 4}}
        }),
    )
    .await;
    w.night().await;
    assert_eq!(w.van.requests().len(), 4, "VAN received the cap, no more");
    assert_eq!(w.svc.days.van_requests(&day()).await.unwrap(), 4);
    assert_eq!(w.van.canvass_posts().len(), 2);

    let calls = w.calls().await;
    let posted: Vec<&str> = ["1001", "1002", "1004"]
        .into_iter()
        .filter(|id| matches!(calls[*id].delivery.receipt, Some(Receipt::Van { .. })))
        .collect();
    assert_eq!(posted.len(), 2, "{calls:#?}");
    let diverted: Vec<&CallRecord> = calls
        .values()
        .filter(|r| r.csv_reason == Some(CsvReason::CostGuard))
        .collect();
    assert_eq!(diverted.len(), 1, "{calls:#?}");
    let d = diverted[0];
    assert_eq!(d.delivery.state, CallState::Finished);
    let Some(Receipt::Csv { key, row, .. }) = &d.delivery.receipt else {
        panic!("the diverted call is in a CSV: {d:?}");
    };
    // The day's second file holds it, with its own reason.
    let file = String::from_utf8(w.svc.objects.get(key).await.unwrap()).unwrap();
    let line = file.lines().nth(*row as usize).unwrap();
    assert!(
        line.contains(d.key.call_id.0.as_str()) && line.ends_with("cost_guard"),
        "{line}"
    );
    // The no-answer call went to the CSV for its row, as always.
    assert_eq!(calls["1003"].csv_reason, Some(CsvReason::CsvRow));
}

#[test]
fn cost_guard_needs_a_positive_cap_and_is_refused_beside_the_budget_strategy() {
    let check = |more: Value| {
        let doc = doc(
            "https://hooks.example.org/r",
            "https://hooks.example.org/h",
            more,
        );
        match callsync::destinations::Compiled::from_doc(doc, callsync::egress::Egress::STRICT) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect(),
        }
    };
    assert!(
        check(json!({"extensions": ["cost_guard"],
                     "extension_settings": {"cost_guard": {"daily_van_requests": 900}}}))
        .is_empty()
    );
    let missing = check(json!({"extensions": ["cost_guard"]}));
    assert!(
        missing[0].starts_with("extension_settings.cost_guard: ")
            && missing[0].contains("needs settings"),
        "{missing:?}"
    );
    let zero = check(json!({"extensions": ["cost_guard"],
                            "extension_settings": {"cost_guard": {"daily_van_requests": 0}}}));
    assert!(
        zero[0].starts_with("extension_settings.cost_guard.daily_van_requests: "),
        "{zero:?}"
    );
    let budget = check(json!({"strategy": {"budget": {"daily_free_requests": 500}},
                              "extensions": ["cost_guard"],
                              "extension_settings": {"cost_guard": {"daily_van_requests": 900}}}));
    assert!(
        budget[0].contains("budget strategy already caps"),
        "{budget:?}"
    );
}

#[tokio::test]
async fn person_match_finds_calls_without_a_van_id_by_name_and_phone_and_counts_each_find() {
    let w = world(&[], json!({"extensions": ["person_match"]})).await;
    w.van.add_person(json!({
        "vanId": 200_001, "firstName": "Pat", "lastName": "Doe 2001",
        "phones": [{"phoneId": 6_000_001, "phoneNumber": "2125550151"}], "emails": []
    }));
    let row = |id: u64, account: &str, phone: &str| {
        cdr_row(id, account, phone, "21-11-2026 18:30:00", "Agent Cust 1")
    };
    let rows = [
        // A VAN id on the account: posted as always, nothing searched.
        row(1001, "ny14-van-100001", "212-555-0101"),
        // No VAN id: found by name and phone.
        row(2001, "", "212-555-0151"),
        // No VAN id, and VAN knows nobody by that name and phone.
        row(2002, "", "212-555-0152"),
        // No VAN id and no last name: too little to search with.
        "2003,,Pat,,212-555-0153,21-11-2026 18:31:00,21-11-2026 18:31:00,21-11-2026 18:31:00,agent7,Agent Cust 1,C1".to_owned(),
    ];
    drop_cdr(&w.svc, "inbox/night/cdr.csv", &rows).await;
    nightly_event::handle(
        &w.svc,
        json!({"candidate": "night", "date": DAY.to_string()}),
    )
    .await
    .unwrap();
    drain(&w.stack, &w.svc).await;
    let calls = w.calls().await;

    let mut posted: Vec<u64> = w.van.canvass_posts().iter().map(|(id, _)| *id).collect();
    posted.sort_unstable();
    assert_eq!(posted, [100_001, 200_001]);
    let found = &calls["2001"];
    assert_eq!(found.delivery.state, CallState::Finished);
    assert_eq!(
        found.post.as_ref().unwrap().van_id.map(|v| v.get()),
        Some(200_001),
        "the matched id is kept in the ledger"
    );
    assert_eq!(
        found.call.as_ref().unwrap().van_id,
        None,
        "the call as read"
    );

    let unmatched = &calls["2002"];
    assert_eq!(unmatched.delivery.state, CallState::UnattemptedError);
    let error = unmatched.delivery.error.as_ref().unwrap();
    assert_eq!(error.code, "extension_failed");
    assert!(
        error.message.contains("extension person_match")
            && error.message.contains("found no person"),
        "{}",
        error.message
    );
    for personal in ["Pat", "Doe", "5550152"] {
        assert!(!error.message.contains(personal), "{}", error.message);
    }
    let thin = calls["2003"].delivery.error.as_ref().unwrap();
    assert!(
        thin.message.contains("too little to search") && thin.message.contains("a last name"),
        "{}",
        thin.message
    );

    // Two finds (none for the thin call), never findOrCreate, the 302 never followed, and
    // every request counted on the day the budget reads.
    assert_eq!(w.van.count("POST", "/people/find"), 2);
    assert_eq!(w.van.count("POST", "/people/findOrCreate"), 0);
    assert_eq!(w.van.count("GET", "/people/"), 0);
    let counted = w.svc.days.van_requests(&day()).await.unwrap();
    assert_eq!(counted, w.van.requests().len() as u64);
}

#[tokio::test]
async fn without_person_match_a_call_without_a_van_id_fails_saying_how_to_fix_it() {
    let w = world(&[], json!({})).await;
    drop_cdr(
        &w.svc,
        "inbox/night/cdr.csv",
        &[cdr_row(
            2001,
            "",
            "212-555-0151",
            "21-11-2026 18:30:00",
            "Agent Cust 1",
        )],
    )
    .await;
    nightly_event::handle(
        &w.svc,
        json!({"candidate": "night", "date": DAY.to_string()}),
    )
    .await
    .unwrap();
    drain(&w.stack, &w.svc).await;
    let record = &w.calls().await["2001"];
    assert_eq!(record.delivery.state, CallState::UnattemptedError);
    let error = record.delivery.error.as_ref().unwrap();
    assert!(
        error.message.contains("no VAN id") && error.message.contains("person_match"),
        "{}",
        error.message
    );
    assert!(w.van.canvass_posts().is_empty());
    // The webhook still takes the call as read, its VAN id empty.
    let hooked = w.hooked();
    assert_eq!(hooked["2001"]["contact"]["van_id"], Value::Null);
}

#[tokio::test]
async fn a_call_an_extension_failed_goes_everywhere_once_it_lets_it_through_and_the_day_is_retried()
{
    let failing = json!({
        "extensions": ["example"],
        "extension_settings": {"example": {"fail_results": ["agent cust 3"]}}
    });
    let w = world(&[], failing).await;
    w.night().await;
    assert_eq!(
        w.calls().await["1002"].delivery.state,
        CallState::UnattemptedError
    );
    assert_eq!(
        w.hook_delivery("1002").await.delivery.state,
        CallState::UnattemptedError
    );

    // The extension lets it through now; a retry plans the call and its deliveries again.
    let passing = doc(
        &w.report.url,
        &w.receiver.url,
        json!({"extensions": ["example"], "extension_settings": {"example": {}}}),
    );
    w.svc.config.put(&passing).await.unwrap();
    callsync::nightly::retry(
        &w.svc,
        &day().candidate,
        DAY,
        &[CallState::UnattemptedError],
        &callsync::nightly::RetryScope::Everything,
    )
    .await
    .unwrap();
    drain(&w.stack, &w.svc).await;
    let call = &w.calls().await["1002"];
    assert_eq!(call.delivery.state, CallState::Finished);
    assert!(call.notes.is_empty(), "{:?}", call.notes);
    assert_eq!(
        w.hook_delivery("1002").await.delivery.state,
        CallState::Finished
    );
    assert_eq!(
        w.receiver
            .delivered()
            .iter()
            .filter(|r| r.body["call"]["id"] == "1002")
            .count(),
        1,
        "delivered once"
    );
}
