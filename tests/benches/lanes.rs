//! `cargo bench -p callsync-tests --bench lanes`: VAN's pace while a partner never answers.
//!
//! A night of 1,000 calls (about 300 of them for VAN) on the in-memory stores, posted to the
//! fake VAN at 50 ms a post, every call also for a signed webhook. `sync-call` runs as its
//! queues would run it: two workers per queue taking batches of ten. Printed: VAN's calls a
//! second with the webhook answering at once and with it never answering (each send waits
//! out its 2 s timeout), and the ratio — with two lanes (VAN's calls and the other
//! destinations' deliveries on queues of their own, as deployed) and, for comparison, with
//! one queue both share.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use callsync::adapters::memory::{MemoryQueue, MemorySecrets};
use callsync::candidate::CandidateDoc;
use callsync::ports::SyncMessage;
use callsync::services::Services;
use callsync::values::CandidateSlug;
use callsync_tests::bench::{Lane, bench_night, memory_services, van_pending};
use callsync_tests::fake_receiver::{Behaviour, Receiver};
use callsync_tests::fake_van::{FakeVan, Fault, FaultKind, VanData};
use serde_json::json;

const CALLS: u64 = 1_000;
const WORKERS: usize = 2;
const SIGNING_SECRET: &str = "bench-signing-secret-0123456789abcdef";

async fn services(van: &FakeVan, queue: Arc<MemoryQueue>) -> Services {
    let secrets = MemorySecrets::default()
        .with(
            "callsync/bench/van",
            r#"{"application_name":"callsync-demo","api_key":"demo-van-key"}"#,
        )
        .with(
            "callsync/bench/hook",
            &json!({ "signing_secret": SIGNING_SECRET }).to_string(),
        );
    let connectors = callsync::connect::Connectors {
        van_base_url: Some(van.base_url()),
        egress: callsync::egress::Egress::LOCAL,
        ..Default::default()
    };
    memory_services(queue, secrets, connectors.for_sync())
}

fn candidate(hook_url: &str) -> CandidateDoc {
    serde_json::from_value(json!({
        "slug": "bench", "display_name": "Bench", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": "full", "district": "ny14",
        "van": {"secret_name": "callsync/bench/van", "database_mode": "voter_file",
                "rate_limit": 1000},
        "results": [
            {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}], "sync": true},
            {"result": "Agent Cust 2", "display_name": "Lean support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9101}], "sync": true},
            {"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
             "result_code_id": 20, "sync": true},
            {"result": "No Answer", "display_name": "No answer", "success": false, "result_code_id": 1}
        ],
        "destinations": [
            {"name": "hook", "kind": "webhook", "url": hook_url,
             "secret_name": "callsync/bench/hook", "timeout_secs": 2, "rate_limit": 1000}
        ]
    }))
    .expect("bench candidate")
}

/// One night: VAN's calls a second until every VAN-bound call is done.
async fn night(partner: Behaviour, lanes: bool) -> f64 {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(
        Fault::once(
            "canvassResponses",
            FaultKind::Delay(Duration::from_millis(50)),
        )
        .times(u32::MAX),
    );
    let receiver = Receiver::start(SIGNING_SECRET).await;
    receiver.set(partner);
    let queue = Arc::new(MemoryQueue::default());
    let svc = services(&van, queue.clone()).await;
    svc.config
        .put(&candidate(&receiver.url))
        .await
        .expect("store");
    let date = jiff::civil::date(2026, 11, 3);
    bench_night(&svc, date, CALLS).await;

    let (calls, deliveries): (Vec<SyncMessage>, Vec<SyncMessage>) = queue
        .drain()
        .into_iter()
        .partition(|m| m.destination.is_none());
    let van_calls = calls.len();
    // Two lanes as deployed; or one queue, VAN's and the partner's messages interleaved.
    let queues: Vec<Arc<Lane>> = if lanes {
        vec![Arc::new(Lane::new(calls)), Arc::new(Lane::new(deliveries))]
    } else {
        let mut mixed = VecDeque::new();
        let mut d = deliveries.into_iter();
        for c in calls {
            mixed.push_back(c);
            mixed.extend(d.next());
        }
        mixed.extend(d);
        vec![Arc::new(Lane::new(mixed))]
    };

    let svc = Arc::new(svc);
    let started = Instant::now();
    let van_done = Arc::new(Mutex::new(None::<Duration>));
    let mut workers = Vec::new();
    for lane in &queues {
        for _ in 0..WORKERS {
            let (lane, svc) = (lane.clone(), svc.clone());
            workers.push(tokio::spawn(async move {
                loop {
                    let batch = lane.take(10);
                    if batch.is_empty() {
                        break;
                    }
                    lane.deliver(&svc, &batch).await;
                }
            }));
        }
    }
    // VAN's pace: until every VAN-bound call is out of `unsynced`/`in_progress`.
    let watcher = {
        let (svc, van_done) = (svc.clone(), van_done.clone());
        tokio::spawn(async move {
            let day = callsync::ledger::DayKey {
                candidate: CandidateSlug::parse("bench").expect("slug"),
                date: jiff::civil::date(2026, 11, 3),
            };
            loop {
                let pending = van_pending(&svc, &day).await;
                if pending == 0 {
                    *van_done.lock().expect("lock") = Some(started.elapsed());
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    watcher.await.expect("watcher");
    for w in workers {
        w.await.expect("worker");
    }
    let took = van_done
        .lock()
        .expect("lock")
        .unwrap_or_else(|| started.elapsed());
    van_calls as f64 / took.as_secs_f64()
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches as tests with `--bench` absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("lanes: run with `cargo bench -p callsync-tests --bench lanes`");
        return;
    }
    for (lanes, name) in [(true, "two lanes (deployed)"), (false, "one shared queue")] {
        let answering = night(Behaviour::Accept, lanes).await;
        let stalled = night(Behaviour::Stall, lanes).await;
        println!(
            "{name:>22}: VAN {answering:.1} calls/s with the partner answering, {stalled:.1} with it never answering: {:.0} % of the pace",
            100.0 * stalled / answering
        );
    }
}
