//! `cargo bench -p callsync-tests --bench night_100k`: one nightly run over a 100,000-call
//! CDR file on the in-memory twins of the stores — the core's own cost (reading, planning,
//! the budget, recording, the CSV, queueing) without network latency. Prints the time of
//! each phase and the process's peak resident memory, which also holds the twins' copies
//! of every record and object, so it is an upper bound on what the Lambda needs.

use std::sync::Arc;
use std::time::Instant;

use callsync::adapters::memory::{MemoryQueue, MemorySecrets};
use callsync::candidate::CandidateDoc;
use callsync::nightly::{self, RunOptions};
use callsync::services::Services;
use callsync::values::CandidateSlug;
use callsync_tests::bench::{memory_services, peak_rss_mib};
use callsync_tests::demo_data::cdr_night;

const CALLS: u64 = 100_000;

fn services(queue: Arc<MemoryQueue>) -> Services {
    memory_services(queue, MemorySecrets::default(), Default::default())
}

async fn night(strategy: &str) {
    let queue = Arc::new(MemoryQueue::default());
    let svc = services(queue.clone());
    let strategy_json: serde_json::Value = serde_json::from_str(strategy)
        .unwrap_or_else(|_| serde_json::Value::String(strategy.into()));
    let doc: CandidateDoc = serde_json::from_value(serde_json::json!({
        "slug": "bench", "display_name": "Bench", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": strategy_json,
        "van": {"secret_name": "callsync/bench/van", "database_mode": "voter_file"},
        "results": [
            {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}],
             "activist_codes": [4400], "sync": true, "priority": 10},
            {"result": "Agent Cust 2", "display_name": "Lean support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9101}], "sync": true},
            {"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
             "result_code_id": 20, "sync": true},
            {"result": "Busy", "display_name": "Busy", "success": false, "result_code_id": 18, "csv": true},
            {"result": "No Answer", "display_name": "No answer", "success": false, "result_code_id": 1, "csv": true},
            {"result": "Hung Up in Opening", "display_name": "Dropped", "success": false}
        ]
    }))
    .expect("bench candidate");
    svc.config.put(&doc).await.expect("store");
    let date = jiff::civil::date(2026, 11, 3);
    let started = Instant::now();
    let cdr = cdr_night(date, CALLS);
    let bytes = cdr.len();
    svc.objects
        .put("inbox/bench/cdr.csv", cdr.into_bytes(), "text/csv")
        .await
        .expect("put");
    let generated = started.elapsed();

    let started = Instant::now();
    let summary = nightly::run(
        &svc,
        &CandidateSlug::parse("bench").expect("slug"),
        date,
        RunOptions::default(),
    )
    .await
    .expect("run");
    let ran = started.elapsed();
    println!(
        "{strategy:>8}: {CALLS} calls ({:.1} MB CDR, made in {:.2}s) → run {:.2}s ({:.1} µs/call): {} new, {} bad rows, {} queued, CSV rows {}; peak RSS so far {:.0} MiB",
        bytes as f64 / 1e6,
        generated.as_secs_f64(),
        ran.as_secs_f64(),
        ran.as_secs_f64() * 1e6 / CALLS as f64,
        summary.new_calls,
        summary.bad_rows,
        queue.drain().len(),
        summary
            .days
            .iter()
            .filter_map(|d| d.csv.as_ref())
            .map(|c| c.rows)
            .sum::<u64>(),
        peak_rss_mib(),
    );
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches as tests with `--bench` absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("night_100k: run with `cargo bench -p callsync-tests --bench night_100k`");
        return;
    }
    println!("start: peak RSS {:.0} MiB", peak_rss_mib());
    night("full").await;
    night("hybrid").await;
    night("all_csv").await;
    night("{\"budget\":{\"daily_free_requests\":1000}}").await; // 1,000 a day: the night's calls span two settled days
}
