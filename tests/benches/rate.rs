//! `cargo bench -p callsync-tests --bench rate`: delivery against VAN's rate limit.
//!
//! The fake VAN limits the key (15 requests a second sustained with a burst of 3, and 200 a
//! second with a burst of 20) and answers each post after 50 ms; the stores answer after
//! 7 ms, as DynamoDB does from a Lambda. `sync-call` runs as its queue would run it: 1, 2,
//! 4 or 8 workers taking batches of ten, messages handed back with a delay coming back
//! after it, messages left for redelivery coming back at once. The candidate's VAN
//! `rate_limit` is the fake's. Printed for each: delivered calls a second as a share of the
//! limit (from the first post to the last call done), and the share of posts answered 429.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use callsync::adapters::memory::{MemoryQueue, MemorySecrets};
use callsync::candidate::CandidateDoc;
use callsync::ledger::DayKey;
use callsync::ports::SyncMessage;
use callsync::values::CandidateSlug;
use callsync_tests::bench::{Lane, bench_night, memory_services, van_pending};
use callsync_tests::fake_van::{FakeVan, Fault, FaultKind, RateLimit, VanData};
use callsync_tests::observed::{Latency, observe};
use serde_json::json;

const STORE_LATENCY: Duration = Duration::from_millis(7);
const POST_LATENCY: Duration = Duration::from_millis(50);

fn candidate(rate: f64) -> CandidateDoc {
    serde_json::from_value(json!({
        "slug": "bench", "display_name": "Bench", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": "full", "district": "ny14",
        "van": {"secret_name": "callsync/bench/van", "database_mode": "voter_file",
                "rate_limit": rate},
        "results": [
            {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}], "sync": true},
            {"result": "Agent Cust 2", "display_name": "Lean support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9101}], "sync": true},
            {"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
             "result_code_id": 20, "sync": true},
            {"result": "No Answer", "display_name": "No answer", "success": false, "result_code_id": 1}
        ]
    }))
    .expect("bench candidate")
}

struct Measured {
    calls: usize,
    per_second: f64,
    posts: usize,
    limited: usize,
    crowded: usize,
}

/// One night of about `van_calls` VAN-bound calls at `limit` a second with `workers`.
async fn night(limit: u32, burst: u32, workers: usize, van_calls: u64) -> Measured {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once("canvassResponses", FaultKind::Delay(POST_LATENCY)).times(u32::MAX));
    let queue = Arc::new(MemoryQueue::default());
    let secrets = MemorySecrets::default().with(
        "callsync/bench/van",
        r#"{"application_name":"callsync-demo","api_key":"demo-van-key"}"#,
    );
    let connectors = callsync::connect::Connectors {
        van_base_url: Some(van.base_url()),
        egress: callsync::egress::Egress::LOCAL,
        ..Default::default()
    };
    let svc = memory_services(queue.clone(), secrets, connectors.for_sync());
    svc.config
        .put(&candidate(f64::from(limit)))
        .await
        .expect("store");
    let date = jiff::civil::date(2026, 11, 3);
    // About three calls in ten of the demo night are VAN's; VAN knows every one of them.
    let rows = van_calls * 10 / 3;
    van.add_people((0..rows).map(|n| 18_000_000 + n * 7));
    bench_night(&svc, date, rows).await;
    let slug = CandidateSlug::parse("bench").expect("slug");
    let calls: Vec<SyncMessage> = queue
        .drain()
        .into_iter()
        .filter(|m| m.destination.is_none())
        .collect();
    let count = calls.len();
    let lane = Arc::new(Lane::new(calls));
    let svc = Arc::new(observe(svc, Arc::new(Latency(STORE_LATENCY))));
    van.set_rate_limit(Some(RateLimit {
        burst,
        per_second: limit,
    }));

    let done = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (lane, svc, done) = (lane.clone(), svc.clone(), done.clone());
        tasks.push(tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let batch = lane.take(10);
                if batch.is_empty() {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
                lane.deliver(&svc, &batch).await;
            }
        }));
    }
    // Messages handed back with a delay come back after it, as the queue's would.
    let mover = {
        let (lane, queue, done) = (lane.clone(), queue.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let due: Vec<_> = std::mem::take(&mut *queue.delayed.lock().expect("lock"));
                for (message, delay) in due {
                    let lane = lane.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep(delay).await;
                        lane.give_back([message]);
                    });
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let day = DayKey {
        candidate: slug,
        date,
    };
    // Done when no VAN-bound call is left to deliver; polled slowly (reading the day is
    // work the workers would otherwise have), and timed by VAN's own clock: from the
    // start to its answer to the last post.
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let pending = van_pending(&svc, &day).await;
        if pending == 0 {
            break;
        }
    }
    done.store(true, Ordering::Relaxed);
    for t in tasks {
        t.await.expect("worker");
    }
    mover.await.expect("mover");
    let requests = van.requests();
    let posts: Vec<u16> = requests
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/canvassResponses"))
        .map(|r| r.status)
        .collect();
    // Requests that reached VAN closer than half the limit's gap after the one before.
    let mut arrivals: Vec<Instant> = requests.iter().map(|r| r.received_at).collect();
    arrivals.sort_unstable();
    let half_gap = Duration::from_secs_f64(0.5 / f64::from(limit));
    if std::env::var("RATE_TRACE").is_ok() {
        // Every request to VAN in arrival order, for a look at the pace.
        let mut all = requests.clone();
        all.sort_by_key(|r| r.received_at);
        for r in &all {
            eprintln!(
                "{:>9.1} ms {} {} {}",
                r.received_at.duration_since(started).as_secs_f64() * 1000.0,
                r.status,
                r.method,
                r.path
            );
        }
    }
    let crowded = arrivals
        .windows(2)
        .filter(|w| w[1].duration_since(w[0]) < half_gap)
        .count();
    let took = requests
        .iter()
        .map(|r| r.answered_at)
        .max()
        .map_or(Duration::ZERO, |last| last.duration_since(started));
    Measured {
        calls: count,
        per_second: count as f64 / took.as_secs_f64(),
        posts: posts.len(),
        limited: posts.iter().filter(|s| **s == 429).count(),
        crowded,
    }
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches as tests with `--bench` absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("rate: run with `cargo bench -p callsync-tests --bench rate`");
        return;
    }
    // (limit a second, burst, VAN calls): ten to twenty seconds of posts at the limit.
    // `RATE_BENCH=15x4` runs one configuration (limit 15/s, 4 workers).
    let only = std::env::var("RATE_BENCH").ok();
    for (limit, burst, calls) in [(15, 3, 300), (200, 20, 2_000)] {
        for workers in [1, 2, 4, 8] {
            if only
                .as_deref()
                .is_some_and(|o| o != format!("{limit}x{workers}"))
            {
                continue;
            }
            let m = night(limit, burst, workers, calls).await;
            println!(
                "VAN limit {limit:>3}/s, {workers} worker(s): {} calls at {:.1}/s = {:.0} % of the limit; {} of {} posts answered 429 ({:.1} %); {} requests within half a gap of the one before",
                m.calls,
                m.per_second,
                100.0 * m.per_second / f64::from(limit),
                m.limited,
                m.posts,
                100.0 * m.limited as f64 / m.posts.max(1) as f64,
                m.crowded
            );
        }
    }
}
