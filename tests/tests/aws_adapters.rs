//! The ledger, day store, bucket and queue adapters against moto, through the real SDK, on
//! a stack built from the template: what each promises the core, kept.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::Duration;

use futures::TryStreamExt;

use aws_sdk_dynamodb::types::AttributeValue;
use callsync::adapters::dynamo_ledger::{DynamoDayStore, DynamoLedger};
use callsync::adapters::s3::S3Objects;
use callsync::adapters::sqs::SqsQueue;
use callsync::call::{Call, CallId, CallText};
use callsync::ledger::{
    CallKey, CallRecord, CallState, DayKey, DayRecord, DeliveryKey, DeliveryPlan, DeliveryRecord,
    ErrorNote, ExportRef, Receipt,
};
use callsync::mapping::{SurveyAnswer, VanAction};
use callsync::planning::{CsvReason, Plan, VanPost};
use callsync::ports::{CallQueue, DayStore, Ledger, ObjectStore, StoreError, SyncMessage};
use callsync::values::{CandidateSlug, PhoneNumber, ResultKey, VanId};
use callsync_tests::harness::LocalStack;
use jiff::Timestamp;
use jiff::civil::{Date, date};

fn slug(s: &str) -> CandidateSlug {
    CandidateSlug::parse(s).unwrap()
}

fn day(candidate: &str, date: Date) -> DayKey {
    DayKey {
        candidate: slug(candidate),
        date,
    }
}

fn call(id: &str, local_date: Date) -> Call {
    Call {
        call_id: CallId(id.into()),
        text: CallText::new("pa07-van-18372073", "Ana", "Núñez", "agent7"),
        van_id: Some(VanId::new(18_372_073).unwrap()),
        phone: Some(PhoneNumber::parse("(212) 555-0143").unwrap()),
        started_at: "2026-11-21T23:04:11.123456789Z".parse().unwrap(),
        ended_at: Some("2026-11-21T23:06:40Z".parse().unwrap()),
        result: ResultKey::normalise("Strong Support").unwrap(),
        result_text: "Strong Support (SS)".into(),
        service: Some("GOTV".into()),
        campaign: None,
        local_date,
        origin: None,
        database_mode: None,
    }
}

fn van_post() -> VanPost {
    VanPost {
        van_id: Some(VanId::new(18_372_073).unwrap()),
        database_mode: callsync::van::DatabaseMode::MyCampaign,
        action: VanAction::Contact {
            survey_responses: vec![SurveyAnswer {
                question_id: 2301,
                response_id: 9120,
            }],
            activist_codes: vec![4411, 4412],
        },
        date_canvassed: "2026-11-21T17:04:11-06:00".into(),
        phone: Some(PhoneNumber::parse("2125550143").unwrap()),
        priority: -3,
    }
}

/// A VAN-bound call of `candidate` on `date`.
fn planned(candidate: &str, id: &str, date: Date) -> CallRecord {
    CallRecord::planned(
        &slug(candidate),
        call(id, date),
        Some("Strong support".into()),
        &Plan::Van(van_post()),
        Timestamp::now(),
    )
}

struct Stores {
    stack: LocalStack,
    ledger: DynamoLedger,
    days: DynamoDayStore,
}

async fn stores() -> Stores {
    let stack = LocalStack::up(&[], &[]).await;
    let client = aws_sdk_dynamodb::Client::new(&stack.aws);
    let ledger = DynamoLedger::new(client.clone(), &stack.resources["CallsTable"]);
    let days = DynamoDayStore::new(client, &stack.resources["DaysTable"]);
    Stores {
        stack,
        ledger,
        days,
    }
}

#[tokio::test]
async fn call_records_round_trip_exactly_through_the_ledger() {
    let s = stores().await;
    let d = date(2026, 11, 21);
    let now = Timestamp::now();

    // Every optional part filled: nested enums, a flattened action, nanosecond times, and
    // VAN's error envelope as arbitrary JSON (nulls, floats, nesting, empty strings).
    let mut van = planned("pa07-lee", "101312525040", d);
    van.delivery.state = CallState::AttemptedError;
    van.delivery.receipt = Some(Receipt::Van {
        fingerprint: "ab".repeat(32),
        status: 204,
        at: now,
        attempts: 2,
    });
    van.delivery.error = Some(ErrorNote {
        code: "van_rejected".into(),
        message: "VAN said no".into(),
        status: Some(400),
        van: Some(serde_json::json!({"errors": [{
            "code": "INVALID_PARAMETER", "text": "", "properties": ["vanId"],
            "hint": null, "weight": 1.5, "offset": -2, "nested": {"empty": []}
        }]})),
        answer: None,
        at: now,
    });
    van.delivery.lease_until = Some(now);
    van.delivery.lease_id = Some("lease-1".into());
    van.delivery.attempts = 3;
    van.delivery.enqueued_at = Some(now);

    let mut csv = CallRecord::planned(
        &slug("pa07-lee"),
        call("101312525041", d),
        None,
        &Plan::Csv(CsvReason::OverBudget),
        now,
    );
    csv.delivery.state = CallState::Finished;
    csv.delivery.receipt = Some(Receipt::Csv {
        bucket: "b".into(),
        key: "exports/pa07-lee/2026-11-21.csv".into(),
        row: 7,
        at: now,
    });
    let mut result_code = planned("pa07-lee", "101312525043", d);
    result_code.post.as_mut().unwrap().action = callsync::ledger::StoredAction::ResultCode(18);

    let bad = CallRecord::bad_row(
        CallKey {
            day: day("pa07-lee", d),
            call_id: CallId("cdr/Nov 21.csv:17".into()),
        },
        "line 17, column 4 (\"start\"): \"yesterday\" is not a time".into(),
        now,
    );

    for record in [&van, &csv, &result_code, &bad] {
        assert!(s.ledger.insert(record).await.unwrap(), "{}", record.key);
        assert_eq!(
            s.ledger.get(&record.key).await.unwrap().as_ref(),
            Some(record),
            "{}",
            record.key
        );
    }
    let unknown = CallKey {
        day: day("pa07-lee", d),
        call_id: CallId("nope".into()),
    };
    assert_eq!(s.ledger.get(&unknown).await.unwrap(), None);
}

#[tokio::test]
async fn deliveries_are_kept_per_call_and_destination_with_conditional_writes() {
    let s = stores().await;
    let d = date(2026, 11, 21);
    let now = Timestamp::now();
    let key = |id: &str, dest: &str| DeliveryKey {
        call: CallKey {
            day: day("pa07-lee", d),
            call_id: CallId(id.into()),
        },
        destination: dest.into(),
    };
    let payload = serde_json::json!({"call": {"id": "c-1", "agent": "Zoë \"Z\", 1"}, "contact": {"van_id": 18372073}});
    let mut sent = DeliveryRecord::planned(
        key("c-1", "warehouse-hook"),
        "webhook",
        &DeliveryPlan::Send(payload),
        now,
    );
    sent.delivery.state = CallState::Finished;
    sent.delivered_hash = sent.payload_hash.clone();
    sent.delivery.attempts = 2;
    sent.delivery.receipt = Some(Receipt::Http {
        status: 202,
        at: now,
        attempts: 2,
        idempotency_key: "0f".repeat(16),
        fingerprint: "ab".repeat(32),
    });
    sent.delivery.error = Some(ErrorNote {
        status: Some(503),
        answer: Some("<html>busy</html>".into()),
        ..ErrorNote::new("destination_unavailable", "receiver answered 503", now)
    });
    let skipped = DeliveryRecord::planned(
        key("c-2", "warehouse-hook"),
        "webhook",
        &DeliveryPlan::Skip("result \"No answer\" is not marked sync".into()),
        now,
    );
    // The same call to another destination is a delivery of its own.
    let other = DeliveryRecord::planned(
        key("c-1", "partner-bus"),
        "webhook",
        &DeliveryPlan::Skip("not for it".into()),
        now,
    );
    for r in [&sent, &skipped, &other] {
        assert!(s.ledger.insert_delivery(r).await.unwrap(), "{}", r.key);
        assert_eq!(
            s.ledger.get_delivery(&r.key).await.unwrap().as_ref(),
            Some(r)
        );
    }
    assert!(
        !s.ledger.insert_delivery(&sent).await.unwrap(),
        "a second plan of one delivery is a no-op"
    );
    assert_eq!(
        s.ledger
            .get_delivery(&key("nope", "warehouse-hook"))
            .await
            .unwrap(),
        None
    );

    let mut ids: Vec<String> = s
        .ledger
        .deliveries(&day("pa07-lee", d), "warehouse-hook")
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.key.call.call_id.0.into())
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        ["c-1", "c-2"],
        "one destination's deliveries, not another's"
    );
    assert!(
        s.ledger
            .deliveries(&day("pa07-lee", d), "gone")
            .await
            .unwrap()
            .is_empty()
    );

    // Versioned: the first writer of a version wins, the second is told so.
    let mut a = s.ledger.get_delivery(&skipped.key).await.unwrap().unwrap();
    let mut b = a.clone();
    a.delivery.state = CallState::Unsynced;
    assert!(s.ledger.replace_delivery(&mut a).await.unwrap());
    assert_eq!(a.version, skipped.version + 1);
    b.delivery.state = CallState::AttemptedError;
    assert!(!s.ledger.replace_delivery(&mut b).await.unwrap());
    assert_eq!(
        s.ledger
            .get_delivery(&skipped.key)
            .await
            .unwrap()
            .unwrap()
            .delivery
            .state,
        CallState::Unsynced
    );
    // Deliveries never show up as the day's calls.
    assert!(s.ledger.day(&day("pa07-lee", d)).await.unwrap().is_empty());
}

#[tokio::test]
async fn inserting_a_known_call_changes_nothing() {
    let s = stores().await;
    let first = planned("pa07-lee", "c-1", date(2026, 11, 21));
    assert!(s.ledger.insert(&first).await.unwrap());

    let mut again = first.clone();
    again.delivery.state = CallState::Ignored;
    again.post = None;
    again.display_name = Some("re-run".into());
    assert!(
        !s.ledger.insert(&again).await.unwrap(),
        "a re-run is a no-op"
    );
    assert_eq!(s.ledger.get(&first.key).await.unwrap(), Some(first));
}

#[tokio::test]
async fn replace_succeeds_only_on_the_current_version_and_bumps_it() {
    let s = stores().await;
    let record = planned("pa07-lee", "c-1", date(2026, 11, 21));
    s.ledger.insert(&record).await.unwrap();

    let mut mine = s.ledger.get(&record.key).await.unwrap().unwrap();
    let mut theirs = mine.clone();
    mine.delivery.state = CallState::InProgress;
    mine.delivery.lease_id = Some("mine".into());
    assert!(s.ledger.replace(&mut mine).await.unwrap());
    assert_eq!(mine.version, 1);

    theirs.delivery.state = CallState::InProgress;
    theirs.delivery.lease_id = Some("theirs".into());
    assert!(
        !s.ledger.replace(&mut theirs).await.unwrap(),
        "a stale version must not overwrite"
    );
    assert_eq!(
        theirs.version, 0,
        "a failed replace leaves the record alone"
    );
    assert_eq!(s.ledger.get(&record.key).await.unwrap(), Some(mine.clone()));

    mine.delivery.state = CallState::Finished;
    assert!(s.ledger.replace(&mut mine).await.unwrap());
    assert_eq!(mine.version, 2);
    let stored = s.ledger.get(&record.key).await.unwrap().unwrap();
    assert_eq!(
        (stored.delivery.state, stored.version),
        (CallState::Finished, 2)
    );

    let mut never_inserted = planned("pa07-lee", "c-2", date(2026, 11, 21));
    assert!(
        !s.ledger.replace(&mut never_inserted).await.unwrap(),
        "replace never creates a call"
    );
    assert_eq!(s.ledger.get(&never_inserted.key).await.unwrap(), None);
}

#[tokio::test]
async fn a_day_returns_every_call_of_that_day_across_shards_and_nothing_else() {
    let s = stores().await;
    let wanted = date(2026, 11, 21);
    let other = date(2026, 11, 22);
    let mut expected = BTreeSet::new();
    let mut records = Vec::new();
    for i in 0..50_u64 {
        let (d, id) = if i % 5 < 3 {
            (wanted, format!("{}", 101_312_525_040 + i * 7919))
        } else {
            (other, format!("{}", 201_312_525_040 + i))
        };
        if d == wanted {
            expected.insert(id.clone());
        }
        records.push(planned("pa07-lee", &id, d));
    }
    // Same date, another candidate.
    let stranger = planned("ny14-smith", "101312525040", wanted);
    for r in records.iter().chain([&stranger]) {
        assert!(s.ledger.insert(r).await.unwrap());
    }

    let got = s.ledger.day(&day("pa07-lee", wanted)).await.unwrap();
    let ids: Vec<String> = got.iter().map(|r| r.key.call_id.0.to_string()).collect();
    assert_eq!(ids, expected.into_iter().collect::<Vec<_>>(), "all, by id");
    assert_eq!(ids.len(), 30);
    for r in &got {
        let original = records.iter().find(|o| o.key == r.key).unwrap();
        assert_eq!(r, original);
    }

    // The day really is spread over partitions: that is the point of the key design.
    let items = aws_sdk_dynamodb::Client::new(&s.stack.aws)
        .scan()
        .table_name(&s.stack.resources["CallsTable"])
        .send()
        .await
        .unwrap();
    let partitions: BTreeSet<String> = items
        .items()
        .iter()
        .filter_map(|i| match i.get("pk") {
            Some(AttributeValue::S(pk)) if pk.starts_with("pa07-lee#2026-11-21#") => {
                Some(pk.clone())
            }
            _ => None,
        })
        .collect();
    assert!(
        partitions.len() > 8,
        "30 calls should fill most of 16 shards: {partitions:?}"
    );
    assert!(
        partitions
            .iter()
            .all(|p| p.len() == "pa07-lee#2026-11-21#00".len())
    );

    assert_eq!(
        s.ledger
            .day(&day("pa07-lee", date(2026, 11, 20)))
            .await
            .unwrap(),
        vec![]
    );

    // Streamed, two items a query: every shard read page by page, merged in call-id order.
    let paged = s.ledger.clone().with_stream_page(2);
    let wanted_day = day("pa07-lee", wanted);
    let streamed: Vec<CallRecord> = paged.day_records(&wanted_day).try_collect().await.unwrap();
    assert_eq!(streamed, got, "the same calls in the same order");
    for r in &got {
        let delivery = DeliveryRecord::planned(
            DeliveryKey {
                call: r.key.clone(),
                destination: "hook".into(),
            },
            "webhook",
            &DeliveryPlan::Send(serde_json::json!({"id": r.key.call_id.0})),
            r.updated_at,
        );
        assert!(s.ledger.insert_delivery(&delivery).await.unwrap());
    }
    let deliveries: Vec<_> = paged
        .delivery_records(&wanted_day, "hook")
        .try_collect()
        .await
        .unwrap();
    assert_eq!(
        deliveries
            .iter()
            .map(|d| d.key.call.call_id.0.to_string())
            .collect::<Vec<_>>(),
        ids
    );
    assert_eq!(
        paged
            .delivery_records(&wanted_day, "other")
            .try_collect::<Vec<_>>()
            .await
            .unwrap(),
        vec![]
    );
}

fn stored_day(candidate: &str, d: Date, complete: bool) -> DayRecord {
    let mut r = DayRecord::new(day(candidate, d));
    r.complete = complete;
    r.runs = 1;
    r.last_run_at = Some(Timestamp::now());
    r.exports.push(ExportRef {
        key: format!("exports/{candidate}/{d}.csv"),
        rows: 12,
        at: Timestamp::now(),
    });
    r
}

#[tokio::test]
async fn day_records_are_created_once_and_replaced_only_on_the_current_version() {
    let s = stores().await;
    let key = day("pa07-lee", date(2026, 11, 21));
    assert_eq!(s.days.get(&key).await.unwrap(), None);

    let mut record = DayRecord::new(key.clone());
    record.lock_id = Some("run-1".into());
    record.lock_until = Some(Timestamp::now());
    assert!(
        s.days.replace(&mut record).await.unwrap(),
        "version 0 creates"
    );
    assert_eq!(record.version, 1);
    assert_eq!(s.days.get(&key).await.unwrap(), Some(record.clone()));

    let mut rival = DayRecord::new(key.clone());
    assert!(
        !s.days.replace(&mut rival).await.unwrap(),
        "a second create of the same day fails"
    );
    assert_eq!(rival.version, 0);

    let mut stale = record.clone();
    record.runs = 1;
    record.report.attempts = 1;
    record.report.last_error = Some("webhook answered 500".into());
    assert!(s.days.replace(&mut record).await.unwrap());
    assert_eq!(record.version, 2);

    stale.complete = true;
    assert!(!s.days.replace(&mut stale).await.unwrap(), "stale version");
    assert_eq!(stale.version, 1);
    assert_eq!(s.days.get(&key).await.unwrap(), Some(record));
}

#[tokio::test]
async fn open_days_omit_complete_days_and_come_oldest_first() {
    let s = stores().await;
    let mut created = Vec::new();
    for (d, complete) in [
        (date(2026, 11, 21), false),
        (date(2026, 11, 19), false),
        (date(2026, 11, 20), true),
        (date(2025, 12, 31), false),
    ] {
        let mut r = stored_day("pa07-lee", d, complete);
        assert!(s.days.replace(&mut r).await.unwrap());
        created.push(r);
    }
    let mut elsewhere = stored_day("ny14-smith", date(2026, 11, 18), false);
    s.days.replace(&mut elsewhere).await.unwrap();
    // A usage counter shares the candidate's partition but is not a day.
    s.days
        .add_van_requests(&day("pa07-lee", date(2026, 11, 19)), 3)
        .await
        .unwrap();

    let open = s.days.open_days(&slug("pa07-lee")).await.unwrap();
    let dates: Vec<Date> = open.iter().map(|r| r.key.date).collect();
    assert_eq!(
        dates,
        vec![date(2025, 12, 31), date(2026, 11, 19), date(2026, 11, 21)]
    );
    for r in &open {
        assert_eq!(Some(r), created.iter().find(|c| c.key == r.key));
    }

    // Completing a day closes it.
    let mut last = open.last().unwrap().clone();
    last.complete = true;
    assert!(s.days.replace(&mut last).await.unwrap());
    assert_eq!(s.days.open_days(&slug("pa07-lee")).await.unwrap().len(), 2);
    assert_eq!(
        s.days.open_days(&slug("ca12-nobody")).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn van_requests_accumulate_per_day() {
    let s = stores().await;
    let key = day("pa07-lee", date(2026, 11, 21));
    assert_eq!(s.days.van_requests(&key).await.unwrap(), 0);

    // One after another. DynamoDB's ADD is atomic, so workers counting at the same time
    // never lose a count; moto's is not (it reads and writes the item in separate steps
    // without a lock, and 20 parallel adds there end at 17 or 18), so it cannot show that.
    for _ in 0..20 {
        s.days.add_van_requests(&key, 1).await.unwrap();
    }
    assert_eq!(s.days.van_requests(&key).await.unwrap(), 20);

    s.days.add_van_requests(&key, 5).await.unwrap();
    assert_eq!(s.days.van_requests(&key).await.unwrap(), 25);
    assert_eq!(
        s.days
            .van_requests(&day("pa07-lee", date(2026, 11, 22)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.days.get(&key).await.unwrap(),
        None,
        "the counter is not a day record"
    );
}

#[tokio::test]
async fn a_capped_count_adds_only_while_it_stays_within_the_cap() {
    let s = stores().await;
    let key = day("pa07-lee", date(2026, 11, 21));
    // From nothing: the first add creates the counter.
    assert!(s.days.add_van_requests_within(&key, 2, 3).await.unwrap());
    assert!(s.days.add_van_requests_within(&key, 1, 3).await.unwrap());
    assert_eq!(s.days.van_requests(&key).await.unwrap(), 3);
    // At the cap: refused, nothing added, and the plain count still counts past it.
    assert!(!s.days.add_van_requests_within(&key, 1, 3).await.unwrap());
    assert_eq!(s.days.van_requests(&key).await.unwrap(), 3);
    assert!(!s.days.add_van_requests_within(&key, 5, 4).await.unwrap());
    assert!(s.days.add_van_requests_within(&key, 1, 4).await.unwrap());
    assert_eq!(s.days.van_requests(&key).await.unwrap(), 4);
    // More than the cap at once, on a fresh day, is refused too.
    let other = day("pa07-lee", date(2026, 11, 22));
    assert!(!s.days.add_van_requests_within(&other, 5, 4).await.unwrap());
    assert_eq!(s.days.van_requests(&other).await.unwrap(), 0);
}

#[tokio::test]
async fn objects_list_in_order_read_back_rename_and_presign() {
    let stack = LocalStack::up(&[], &[]).await;
    let bucket = &stack.resources["DataBucket"];
    let objects = S3Objects::from_conf(&stack.aws, bucket);
    assert_eq!(objects.bucket(), bucket);

    let cdr = b"call_id,account\n1,pa07-van-1\n".to_vec();
    let spaced = "inbox/pa07-lee/Nov 21 (final)+1.csv";
    objects.put(spaced, cdr.clone(), "text/csv").await.unwrap();
    objects
        .put("inbox/pa07-lee/a.csv", b"x".to_vec(), "text/csv")
        .await
        .unwrap();
    objects
        .put("inbox/pa07-lee/sub/", Vec::new(), "application/x-directory")
        .await
        .unwrap();
    objects
        .put("inbox/ny14-smith/b.csv", b"y".to_vec(), "text/csv")
        .await
        .unwrap();

    let listed = objects.list("inbox/pa07-lee/").await.unwrap();
    assert_eq!(
        listed
            .iter()
            .map(|o| (o.key.as_str(), o.size))
            .collect::<Vec<_>>(),
        [(spaced, cdr.len() as u64), ("inbox/pa07-lee/a.csv", 1)],
        "in key order, without folder markers"
    );
    assert_eq!(objects.get(spaced).await.unwrap(), cdr);
    // Each with S3's fingerprint of its bytes: the same bytes under another name have the
    // same one (a run's progress through a file is kept by it), others another.
    objects
        .put("inbox/ny14-smith/same.csv", cdr.clone(), "text/csv")
        .await
        .unwrap();
    let same = &objects.list("inbox/ny14-smith/same").await.unwrap()[0];
    assert!(!listed[0].etag.is_empty());
    assert_eq!(same.etag, listed[0].etag);
    assert_ne!(listed[1].etag, listed[0].etag);

    // A big object streams in pieces that add up to it.
    let big: Vec<u8> = (0..3_000_000_u32).map(|i| (i % 251) as u8).collect();
    objects
        .put("inbox/pa07-lee/big.csv", big.clone(), "text/csv")
        .await
        .unwrap();
    let pieces: Vec<bytes::Bytes> = objects
        .open("inbox/pa07-lee/big.csv")
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert!(pieces.len() > 1, "{} pieces", pieces.len());
    assert_eq!(pieces.concat(), big);
    objects
        .rename("inbox/pa07-lee/big.csv", "elsewhere/big.csv")
        .await
        .unwrap();

    // Uploads: a big one in parts (a multipart upload), a small one at once, an aborted
    // one leaves nothing; none is visible before it is finished.
    let huge: Vec<u8> = (0..20_000_000_u32).map(|i| (i % 241) as u8).collect();
    let mut upload = objects
        .upload("exports/pa07-lee/huge.csv", "text/csv")
        .await
        .unwrap();
    for piece in huge.chunks(1_000_000) {
        upload.write(piece.to_vec()).await.unwrap();
    }
    assert!(
        objects.list("exports/pa07-lee/").await.unwrap().is_empty(),
        "not before it is finished"
    );
    upload.finish().await.unwrap();
    assert_eq!(
        objects.get("exports/pa07-lee/huge.csv").await.unwrap(),
        huge
    );
    let mut small = objects
        .upload("exports/pa07-lee/small.csv", "text/csv")
        .await
        .unwrap();
    small.write(b"a,b\n".to_vec()).await.unwrap();
    small.write(b"1,2\n".to_vec()).await.unwrap();
    small.finish().await.unwrap();
    assert_eq!(
        objects.get("exports/pa07-lee/small.csv").await.unwrap(),
        b"a,b\n1,2\n"
    );
    let mut dropped = objects
        .upload("exports/pa07-lee/dropped.csv", "text/csv")
        .await
        .unwrap();
    dropped.write(huge[..9_000_000].to_vec()).await.unwrap();
    dropped.abort().await;
    assert_eq!(
        objects
            .list("exports/pa07-lee/")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.key)
            .collect::<Vec<_>>(),
        vec!["exports/pa07-lee/huge.csv", "exports/pa07-lee/small.csv"]
    );
    assert!(matches!(
        objects.open("inbox/pa07-lee/missing.csv").await,
        Err(StoreError::Corrupt { .. })
    ));

    let processed = "processed/pa07-lee/Nov 21 (final)+1.csv";
    objects.rename(spaced, processed).await.unwrap();
    assert_eq!(objects.get(processed).await.unwrap(), cdr);
    assert_eq!(
        objects
            .list("inbox/pa07-lee/")
            .await
            .unwrap()
            .iter()
            .map(|o| o.key.as_str())
            .collect::<Vec<_>>(),
        vec!["inbox/pa07-lee/a.csv"]
    );
    match objects.get(spaced).await {
        Err(StoreError::Corrupt { what, message }) => {
            assert!(what.contains(spaced), "{what}");
            assert_eq!(message, "does not exist");
        }
        other => panic!("expected a missing object, got {other:?}"),
    }

    let url = objects
        .presign(processed, Duration::from_secs(300))
        .await
        .unwrap();
    assert!(url.contains("X-Amz-Expires=300"), "{url}");
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("text/csv")
    );
    assert_eq!(resp.bytes().await.unwrap().to_vec(), cdr);
}

fn messages(n: usize) -> Vec<SyncMessage> {
    (0..n)
        .map(|i| SyncMessage {
            candidate: slug(if i % 2 == 0 { "pa07-lee" } else { "ny14-smith" }),
            date: date(2026, 11, 21),
            call_id: CallId(format!("call-{i:03}").into()),
            destination: None,
        })
        .collect()
}

/// Everything on the queue at `url`, sorted by call id.
async fn receive_all(client: &aws_sdk_sqs::Client, url: &str, expected: usize) -> Vec<SyncMessage> {
    let mut received = Vec::new();
    for _ in 0..20 {
        if received.len() >= expected {
            break;
        }
        let out = client
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        for m in out.messages() {
            received.push(serde_json::from_str::<SyncMessage>(m.body().unwrap()).unwrap());
        }
    }
    received.sort_by(|a, b| a.call_id.cmp(&b.call_id));
    received
}

#[tokio::test]
async fn sent_sync_messages_all_arrive_on_the_queue() {
    let stack = LocalStack::up(&[], &[]).await;
    let url = &stack.resources["SyncQueue"];
    let client = aws_sdk_sqs::Client::new(&stack.aws);
    let queue = SqsQueue::new(client.clone(), url, &stack.resources["DeliveryQueue"]);
    let sent = messages(25);
    assert_eq!(queue.send(&sent).await.unwrap(), Vec::<usize>::new());
    assert_eq!(queue.send(&[]).await.unwrap(), Vec::<usize>::new());
    assert_eq!(receive_all(&client, url, sent.len()).await, sent);
}

#[tokio::test]
async fn vans_messages_and_every_other_destinations_travel_in_lanes_of_their_own() {
    let stack = LocalStack::up(&[], &[]).await;
    let (calls, deliveries) = (
        &stack.resources["SyncQueue"],
        &stack.resources["DeliveryQueue"],
    );
    let client = aws_sdk_sqs::Client::new(&stack.aws);
    let queue = SqsQueue::new(client.clone(), calls, deliveries);
    // Mixed, as a night's fan-out sends them: every third names a destination.
    let mut sent = messages(27);
    for (i, m) in sent.iter_mut().enumerate() {
        if i % 3 == 0 {
            m.destination = Some(if i % 2 == 0 { "crm-hook" } else { "city-esb" }.into());
        }
    }
    assert_eq!(queue.send(&sent).await.unwrap(), Vec::<usize>::new());
    let (van, others): (Vec<SyncMessage>, Vec<SyncMessage>) =
        sent.into_iter().partition(|m| m.destination.is_none());
    assert_eq!(receive_all(&client, calls, van.len()).await, van);
    assert_eq!(receive_all(&client, deliveries, others.len()).await, others);
    // Delayed tries (a destination's back-off) keep to their lane too.
    let later = others[..2].to_vec();
    assert_eq!(
        queue
            .send_later(&later, Duration::from_millis(1))
            .await
            .unwrap(),
        Vec::<usize>::new()
    );
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(receive_all(&client, deliveries, 2).await, later);
    assert!(receive_all(&client, calls, 0).await.is_empty());
}

#[tokio::test]
async fn a_queue_that_cannot_be_reached_reports_every_message_unsent() {
    let stack = LocalStack::up(&[], &[]).await;
    let missing = stack.resources["SyncQueue"].replace("SyncQueue", "NoSuchQueue");
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&stack.aws),
        &missing,
        stack.resources["DeliveryQueue"].clone(),
    );
    let mut sent = messages(23);
    for m in sent.iter_mut().skip(20) {
        m.destination = Some("crm-hook".into());
    }
    assert_eq!(
        queue.send(&sent).await.unwrap(),
        (0..20).collect::<Vec<_>>(),
        "whole-batch failures come back as indexes for the sweep, not as an error; the other lane's went"
    );
}
