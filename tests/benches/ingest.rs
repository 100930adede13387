//! `cargo bench -p callsync-tests --bench ingest`: reading a 100,000-call CDR file — the
//! CDR reader (CSV, column map, account pattern, times in the candidate's zone, phone and
//! result normalised) and then the planner — against the csv crate alone parsing the same
//! bytes into byte records, and into string records (each record's UTF-8 checked: the
//! floor of any reader that hands on text). Rows are read as a night reads them, a batch of
//! `ingest::BATCH_ROWS` at a time, planned, and let go. Prints each as a ratio of the csv
//! crate's time, measured in one run (the best of eleven rounds, the four taken in turn),
//! so a machine's speed cancels out.

use std::time::{Duration, Instant};

use callsync::candidate::CandidateDoc;
use callsync::destinations::Compiled;
use callsync::egress::Egress;
use callsync::livevox::{CdrReader, RowOutcome};
use callsync::{ingest, planning};
use callsync_tests::demo_data::cdr_night;

const CALLS: u64 = 100_000;

/// Rounds of the four measurements, taken in turn so that a machine busy for a moment
/// slows one round of each rather than every run of one; the best round of each counts.
const ROUNDS: usize = 11;

/// The best time of the runs of one piece of work, and its last answer.
struct Best<T> {
    time: Duration,
    out: Option<T>,
}

impl<T> Best<T> {
    fn new() -> Self {
        Self {
            time: Duration::MAX,
            out: None,
        }
    }

    fn run(&mut self, work: impl FnOnce() -> T) {
        let started = Instant::now();
        let out = work();
        self.time = self.time.min(started.elapsed());
        self.out = Some(out);
    }

    fn take(self) -> (Duration, T) {
        (self.time, self.out.expect("at least one round"))
    }
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let date = jiff::civil::date(2026, 11, 3);
    let bytes = cdr_night(date, CALLS).into_bytes();
    let doc: CandidateDoc = serde_json::from_value(serde_json::json!({
        "slug": "bench", "display_name": "Bench", "time_zone": "America/New_York",
        "sync_hour": 3, "source": {"cdr": {}}, "strategy": "full",
        "van": {"secret_name": "callsync/bench/van", "database_mode": "voter_file"},
        "results": [
            {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9100}], "sync": true},
            {"result": "Agent Cust 2", "display_name": "Lean support", "success": true,
             "survey_responses": [{"question_id": 2300, "response_id": 9101}], "sync": true},
            {"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
             "result_code_id": 20, "sync": true},
            {"result": "No Answer", "display_name": "No answer", "success": false,
             "result_code_id": 1, "csv": true},
            {"result": "Busy", "display_name": "Busy", "success": false, "result_code_id": 18, "csv": true},
            {"result": "Hung Up in Opening", "display_name": "Dropped", "success": false}
        ]
    }))
    .expect("the bench's document");
    let candidate = Compiled::from_doc(doc, Egress::STRICT).expect("a valid document");
    let reader = CdrReader::new(
        "bench.csv",
        &Default::default(),
        candidate.accounts.clone(),
        candidate.zone.clone(),
    );

    let raw_csv = || {
        let mut csv = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
        let mut record = csv::ByteRecord::new();
        let mut fields = 0usize;
        while csv.read_byte_record(&mut record).expect("the bench's CSV") {
            fields += record.len();
        }
        fields
    };
    // The floor of any reader that hands on text: the same parse with each record's UTF-8
    // checked, as the CDR reader's records are.
    let string_csv = || {
        let mut csv = csv::ReaderBuilder::new().from_reader(bytes.as_slice());
        let mut record = csv::StringRecord::new();
        let mut fields = 0usize;
        while csv.read_record(&mut record).expect("the bench's CSV") {
            fields += record.len();
        }
        fields
    };
    // As a night reads: a batch of rows at a time, planned and let go before the next.
    let read_only = || {
        let mut rows = reader.rows(bytes.as_slice()).expect("a usable header");
        let mut calls = 0usize;
        loop {
            let mut batch = Vec::with_capacity(ingest::BATCH_ROWS);
            batch.extend(rows.by_ref().take(ingest::BATCH_ROWS));
            if batch.is_empty() {
                break calls;
            }
            calls += batch
                .iter()
                .filter(|row| matches!(row, RowOutcome::Call(_)))
                .count();
        }
    };
    let read_and_plan = || {
        let mut rows = reader.rows(bytes.as_slice()).expect("a usable header");
        let mut planned = 0usize;
        loop {
            let mut batch = Vec::with_capacity(ingest::BATCH_ROWS);
            batch.extend(rows.by_ref().take(ingest::BATCH_ROWS));
            if batch.is_empty() {
                break planned;
            }
            planned += batch
                .iter()
                .filter_map(|row| match row {
                    RowOutcome::Call(call) => Some(planning::plan(call, &candidate)),
                    _ => None,
                })
                .filter(|p| matches!(p, planning::Plan::Van(_)))
                .count();
        }
    };
    let (mut best_raw, mut best_string, mut best_read, mut best_plan) =
        (Best::new(), Best::new(), Best::new(), Best::new());
    for _ in 0..ROUNDS {
        best_raw.run(raw_csv);
        best_string.run(string_csv);
        best_read.run(read_only);
        best_plan.run(read_and_plan);
    }
    let ((raw, fields), (string, _), (read, calls), (read_and_plan, planned)) = (
        best_raw.take(),
        best_string.take(),
        best_read.take(),
        best_plan.take(),
    );
    let mib = bytes.len() as f64 / (1024.0 * 1024.0);
    println!(
        "ingest: {CALLS} CDR rows, {mib:.1} MiB ({fields} fields), best of {ROUNDS} rounds each, taken in turn"
    );
    println!(
        "  the csv crate, byte records:        {:>7.1} ms (1.00×)",
        raw.as_secs_f64() * 1000.0
    );
    println!(
        "  the csv crate, UTF-8 checked:       {:>7.1} ms ({:.2}×)",
        string.as_secs_f64() * 1000.0,
        string.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  CDR read + normalise ({calls} calls): {:>7.1} ms ({:.2}×)",
        read.as_secs_f64() * 1000.0,
        read.as_secs_f64() / raw.as_secs_f64()
    );
    println!(
        "  + plan ({planned} for VAN):         {:>7.1} ms ({:.2}×; target 2×)",
        read_and_plan.as_secs_f64() * 1000.0,
        read_and_plan.as_secs_f64() / raw.as_secs_f64()
    );
}
