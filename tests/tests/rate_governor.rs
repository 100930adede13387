//! The rate governor across processes: two `sync-call` workers with their own wiring (two
//! Lambda instances) deliver one night to the fake VAN through one schedule of VAN's key
//! kept in DynamoDB (moto).
#![allow(clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use callsync::values::DatabaseMode;
use callsync::van::{VanClient, VanCredentials};
use callsync_tests::fake_van::{FakeVan, VanData};
use callsync_tests::harness::LocalStack;
use callsync_tests::night::{TestClock, drain, one_result_van_night, services};

const CALLS: u64 = 30;
const RATE: f64 = 20.0;

#[tokio::test]
async fn workers_in_two_processes_take_turns_on_one_schedule_of_vans_key() {
    let van = FakeVan::start(VanData::demo()).await;
    van.add_people(100_001..=100_000 + CALLS);
    let stack = LocalStack::up(
        &[(
            "callsync/governed/van",
            r#"{"application_name":"callsync-demo","api_key":"demo-van-key"}"#.to_owned(),
        )],
        &[("CALLSYNC_VAN_BASE_URL", van.base_url())],
    )
    .await;
    let clock = TestClock::new("2026-11-22T14:00:00Z");
    let (a, b) = (services(&stack, clock.clone()), services(&stack, clock));
    one_result_van_night(&a, "governed", CALLS, Some(RATE)).await;

    let started_ms = jiff::Timestamp::now().as_millisecond();
    let started = Instant::now();
    let (batches_a, batches_b) = tokio::join!(drain(&stack, &a), drain(&stack, &b));
    let elapsed = started.elapsed();

    // Every call posted once, both workers at work.
    let people: BTreeSet<u64> = van.canvass_posts().iter().map(|(id, _)| *id).collect();
    assert_eq!(van.canvass_posts().len() as u64, CALLS);
    assert_eq!(people.len() as u64, CALLS);
    assert!(batches_a > 0 && batches_b > 0, "{batches_a} {batches_b}");

    // Every request, whichever worker sent it, took its own slot of the one schedule of
    // the key: the schedule reaches (requests - 1) gaps past the start, and the night took
    // at least that long (two workers each keeping the rate alone would take half).
    let requests = van.requests().len() as u64;
    let gap = Duration::from_secs_f64(1.0 / RATE);
    let credentials = VanCredentials {
        application_name: "callsync-demo".into(),
        api_key: "demo-van-key".into(),
    };
    let key = VanClient::new(
        &van.base_url(),
        credentials,
        DatabaseMode::VoterFile,
        Default::default(),
    )
    .unwrap()
    .rate_key();
    let schedule = a
        .rates
        .rate(&key)
        .await
        .unwrap()
        .expect("one schedule for VAN's key, by a digest of the key");
    let spanned = Duration::from_millis((schedule.next_ms - started_ms) as u64);
    let least = gap * (requests as u32 - 1);
    eprintln!("{requests} requests: schedule {spanned:?}, night {elapsed:?}");
    assert!(spanned >= least, "{spanned:?} for {requests} requests");
    assert!(elapsed >= least, "{elapsed:?} for {requests} requests");
    assert!(
        !key.contains("governed-key"),
        "the key itself is never stored"
    );
}
