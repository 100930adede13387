//! Store requests per posted call on VAN's path, counted on the real DynamoDB adapters (moto)
//! while `sync-call` delivers a night to the fake VAN: a lease and a settle per call, and the
//! day's request counter counted ahead a batch at a time — 429s included, every request
//! still counted before it is sent — and VAN's rate schedule taken half a second of slots at
//! a time.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use callsync::ledger::DayKey;
use callsync::values::CandidateSlug;
use callsync_tests::fake_van::{FakeVan, RateLimit, VanData};
use callsync_tests::harness::LocalStack;
use callsync_tests::night::{TestClock, drain_killing, one_result_van_night, services};
use callsync_tests::observed::{Counts, observe_each};
use jiff::civil::{Date, date};

const VAN_SECRET: &str = r#"{"application_name":"callsync-demo","api_key":"demo-van-key"}"#;
const DAY: Date = date(2026, 11, 21);

/// What delivering a night cost: the store reads and writes of the delivery alone (the
/// nightly run's own are left out), the day store's writes among them (the request
/// counter's), the fake VAN, and the day's request count.
struct Cost {
    reads: u64,
    writes: u64,
    counter_writes: u64,
    van: FakeVan,
    counted: u64,
}

/// A night of `calls` VAN-bound calls delivered by `sync-call`.
async fn deliver_a_night(calls: u64, limit: Option<RateLimit>, van_rate: Option<f64>) -> Cost {
    deliver_a_night_killing(calls, limit, van_rate, &mut || None).await
}

/// [`deliver_a_night`] with workers that die where `kill` says (see `drain_killing`).
async fn deliver_a_night_killing(
    calls: u64,
    limit: Option<RateLimit>,
    van_rate: Option<f64>,
    kill: &mut dyn FnMut() -> Option<std::time::Duration>,
) -> Cost {
    let van = FakeVan::start(VanData::demo()).await;
    van.add_people(100_001..=100_000 + calls);
    let stack = LocalStack::up(
        &[("callsync/stores/van", VAN_SECRET.to_owned())],
        &[("CALLSYNC_VAN_BASE_URL", van.base_url())],
    )
    .await;
    let counts = Arc::new(Counts::default());
    let day_counts = Arc::new(Counts::default());
    let svc = observe_each(
        services(&stack, TestClock::new("2026-11-22T14:00:00Z")),
        [counts.clone(), day_counts.clone(), counts.clone()],
    );
    one_result_van_night(&svc, "stores", calls, van_rate).await;
    van.set_rate_limit(limit);
    let _ = (counts.take(), day_counts.take());
    drain_killing(&stack, &svc, kill).await;
    let (reads, writes) = counts.take();
    let (counter_reads, counter_writes) = day_counts.take();
    let day = DayKey {
        candidate: CandidateSlug::parse("stores").unwrap(),
        date: DAY,
    };
    let counted = svc.days.van_requests(&day).await.unwrap();
    Cost {
        reads: reads + counter_reads,
        writes: writes + counter_writes,
        counter_writes,
        van,
        counted,
    }
}

#[tokio::test]
async fn a_posted_call_costs_at_most_three_store_writes_and_every_request_is_counted() {
    let Cost {
        reads,
        writes,
        van,
        counted,
        ..
    } = deliver_a_night(40, None, None).await;
    let posted = van.canvass_posts().len() as u64;
    assert_eq!(posted, 40);
    eprintln!("{reads} reads and {writes} writes for {posted} posted calls");
    // Per call: its lease and its settle. Per batch of ten: one count ahead (and a give-back
    // when the batch did not use all of it — the type lookups use one more block here), and
    // the governor's blocks of VAN's schedule (half a second of slots each: 7 at 15/s, so two
    // a batch, and a give-back of what the second did not use).
    let batches = posted.div_ceil(10);
    assert!(
        writes <= 3 * posted,
        "{writes} writes for {posted} posted calls"
    );
    assert!(
        writes <= 2 * posted + 2 * batches + 3 * batches + 2,
        "{writes} writes for {posted} posted calls: more than a lease, a settle, a few counts and slots"
    );
    // One consistent read of each call, and one of the schedule per block of slots (the
    // candidate document is read per batch); two workers writing the schedule at once cost
    // the loser one more read, which a busy machine makes likelier.
    assert!(
        reads <= posted + 4 * batches + 2,
        "{reads} reads for {posted} posted calls"
    );
    assert_eq!(
        counted,
        van.requests().len() as u64,
        "every request counted, once"
    );
}

#[tokio::test]
async fn rate_limited_posts_cost_no_more_counter_writes_and_every_request_is_still_counted() {
    // The key configured faster (200/s) than VAN takes it (40/s): a share of the posts are
    // answered 429 and retried, each retry a request.
    let limit = RateLimit {
        burst: 2,
        per_second: 40,
    };
    let Cost {
        writes,
        counter_writes,
        van,
        counted,
        ..
    } = deliver_a_night(40, Some(limit), Some(200.0)).await;
    let posted = van.canvass_posts().len() as u64;
    assert_eq!(posted, 40);
    let requests = van.requests().len() as u64;
    let limited = requests - posted - 2;
    eprintln!(
        "{writes} writes ({counter_writes} of the counter) for {posted} posted calls and {requests} VAN requests ({limited} answered 429)"
    );
    assert!(limited > 0, "some posts were answered 429: {requests}");
    // The counter costs no write per 429's retry: requests are counted ahead a block (a
    // batch's size) at a time, and what a batch did not use is given back once.
    let batches = posted.div_ceil(10);
    assert!(
        counter_writes <= requests.div_ceil(10) + 2 * batches,
        "{counter_writes} counter writes for {batches} batches and {limited} 429s"
    );
    // A 429 costs at most a write of the key's schedule (which slows every worker) and,
    // when its retry finds no slot left in the batch, its delivery's release and re-lease.
    assert!(
        writes <= 3 * posted + 3 * limited,
        "{writes} writes for {posted} posted calls and {requests} requests"
    );
    assert_eq!(counted, requests, "every request counted, 429s included");
}

#[tokio::test]
async fn a_worker_killed_holding_requests_counted_ahead_never_leaves_the_count_below_what_van_got()
{
    // The first five batches die part-way (after 40 to 200 ms): some after counting ahead and
    // posting part of their calls, before giving back what they did not use.
    let mut batches = 0u64;
    let mut kill = || {
        batches += 1;
        (batches <= 5).then(|| std::time::Duration::from_millis(40 * batches))
    };
    let Cost { van, counted, .. } = deliver_a_night_killing(40, None, None, &mut kill).await;
    let requests = van.requests().len() as u64;
    eprintln!("{counted} counted for {requests} VAN requests after killed workers");
    assert!(requests > 0);
    assert!(
        counted >= requests,
        "counted {counted}, VAN received {requests}: a request went out uncounted"
    );
    // At most one batch's block (ten) per killed worker is left counted and unsent.
    assert!(
        counted <= requests + 5 * 10,
        "counted {counted} for {requests} requests"
    );
}
