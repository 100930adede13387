//! `cargo bench -p callsync-tests --bench nights`: nightly runs over 100,000 and 1,000,000
//! calls (one CDR file) on the in-memory twins of the stores — the core's own cost
//! (reading, planning, the budget, recording, the CSV, queueing) without network latency.
//! Prints each run's time and the most heap the run itself held at once: every block the
//! stores keep (DynamoDB's, S3's and SQS's copies in production) is counted apart by the
//! allocator, so what is printed is what the `nightly` Lambda needs beyond its baseline.
//! Each size runs three times in turn, and the highest peaks are compared
//! (`NIGHTS_PEAKS=1` runs only those comparisons).
//! Then a full night at DynamoDB's latency (`NIGHTS_LATENT=16,64` runs only that, at
//! each number of ledger requests at once), and the same night in parts of 40 s, as if
//! that were the function's time (`NIGHTS_PARTS=40` runs only that). Then `/retry` of a day whose agent results the mapping lacked, at both sizes: the day
//! read a page at a time twice (the budget's ranking, then the re-plan), never held.

use std::sync::Arc;
use std::time::Instant;

use callsync::adapters::memory::MemoryQueue;
use callsync::candidate::CandidateDoc;
use callsync::ledger::CallState;
use callsync::nightly::{self, RunOptions};
use callsync::values::CandidateSlug;
use callsync_tests::bench::{bench_night, peak_rss_mib};
use callsync_tests::demo_data::cdr_night;
use callsync_tests::held::{self, Counting, held_services};
use callsync_tests::observed::{Latency, observe};

#[global_allocator]
static ALLOCATOR: Counting = Counting::system();

const MIB: f64 = 1024.0 * 1024.0;
/// How many times each size of a memory night runs.
const PEAK_RUNS: usize = 3;
const STORE_LATENCY: std::time::Duration = std::time::Duration::from_millis(7);

/// The bench's candidate; without `agent_rows` its mapping lacks the two agent results
/// (those calls are errors until a `/retry` after the mapping is fixed).
fn document(strategy: &str, agent_rows: bool) -> CandidateDoc {
    let strategy_json: serde_json::Value = serde_json::from_str(strategy)
        .unwrap_or_else(|_| serde_json::Value::String(strategy.into()));
    let mut results = vec![
        serde_json::json!({"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
         "result_code_id": 20, "sync": true}),
        serde_json::json!({"result": "Busy", "display_name": "Busy", "success": false, "result_code_id": 18, "csv": true}),
        serde_json::json!({"result": "No Answer", "display_name": "No answer", "success": false, "result_code_id": 1, "csv": true}),
        serde_json::json!({"result": "Hung Up in Opening", "display_name": "Dropped", "success": false}),
    ];
    if agent_rows {
        results.extend([
            serde_json::json!({"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}],
             "activist_codes": [4400], "sync": true, "priority": 10}),
            serde_json::json!({"result": "Agent Cust 2", "display_name": "Lean support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9101}], "sync": true}),
        ]);
    }
    serde_json::from_value(serde_json::json!({
        "slug": "bench", "display_name": "Bench", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": strategy_json,
        "van": {"secret_name": "callsync/bench/van", "database_mode": "voter_file"},
        "results": results
    }))
    .expect("bench candidate")
}

/// A night whose agent results the mapping lacks, then `/retry` of its errors once the
/// mapping has them; returns the retry's peak heap in bytes.
async fn retried(calls: u64) -> usize {
    let queue = Arc::new(MemoryQueue::default());
    let svc = held_services(queue.clone());
    svc.config
        .put(&document("full", false))
        .await
        .expect("store");
    let date = jiff::civil::date(2026, 11, 3);
    bench_night(&svc, date, calls).await;
    queue.drain();
    let slug = CandidateSlug::parse("bench").expect("slug");
    svc.config
        .put(&document("full", true))
        .await
        .expect("store");
    held::reset_run_peak();
    let before = held::run_live();
    let started = Instant::now();
    let done = nightly::retry(
        &svc,
        &slug,
        date,
        &[CallState::UnattemptedError],
        &nightly::RetryScope::Everything,
    )
    .await
    .expect("retry");
    let ran = started.elapsed();
    let peak = held::run_peak().saturating_sub(before);
    println!(
        "   retry {calls:>9} calls: {:>6.2}s, {} re-planned, {} queued; run's peak heap {:>6.1} MiB",
        ran.as_secs_f64(),
        done.replanned.values().sum::<u64>(),
        queue.drain().len(),
        peak as f64 / MIB,
    );
    peak
}

/// A full night with every ledger and day-store request answered after 7 ms, as DynamoDB
/// answers a Lambda (the queue and the bucket answer at once here), `concurrency` ledger
/// requests at once: the run's wall time, to hold against the `nightly` function's 15
/// minutes.
async fn latent(calls: u64, concurrency: usize) {
    let queue = Arc::new(MemoryQueue::default());
    let mut svc = observe(
        held_services(queue.clone()),
        Arc::new(Latency(STORE_LATENCY)),
    );
    svc.settings.ledger_concurrency = concurrency;
    svc.config
        .put(&document("full", true))
        .await
        .expect("store");
    let date = jiff::civil::date(2026, 11, 3);
    let started = Instant::now();
    let summary = bench_night(&svc, date, calls).await;
    let ran = started.elapsed().as_secs_f64();
    println!(
        "    full {calls:>9} calls, stores at {} ms, {concurrency} requests at once: run {ran:>6.1}s ({:.0} µs/call), {} new, {} queued",
        STORE_LATENCY.as_millis(),
        ran * 1e6 / calls as f64,
        summary.new_calls,
        queue.drain().len(),
    );
}

/// The night of [`latent`] at 16 requests at once, each part of it given `part` before its
/// deadline, as the `nightly` function gives a run its 15 minutes less the wrap-up: how
/// many parts the night takes, the longest, and that every call is recorded and queued
/// once over them.
async fn in_parts(calls: u64, part: std::time::Duration) {
    let queue = Arc::new(MemoryQueue::default());
    let mut svc = observe(
        held_services(queue.clone()),
        Arc::new(Latency(STORE_LATENCY)),
    );
    svc.clock = Arc::new(callsync::ports::SystemClock);
    let launcher = Arc::new(callsync::adapters::memory::MemoryLauncher::default());
    svc.launcher = launcher.clone();
    svc.config
        .put(&document("full", true))
        .await
        .expect("store");
    let date = jiff::civil::date(2026, 11, 3);
    svc.objects
        .put(
            "inbox/bench/cdr.csv",
            cdr_night(date, calls).into_bytes(),
            "text/csv",
        )
        .await
        .expect("put");
    let slug = CandidateSlug::parse("bench").expect("slug");
    let started = Instant::now();
    let (mut parts, mut longest, mut new, mut known) = (0, 0.0_f64, 0, 0);
    let mut continuation = 0;
    loop {
        let begun = Instant::now();
        let deadline = svc.clock.now() + part;
        let summary = nightly::run(
            &svc,
            &slug,
            date,
            RunOptions {
                deadline: Some(deadline),
                continuation,
                ..RunOptions::default()
            },
        )
        .await
        .expect("run");
        parts += 1;
        longest = longest.max(begun.elapsed().as_secs_f64());
        new += summary.new_calls;
        known += summary.known_calls;
        if summary.unfinished.is_none() {
            break;
        }
        continuation = launcher
            .started
            .lock()
            .expect("lock")
            .last()
            .map_or(continuation + 1, |r| r.continuation);
    }
    println!(
        "    full {calls:>9} calls, stores at {} ms, 16 requests at once, parts of {} s: {parts} parts (the longest {longest:.1} s), {:.1} s in all; {new} new, {known} recorded twice, {} queued",
        STORE_LATENCY.as_millis(),
        part.as_secs(),
        started.elapsed().as_secs_f64(),
        queue.drain().len(),
    );
}

/// One night; returns the run's peak heap in bytes.
async fn night(strategy: &str, calls: u64) -> usize {
    let queue = Arc::new(MemoryQueue::default());
    let svc = held_services(queue.clone());
    let doc = document(strategy, true);
    svc.config.put(&doc).await.expect("store");
    let date = jiff::civil::date(2026, 11, 3);
    let started = Instant::now();
    let cdr = cdr_night(date, calls);
    let bytes = cdr.len();
    svc.objects
        .put("inbox/bench/cdr.csv", cdr.into_bytes(), "text/csv")
        .await
        .expect("put");
    let generated = started.elapsed();
    held::reset_run_peak();
    let before = held::run_live();

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
    let peak = held::run_peak().saturating_sub(before);
    println!(
        "{strategy:>8} {calls:>9} calls ({:>5.1} MB CDR, made in {:>5.2}s): run {:>6.2}s ({:.1} µs/call), {} new, {} queued, {} CSV rows; run's peak heap {:>6.1} MiB, stores hold {:>6.0} MiB, process peak RSS {:>5.0} MiB",
        bytes as f64 / 1e6,
        generated.as_secs_f64(),
        ran.as_secs_f64(),
        ran.as_secs_f64() * 1e6 / calls as f64,
        summary.new_calls,
        queue.drain().len(),
        summary
            .days
            .iter()
            .filter_map(|d| d.csv.as_ref())
            .map(|c| c.rows)
            .sum::<u64>(),
        peak as f64 / MIB,
        held::store_live() as f64 / MIB,
        peak_rss_mib(),
    );
    peak
}

#[tokio::main]
async fn main() {
    // `cargo test --benches` runs benches as tests with `--bench` absent: stay quick then.
    if !std::env::args().any(|a| a == "--bench") {
        println!("nights: run with `cargo bench -p callsync-tests --bench nights`");
        return;
    }
    held::start_counting();
    println!("start: peak RSS {:.0} MiB", peak_rss_mib());
    // `NIGHTS_LATENT=16,64`: only the night at DynamoDB's latency, at each of these
    // numbers of requests at once.
    if let Ok(list) = std::env::var("NIGHTS_LATENT") {
        for concurrency in list.split(',').filter_map(|n| n.trim().parse().ok()) {
            latent(100_000, concurrency).await;
        }
        return;
    }
    // `NIGHTS_PARTS=40`: only the night at DynamoDB's latency in parts of 40 s.
    if let Ok(secs) = std::env::var("NIGHTS_PARTS") {
        let secs = secs.trim().parse().expect("NIGHTS_PARTS: seconds");
        in_parts(100_000, std::time::Duration::from_secs(secs)).await;
        return;
    }
    if std::env::var("NIGHTS_PEAKS").is_ok() {
        for strategy in ["full", "all_csv"] {
            compare_peaks(strategy, |calls| night(strategy, calls)).await;
        }
        compare_peaks("retry", retried).await;
        return;
    }
    let budget = "{\"budget\":{\"daily_free_requests\":1000}}";
    // 1,000 a day: the night's calls span two settled days.
    for strategy in ["hybrid", budget] {
        night(strategy, 100_000).await;
    }
    for strategy in ["full", "all_csv"] {
        compare_peaks(strategy, |calls| night(strategy, calls)).await;
    }
    // The ledger's requests at once (`ledger_concurrency`) at the default and four times it.
    for concurrency in [16, 64] {
        latent(100_000, concurrency).await;
    }
    // The same night as if the function had 40 s: a night longer than an invocation ends
    // in parts, each call once.
    in_parts(100_000, std::time::Duration::from_secs(40)).await;
    compare_peaks("retry", retried).await;
}

/// Runs `run` at 100,000 and 1,000,000 calls, [`PEAK_RUNS`] times each in turn, and prints
/// how the highest peaks compare. A run's peak moves by a few hundred KiB from one run to
/// the next at any size (how far ahead of the run the file's reader has got when the peak
/// falls: up to two batches), so one run of each could show a growth that is not there,
/// or hide one.
async fn compare_peaks<F, Fut>(label: &str, mut run: F)
where
    F: FnMut(u64) -> Fut,
    Fut: std::future::Future<Output = usize>,
{
    let (mut small, mut large) = (Vec::new(), Vec::new());
    for _ in 0..PEAK_RUNS {
        small.push(run(100_000).await);
        large.push(run(1_000_000).await);
    }
    let range = |peaks: &[usize]| {
        let low = peaks.iter().min().copied().unwrap_or(0);
        let high = peaks.iter().max().copied().unwrap_or(0);
        (low as f64 / MIB, high as f64 / MIB, high)
    };
    let ((s_low, s_high, small), (l_low, l_high, large)) = (range(&small), range(&large));
    println!(
        "{label:>8}: the run's peak over {PEAK_RUNS} runs is {s_low:.1}–{s_high:.1} MiB at 100,000 calls and {l_low:.1}–{l_high:.1} MiB at 1,000,000; the highest at 1,000,000 is {:.2}× the highest at 100,000 (target ≤ 1.10×)",
        large as f64 / small.max(1) as f64
    );
}
