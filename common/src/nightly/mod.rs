//! The nightly run of one candidate: read the calls, plan each, record every call in the
//! ledger (a known call keeps its state, so re-runs are no-ops), then settle each day the
//! calls belong to — CSV-bound calls into one CSV, VAN-bound calls onto the queue, stale
//! work swept back onto it, and once nothing is pending, the report.
//!
//! Also the hourly tick (which candidates are due), dry runs, and `/retry`. By stage:
//! this file reads, plans and records; [`settle`] exports, queues, sweeps and reports a
//! day; [`tick`] finds what is due; [`retry`] plans a day's errors again.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::StreamExt;
use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;
use serde_json::{Value, json};

use crate::call::{Call, CallId};
use crate::candidate::Strategy;
use crate::destinations::Compiled;
use crate::destinations::van::VanTarget;
use crate::extensions::{Hook, Read};
use crate::fanout::{self, DestinationRetry, DestinationSettle};
use crate::ingest::{self, FileRead, Ingested, SourceProblem};
use crate::ledger::{
    CallRecord, CallState, DayKey, DayRecord, ExportRef, Note, NoteEffect, Receipt,
};
use crate::metrics::{self, Metric};
use crate::planning::{self, DayPlan, Plan, PlanError};
use crate::ports::StoreError;
use crate::report;
use crate::services::{CandidateError, Services};
use crate::values::CandidateSlug;

mod retry;
mod settle;
mod tick;

pub use retry::*;
pub use settle::*;
pub use tick::*;

/// Why a run could not be made at all (per-call and per-file problems never end a run:
/// they are in its summary and in the ledger).
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Candidate(#[from] CandidateError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("another run holds {0} until {1}; try again after it")]
    Busy(DayKey, Timestamp),
    #[error("{0} is in the future for this candidate: its calls cannot be synced yet")]
    Future(DayKey),
    #[error(
        "{0} did not run: the candidate is not fully configured — {problems}. Fix that (GET /validate shows it too); the next tick runs the day",
        problems = .1.join("; ")
    )]
    NotConfigured(DayKey, Vec<String>),
}

/// Dry runs: payloads shown per destination.
const SAMPLE_PAYLOADS: usize = 3;

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Read and plan, write nothing, and say what would happen.
    pub dry_run: bool,
    /// Read the LiveVox API even if this day's was already read.
    pub force_livevox: bool,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub candidate: CandidateSlug,
    pub date: Date,
    pub dry_run: bool,
    pub files: Vec<FileRead>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub livevox: Option<FileRead>,
    pub problems: Vec<SourceProblem>,
    pub calls_read: u64,
    pub test_rows: u64,
    pub bad_rows: u64,
    pub duplicates: u64,
    /// Calls new to the ledger (in a dry run: that would be).
    pub new_calls: u64,
    /// Calls the ledger already knew; they keep their state.
    pub known_calls: u64,
    /// The planned state of the new calls.
    pub planned: BTreeMap<CallState, u64>,
    pub planned_by_display_name: BTreeMap<String, u64>,
    pub moved_over_budget: u64,
    /// Dry runs: a few of the VAN requests that would be sent.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sample_requests: Vec<Value>,
    /// Dry runs: a few of the payloads each configured destination would be sent.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub sample_payloads: BTreeMap<String, Vec<Value>>,
    pub days: Vec<SettleSummary>,
    /// Dry runs: what would keep the night from running (see [`unconfigured`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_configured: Vec<String>,
}

/// Run one candidate's local day: read its sources, plan and record the calls, settle.
pub async fn run(
    svc: &Services,
    slug: &CandidateSlug,
    date: Date,
    opts: RunOptions,
) -> Result<RunSummary, RunError> {
    let candidate = svc.candidate(slug).await?;
    let today = local_today(svc, &candidate);
    let day = DayKey {
        candidate: slug.clone(),
        date,
    };
    if date > today {
        return Err(RunError::Future(day));
    }
    if !opts.dry_run {
        gate(svc, &candidate, &day).await?;
    }

    let mut ingested = Ingested::default();
    if let Err(e) = ingest::read_inbox(svc, &candidate, date, &mut ingested).await {
        ingested.problems.push(SourceProblem {
            source: candidate.inbox_prefix().unwrap_or_default(),
            message: format!("the inbox could not be read this time: {e}"),
            moved_to: None,
        });
    }
    let day_record = svc.days.get(&day).await?;
    let read_api = candidate.doc().source.livevox.is_some()
        && (opts.force_livevox
            || day_record
                .as_ref()
                .is_none_or(|d| d.livevox_read_at.is_none()));
    let mut livevox_read = false;
    if read_api {
        match ingest::read_livevox(svc, &candidate, date, &mut ingested).await {
            Ok(()) => livevox_read = true,
            Err(e) => ingested.problems.push(SourceProblem {
                source: "livevox".into(),
                message: e.to_string(),
                moved_to: None,
            }),
        }
    }

    let mut summary = RunSummary {
        candidate: slug.clone(),
        date,
        dry_run: opts.dry_run,
        files: ingested.files.clone(),
        livevox: ingested.livevox.clone(),
        problems: Vec::new(),
        calls_read: ingested.calls.len() as u64,
        test_rows: ingested.test_rows,
        bad_rows: ingested.bad_rows.len() as u64,
        duplicates: ingested.duplicates,
        new_calls: 0,
        known_calls: 0,
        planned: BTreeMap::new(),
        planned_by_display_name: BTreeMap::new(),
        moved_over_budget: 0,
        sample_requests: Vec::new(),
        sample_payloads: BTreeMap::new(),
        days: Vec::new(),
        not_configured: Vec::new(),
    };

    let records = plan_calls(svc, &candidate, &mut ingested, &mut summary).await?;

    if opts.dry_run {
        for r in &records {
            *summary.planned.entry(r.delivery.state).or_default() += 1;
            if let Some(name) = &r.display_name {
                *summary
                    .planned_by_display_name
                    .entry(name.clone())
                    .or_default() += 1;
            }
        }
        summary.new_calls = records.len() as u64;
        summary.sample_requests = sample_requests(svc, &candidate, &records).await;
        summary.sample_payloads = fanout::sample_payloads(&candidate, &records, SAMPLE_PAYLOADS);
        summary.not_configured = unconfigured(svc, &candidate).await;
        summary.problems = ingested.problems;
        return Ok(summary);
    }

    // Record every call; a known call keeps its state.
    let inserted = insert_all(svc, &records).await;
    let mut fresh: HashSet<(Date, CallId)> = HashSet::new();
    let mut touched: BTreeSet<Date> = BTreeSet::from([date]);
    let mut insert_failed = false;
    for (record, result) in records.iter().zip(inserted) {
        match result {
            Ok(true) => {
                summary.new_calls += 1;
                *summary.planned.entry(record.delivery.state).or_default() += 1;
                if let Some(name) = &record.display_name {
                    *summary
                        .planned_by_display_name
                        .entry(name.clone())
                        .or_default() += 1;
                }
                fresh.insert((record.key.day.date, record.key.call_id.clone()));
                touched.insert(record.key.day.date);
            }
            Ok(false) => summary.known_calls += 1,
            Err(e) => {
                insert_failed = true;
                tracing::warn!(call = %record.key, error = %e, "could not record the call");
            }
        }
    }
    // The ledger has them now; settling reads each day back, so do not hold two copies.
    drop(records);

    // Files leave the inbox only once all their rows are recorded.
    if insert_failed {
        ingested.problems.push(SourceProblem {
            source: "ledger".into(),
            message: "some calls could not be recorded; the inbox files stay for the next run"
                .into(),
            moved_to: None,
        });
    } else if let Err(e) =
        ingest::set_aside(svc.objects.as_ref(), &candidate, today, &mut ingested).await
    {
        ingested.problems.push(SourceProblem {
            source: "inbox".into(),
            message: format!(
                "files could not be moved aside (the next run reads them again, harmlessly): {e}"
            ),
            moved_to: None,
        });
    }
    summary.problems = ingested.problems;

    if livevox_read {
        update_day(svc, &day, |d| {
            d.livevox_read_at = Some(svc.clock.now());
            true
        })
        .await?;
    }

    // A day still going on is settled only when it is the day asked for: its calls may
    // still come in, and its report waits for its end anyway.
    for date in touched.into_iter().filter(|d| *d < today || *d == date) {
        summary
            .days
            .push(settle_day(svc, &candidate, date, &fresh).await?);
    }
    metrics::emit(
        slug,
        svc.clock.now(),
        &[(
            Metric::CallsUnattemptedError,
            metrics::count(
                summary
                    .planned
                    .get(&CallState::UnattemptedError)
                    .copied()
                    .unwrap_or(0),
            ),
        )],
    );
    tracing::info!(
        candidate = %slug,
        %date,
        calls = summary.calls_read,
        new = summary.new_calls,
        known = summary.known_calls,
        bad_rows = summary.bad_rows,
        "run done"
    );
    Ok(summary)
}

/// Plan each call, apply the day's budget, and build the ledger records (bad rows too).
pub(super) async fn plan_calls(
    svc: &Services,
    candidate: &Compiled,
    ingested: &mut Ingested,
    summary: &mut RunSummary,
) -> Result<Vec<CallRecord>, RunError> {
    let now = svc.clock.now();
    let mut by_day: BTreeMap<Date, Vec<Call>> = BTreeMap::new();
    for call in std::mem::take(&mut ingested.calls) {
        by_day.entry(call.local_date).or_default().push(call);
    }
    let mut records = Vec::new();
    for (date, calls) in by_day {
        let (plans, moved) = plan_day(svc, candidate, date, calls.iter()).await?;
        summary.moved_over_budget += moved as u64;
        for (call, (plan, notes)) in calls.into_iter().zip(plans) {
            let display = display_name(candidate, &call);
            let mut record = CallRecord::planned(&candidate.slug, call, display, &plan, now);
            record.notes = notes;
            records.push(record);
        }
    }
    records.append(&mut ingested.bad_rows);
    Ok(records)
}

/// Plan one day's calls, in order — each through the extensions' `after_read` hooks first
/// (their notes come back with the plan) — and apply the day's budget; also says how many
/// posts the budget moved to the CSV.
pub(super) async fn plan_day<'a>(
    svc: &Services,
    candidate: &Compiled,
    date: Date,
    calls: impl Iterator<Item = &'a Call>,
) -> Result<(Vec<(Plan, Vec<Note>)>, usize), StoreError> {
    let mut notes = Vec::new();
    let mut plans: Vec<DayPlan> = calls
        .map(|call| {
            let (said, decided) = after_read(candidate, call);
            notes.push(said);
            DayPlan {
                call_id: call.call_id.clone(),
                started_at: call.started_at,
                plan: decided.unwrap_or_else(|| planning::plan(call, candidate)),
            }
        })
        .collect();
    let moved = if matches!(candidate.strategy(), Strategy::Budget { .. }) {
        let used = budget_used(svc, candidate, date).await?;
        planning::apply_budget(&mut plans, candidate.strategy(), used)
    } else {
        0
    };
    Ok((
        plans.into_iter().map(|p| p.plan).zip(notes).collect(),
        moved,
    ))
}

/// Run the candidate's `after_read` hooks on `call`, in order: what they noted, and the
/// plan one of them decided, if one did (dropped: `ignored`; failed: an error naming it).
/// A hook that panics fails this call alone.
pub(super) fn after_read(candidate: &Compiled, call: &Call) -> (Vec<Note>, Option<Plan>) {
    let mut notes = Vec::new();
    for enabled in candidate.extensions_with(Hook::AfterRead) {
        let name = enabled.name();
        let said = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            enabled
                .extension
                .after_read(&enabled.settings, candidate, call)
        }))
        .unwrap_or_else(|_| Err("the hook failed unexpectedly".to_owned()));
        let note = |text: String, effect| Note {
            extension: name.to_owned(),
            text,
            effect,
        };
        match said {
            Ok(Read::Keep) => {}
            Ok(Read::Note(text)) => notes.push(note(text, NoteEffect::Note)),
            Ok(Read::Drop(reason)) => {
                notes.push(note(reason, NoteEffect::Dropped));
                return (notes, Some(Plan::Ignore));
            }
            Err(message) => {
                notes.push(note(message.clone(), NoteEffect::Failed));
                let error = PlanError::Extension {
                    extension: name.to_owned(),
                    message,
                };
                return (notes, Some(Plan::Error(error)));
            }
        }
    }
    (notes, None)
}

/// The mapping row's display name for a call's result, for reports.
pub(super) fn display_name(candidate: &Compiled, call: &Call) -> Option<String> {
    candidate
        .mapping
        .get(&call.result)
        .map(|row| row.display_name.clone())
}

/// The day's allowance already spoken for: VAN requests counted for the day, plus the
/// day's VAN-bound calls not yet posted. Known calls are not re-planned, so they do not
/// count twice.
pub(super) async fn budget_used(
    svc: &Services,
    candidate: &Compiled,
    date: Date,
) -> Result<u64, StoreError> {
    let day = DayKey {
        candidate: candidate.slug.clone(),
        date,
    };
    let counted = svc.days.van_requests(&day).await?;
    let pending = svc
        .ledger
        .day(&day)
        .await?
        .iter()
        .filter(|r| {
            matches!(
                r.delivery.state,
                CallState::Unsynced | CallState::InProgress
            )
        })
        .count() as u64;
    Ok(counted + pending)
}

pub(super) async fn insert_all(
    svc: &Services,
    records: &[CallRecord],
) -> Vec<Result<bool, StoreError>> {
    // By index: a closure taking `&CallRecord` makes the run's future not `Send`
    // (rust#100013), and `POST /runs` awaits a dry run inside lambda_http, which needs it.
    // (Collecting the futures first, as the SQS adapter does, would hold a day's worth.)
    futures::stream::iter(0..records.len())
        .map(|i| svc.ledger.insert(&records[i]))
        .buffered(svc.settings.ledger_concurrency.max(1))
        .collect()
        .await
}

/// A dry run's view of the requests: the first few VAN posts, with the contact and
/// input types resolved when VAN can be reached.
pub(super) async fn sample_requests(
    svc: &Services,
    candidate: &Compiled,
    records: &[CallRecord],
) -> Vec<Value> {
    let posts: Vec<_> = records
        .iter()
        .filter_map(|r| r.post.as_ref().map(|p| (r, p)))
        .take(3)
        .collect();
    if posts.is_empty() {
        return Vec::new();
    }
    // A dry run writes nothing, the request counter included (its two type lookups are
    // the only VAN requests it makes).
    let target =
        VanTarget::connect(&svc.connectors, svc.secrets.as_ref(), candidate, None, None).await;
    posts
        .into_iter()
        .map(|(r, post)| match &target {
            Ok(t) => json!({
                "call_id": r.key.call_id,
                "path": format!(
                    "/people/{}/canvassResponses",
                    post.van_id
                        .map_or_else(|| "(found by person_match)".to_owned(), |v| v.to_string())
                ),
                "body": serde_json::to_value(t.request_with(post, None)).unwrap_or(Value::Null),
            }),
            Err(e) => json!({
                "call_id": r.key.call_id,
                "path": format!(
                    "/people/{}/canvassResponses",
                    post.van_id
                        .map_or_else(|| "(found by person_match)".to_owned(), |v| v.to_string())
                ),
                "error": format!("the body cannot be shown: {e}"),
            }),
        })
        .collect()
}

/// What keeps a candidate's nightly from running: each configured destination's problems
/// (its secret absent or unreadable, its endpoint one the deployment may not reach) and
/// each enabled extension's. Sends nothing to any destination.
pub async fn unconfigured(svc: &Services, candidate: &Compiled) -> Vec<String> {
    let ctx = crate::destinations::DeliverContext {
        secrets: svc.secrets.as_ref(),
        connectors: &svc.connectors,
        candidate,
        clock: svc.clock.as_ref(),
        meter: None,
    };
    let mut problems = Vec::new();
    for d in &candidate.destinations {
        for p in d.adapter.check(ctx).await {
            problems.push(format!("destination {:?}: {p}", d.name));
        }
    }
    for e in &candidate.extensions {
        let setup = crate::extensions::SetupContext {
            secrets: svc.secrets.as_ref(),
            connectors: &svc.connectors,
            candidate,
            settings: &e.settings,
        };
        for p in e.extension.configured(setup).await {
            problems.push(format!("extension {}: {p}", e.name()));
        }
    }
    problems
}

/// Refuse to run a day of a candidate that is not fully configured, so nothing of the
/// night is read, planned or delivered half-way; the day record says why (and `GET
/// /status` shows it) until a run finds everything in order.
async fn gate(svc: &Services, candidate: &Compiled, day: &DayKey) -> Result<(), RunError> {
    let problems = unconfigured(svc, candidate).await;
    let now = svc.clock.now();
    update_day(svc, day, |d| {
        match (&d.blocked, problems.is_empty()) {
            (None, true) => return false,
            (Some(b), false) if b.problems == problems => return false,
            _ => {}
        }
        d.blocked = (!problems.is_empty()).then(|| crate::ledger::Blocked {
            at: now,
            problems: problems.clone(),
        });
        true
    })
    .await?;
    if problems.is_empty() {
        return Ok(());
    }
    tracing::warn!(day = %day, problems = problems.len(), "not fully configured; the night does not run");
    Err(RunError::NotConfigured(day.clone(), problems))
}

/// The candidate's date now.
pub fn local_today(svc: &Services, candidate: &Compiled) -> Date {
    svc.clock
        .now()
        .to_zoned_datetime(candidate.zone.clone())
        .date()
}

/// The day a run without a date runs: yesterday in the candidate's zone.
pub fn default_date(svc: &Services, candidate: &Compiled) -> Date {
    let today = local_today(svc, candidate);
    today.yesterday().unwrap_or(today)
}

#[cfg(test)]
mod tests {
    //! The run's rules on the in-memory twins: the HTTP and AWS paths are covered by the
    //! integration tests in tests/.
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;
    use std::sync::atomic::Ordering;
    use std::sync::{Arc, Mutex};

    use super::*;
    use crate::adapters::memory::{
        MemoryConfigStore, MemoryDays, MemoryLauncher, MemoryLedger, MemoryNotifier, MemoryObjects,
        MemoryQueue, MemorySecrets,
    };
    use crate::candidate::CandidateDoc;
    use crate::destinations::csv as export;
    use crate::ledger::CallKey;
    use crate::ports::{Clock, ObjectStore};
    use crate::services::Settings;

    #[derive(Debug)]
    struct FixedClock(Mutex<Timestamp>);

    impl Clock for FixedClock {
        fn now(&self) -> Timestamp {
            *self.0.lock().unwrap()
        }
    }

    struct World {
        svc: Services,
        clock: Arc<FixedClock>,
        queue: Arc<MemoryQueue>,
        notifier: Arc<MemoryNotifier>,
        objects: Arc<MemoryObjects>,
    }

    const DAY: Date = jiff::civil::date(2026, 11, 21);

    async fn world(strategy: &str, at: &str) -> World {
        let clock = Arc::new(FixedClock(Mutex::new(at.parse().unwrap())));
        let queue = Arc::new(MemoryQueue::default());
        let notifier = Arc::new(MemoryNotifier::default());
        let objects = Arc::new(MemoryObjects::default());
        let svc = Services {
            config: Arc::new(MemoryConfigStore::default()),
            secrets: Arc::new(MemorySecrets::default()),
            ledger: Arc::new(MemoryLedger::default()),
            days: Arc::new(MemoryDays::default()),
            rates: Arc::new(crate::adapters::memory::MemoryRates::default()),
            queue: queue.clone(),
            objects: objects.clone(),
            notifier: notifier.clone(),
            launcher: Arc::new(MemoryLauncher::default()),
            clock: clock.clone(),
            connectors: Default::default(),
            settings: Settings::default(),
            compiled: Default::default(),
        };
        let doc: CandidateDoc = serde_json::from_value(json!({
            "slug": "unit", "display_name": "Unit", "time_zone": "America/Chicago",
            "sync_hour": 4, "source": {"cdr": {}}, "strategy": strategy,
            "van": {"secret_name": "callsync/unit/van", "database_mode": "voter_file"},
            "results": [
                {"result": "Agent Cust 3", "display_name": "Wrong number", "success": false,
                 "result_code_id": 20, "sync": true},
                {"result": "No Answer", "display_name": "No answer", "success": false,
                 "result_code_id": 1, "csv": true}
            ],
            "notify": {"webhook_url": "https://hooks.example.invalid/x"}
        }))
        .unwrap();
        svc.config.put(&doc).await.unwrap();
        let w = World {
            svc,
            clock,
            queue,
            notifier,
            objects,
        };
        w.drop_cdr("inbox/unit/a.csv").await;
        w
    }

    impl World {
        async fn drop_cdr(&self, key: &str) {
            let text = "id,account number,first name,last name,phone dialed,start time,result\n\
                        1,ny14-van-11,A,B,2125550101,21-11-2026 10:00:00,Agent Cust 3\n\
                        2,ny14-van-12,A,B,2125550102,21-11-2026 11:00:00,No Answer\n\
                        3,ny14-van-13,A,B,2125550103,21-11-2026 12:00:00,Agent Cust 3\n";
            self.svc
                .objects
                .put(key, text.as_bytes().to_vec(), "text/csv")
                .await
                .unwrap();
        }

        fn set_clock(&self, at: &str) {
            *self.clock.0.lock().unwrap() = at.parse().unwrap();
        }

        fn slug(&self) -> CandidateSlug {
            CandidateSlug::parse("unit").unwrap()
        }

        async fn candidate(&self) -> Compiled {
            self.svc.candidate(&self.slug()).await.unwrap()
        }

        async fn settle(&self) -> SettleSummary {
            settle_day(&self.svc, &self.candidate().await, DAY, &HashSet::new())
                .await
                .unwrap()
        }

        async fn day_record(&self) -> DayRecord {
            self.svc
                .days
                .get(&DayKey {
                    candidate: self.slug(),
                    date: DAY,
                })
                .await
                .unwrap()
                .unwrap()
        }
    }

    /// 10:00 in Chicago on the 22nd: past the 04:00 sync hour.
    const MORNING: &str = "2026-11-22T16:00:00Z";

    #[tokio::test]
    async fn a_candidate_is_compiled_once_per_stored_document() {
        let w = world("full", "2026-11-22T12:00:00Z").await;
        let mut doc = w.svc.config.get(&w.slug()).await.unwrap().unwrap();
        doc.destinations = serde_json::from_value(json!([
            {"name": "hook", "kind": "webhook", "url": "https://hooks.example.org/calls",
             "secret_name": "callsync/unit/hook"}
        ]))
        .unwrap();
        w.svc.config.put(&doc).await.unwrap();
        let first = w.candidate().await;
        let again = w.candidate().await;
        assert!(
            Arc::ptr_eq(
                &first.destinations[0].adapter,
                &again.destinations[0].adapter
            ),
            "the same document is not compiled again"
        );
        doc.display_name = "Unit, renamed".into();
        w.svc.config.put(&doc).await.unwrap();
        let changed = w.candidate().await;
        assert_eq!(changed.doc().display_name, "Unit, renamed");
        assert!(!Arc::ptr_eq(
            &first.destinations[0].adapter,
            &changed.destinations[0].adapter
        ));
        // A document that does not compile says so at every load, cached or not.
        doc.destinations[0].rate_limit = Some(1e-19);
        w.svc.config.put(&doc).await.unwrap();
        for _ in 0..2 {
            let err = w.svc.candidate(&w.slug()).await.unwrap_err();
            assert!(
                err.to_string().contains("destinations[0].rate_limit"),
                "{err}"
            );
        }
    }

    #[tokio::test]
    async fn an_all_csv_night_is_exported_finished_and_reported_once() {
        let w = world("all_csv", MORNING).await;
        let summary = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(summary.new_calls, 3);
        let day = &summary.days[0];
        assert_eq!(day.counts.get(&CallState::Finished), Some(&3));
        assert_eq!(day.report, ReportOutcome::Sent);
        assert_eq!(day.csv.as_ref().unwrap().rows, 3);
        assert!(w.queue.drain().is_empty());
        assert_eq!(w.objects.list("exports/unit/").await.unwrap().len(), 1);

        // Settling again sends nothing more.
        assert_eq!(w.settle().await.report, ReportOutcome::AlreadyDone);
        assert_eq!(w.notifier.sent.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_report_that_cannot_be_delivered_is_retried_then_given_up_and_recorded() {
        let w = world("all_csv", MORNING).await;
        w.notifier.fail.store(true, Ordering::Relaxed);
        let summary = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert!(matches!(summary.days[0].report, ReportOutcome::Failed(_)));
        let record = w.day_record().await;
        assert!(!record.complete, "a later tick tries again");
        assert_eq!(record.report.attempts, 1);
        assert!(record.report.last_error.is_some());

        assert!(matches!(w.settle().await.report, ReportOutcome::Failed(_)));
        assert!(matches!(w.settle().await.report, ReportOutcome::GaveUp(_)));
        let record = w.day_record().await;
        assert!(record.complete, "given up after the configured attempts");
        assert_eq!(record.report.attempts, 3);
        assert!(record.report.sent_at.is_none());
    }

    #[tokio::test]
    async fn van_bound_calls_are_queued_once_and_swept_when_a_run_died_before_sending() {
        let w = world("full", MORNING).await;
        run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(w.queue.drain().len(), 2);
        // Queued calls are not queued again while their messages are fresh.
        assert_eq!(w.settle().await.enqueued, 0);

        // A run that died between the ledger and the queue: its call never got a message.
        let key = CallKey {
            day: DayKey {
                candidate: w.slug(),
                date: DAY,
            },
            call_id: CallId("1".into()),
        };
        let mut record = w.svc.ledger.get(&key).await.unwrap().unwrap();
        record.delivery.enqueued_at = None;
        assert!(w.svc.ledger.replace(&mut record).await.unwrap());
        assert_eq!(
            w.settle().await.enqueued,
            0,
            "too fresh: its own run may still send it"
        );
        w.set_clock("2026-11-22T16:06:00Z");
        assert_eq!(w.settle().await.enqueued, 1);
        assert_eq!(w.queue.drain()[0].call_id, CallId("1".into()));
    }

    #[tokio::test]
    async fn a_day_another_run_holds_is_left_alone() {
        let w = world("full", MORNING).await;
        let day = DayKey {
            candidate: w.slug(),
            date: DAY,
        };
        update_day(&w.svc, &day, |d| {
            d.lock_until = Some(w.svc.clock.now() + std::time::Duration::from_secs(60));
            d.lock_id = Some("other".into());
            true
        })
        .await
        .unwrap();
        let summary = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(summary.new_calls, 3, "the calls are recorded");
        assert_eq!(summary.days[0].report, ReportOutcome::Busy);
        assert!(w.queue.drain().is_empty(), "the other run settles the day");
    }

    #[tokio::test]
    async fn the_tick_runs_yesterday_only_once_the_sync_hour_has_come() {
        // 03:30 in Chicago: before the 04:00 sync hour.
        let w = world("all_csv", "2026-11-22T09:30:00Z").await;
        let entries = tick(&w.svc).await.unwrap();
        assert!(entries[0].run.is_none(), "{entries:?}");
        assert!(w.objects.list("inbox/unit/").await.unwrap().len() == 1);

        w.set_clock("2026-11-22T10:30:00Z");
        let entries = tick(&w.svc).await.unwrap();
        assert_eq!(entries[0].run.as_ref().unwrap().date, DAY);
        // Complete: the next tick leaves the day alone.
        let entries = tick(&w.svc).await.unwrap();
        assert!(entries[0].run.is_none());
        assert!(entries[0].settled.is_empty());
    }

    /// The stores of a process that loses power after `left` more writes: every write
    /// after that fails, as if the process had died there (reads still answer; they
    /// change nothing).
    struct PowerCut {
        left: std::sync::atomic::AtomicI64,
        ledger: MemoryLedger,
        days: MemoryDays,
        objects: MemoryObjects,
    }

    impl PowerCut {
        fn write(&self) -> Result<(), StoreError> {
            if self.left.fetch_sub(1, Ordering::SeqCst) > 0 {
                Ok(())
            } else {
                Err(StoreError::Unavailable("power", "cut".into()))
            }
        }
    }

    struct Cut(Arc<PowerCut>);

    #[async_trait::async_trait]
    impl crate::ports::Ledger for Cut {
        async fn insert(&self, record: &CallRecord) -> Result<bool, StoreError> {
            self.0.write()?;
            self.0.ledger.insert(record).await
        }
        async fn get(&self, key: &CallKey) -> Result<Option<CallRecord>, StoreError> {
            self.0.ledger.get(key).await
        }
        async fn replace(&self, record: &mut CallRecord) -> Result<bool, StoreError> {
            self.0.write()?;
            self.0.ledger.replace(record).await
        }
        async fn day(&self, day: &DayKey) -> Result<Vec<CallRecord>, StoreError> {
            self.0.ledger.day(day).await
        }
        async fn insert_delivery(
            &self,
            record: &crate::ledger::DeliveryRecord,
        ) -> Result<bool, StoreError> {
            self.0.write()?;
            self.0.ledger.insert_delivery(record).await
        }
        async fn get_delivery(
            &self,
            key: &crate::ledger::DeliveryKey,
        ) -> Result<Option<crate::ledger::DeliveryRecord>, StoreError> {
            self.0.ledger.get_delivery(key).await
        }
        async fn replace_delivery(
            &self,
            record: &mut crate::ledger::DeliveryRecord,
        ) -> Result<bool, StoreError> {
            self.0.write()?;
            self.0.ledger.replace_delivery(record).await
        }
        async fn deliveries(
            &self,
            day: &DayKey,
            destination: &str,
        ) -> Result<Vec<crate::ledger::DeliveryRecord>, StoreError> {
            self.0.ledger.deliveries(day, destination).await
        }
    }

    #[async_trait::async_trait]
    impl crate::ports::DayStore for Cut {
        async fn get(&self, day: &DayKey) -> Result<Option<DayRecord>, StoreError> {
            self.0.days.get(day).await
        }
        async fn replace(&self, record: &mut DayRecord) -> Result<bool, StoreError> {
            self.0.write()?;
            self.0.days.replace(record).await
        }
        async fn open_days(&self, c: &CandidateSlug) -> Result<Vec<DayRecord>, StoreError> {
            self.0.days.open_days(c).await
        }
        async fn add_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
            self.0.write()?;
            self.0.days.add_van_requests(day, n).await
        }
        async fn add_van_requests_within(
            &self,
            day: &DayKey,
            n: u64,
            cap: u64,
        ) -> Result<bool, StoreError> {
            self.0.write()?;
            self.0.days.add_van_requests_within(day, n, cap).await
        }
        async fn return_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
            self.0.write()?;
            self.0.days.return_van_requests(day, n).await
        }
        async fn van_requests(&self, day: &DayKey) -> Result<u64, StoreError> {
            self.0.days.van_requests(day).await
        }
    }

    #[async_trait::async_trait]
    impl ObjectStore for Cut {
        fn bucket(&self) -> &str {
            self.0.objects.bucket()
        }
        async fn list(&self, prefix: &str) -> Result<Vec<crate::ports::ObjectInfo>, StoreError> {
            self.0.objects.list(prefix).await
        }
        async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
            self.0.objects.get(key).await
        }
        async fn put(&self, key: &str, body: Vec<u8>, ct: &str) -> Result<(), StoreError> {
            self.0.write()?;
            self.0.objects.put(key, body, ct).await
        }
        async fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
            self.0.write()?;
            self.0.objects.rename(from, to).await
        }
        async fn presign(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
            self.0.objects.presign(key, ttl).await
        }
    }

    #[tokio::test]
    async fn a_run_stopped_at_any_write_ends_with_every_csv_call_in_exactly_one_listed_file() {
        for cut in 0_i64.. {
            let w = world("all_csv", MORNING).await;
            // Five more calls, so a stop can fall between the rows of one file.
            w.svc
                .objects
                .put(
                    "inbox/unit/b.csv",
                    "id,account number,first name,last name,phone dialed,start time,result\r\n\
                     4,ny14-van-14,=cmd|' /C calc'!A0,B,2125550104,21-11-2026 13:00:00,No Answer\r\n\
                     5,ny14-van-15,José,O'Brien,2125550105,21-11-2026 14:00:00,No Answer\r\n\
                     6,ny14-van-16,A,B,2125550106,21-11-2026 15:00:00,No Answer\r\n\
                     7,ny14-van-17,A,B,2125550107,21-11-2026 16:00:00,No Answer\r\n\
                     8,ny14-van-18,A,B,2125550108,21-11-2026 17:00:00,No Answer\r\n"
                        .as_bytes()
                        .to_vec(),
                    "text/csv",
                )
                .await
                .unwrap();
            let power = Arc::new(PowerCut {
                left: cut.into(),
                ledger: MemoryLedger::default(),
                days: MemoryDays::default(),
                objects: MemoryObjects::default(),
            });
            for key in ["inbox/unit/a.csv", "inbox/unit/b.csv"] {
                let body = w.svc.objects.get(key).await.unwrap();
                power.objects.put(key, body, "text/csv").await.unwrap();
            }
            let mut svc = w.svc.clone();
            svc.ledger = Arc::new(Cut(power.clone()));
            svc.days = Arc::new(Cut(power.clone()));
            svc.objects = Arc::new(Cut(power.clone()));

            let first = run(&svc, &w.slug(), DAY, RunOptions::default()).await;
            let stopped = power.left.load(Ordering::SeqCst) < 0;
            if !stopped {
                assert!(first.is_ok(), "{first:?}");
                assert!(cut > 10, "the run makes more writes than that");
                break;
            }
            // Power back; a later tick (after the dead run's day lock ran out) runs again.
            power.left.store(i64::MAX, Ordering::SeqCst);
            w.set_clock("2026-11-22T16:20:00Z");
            run(&svc, &w.slug(), DAY, RunOptions::default())
                .await
                .unwrap();

            let day = DayKey {
                candidate: w.slug(),
                date: DAY,
            };
            let listed: BTreeSet<String> = svc
                .days
                .get(&day)
                .await
                .unwrap()
                .unwrap()
                .exports
                .iter()
                .map(|e| e.key.clone())
                .collect();
            let in_bucket: BTreeSet<String> = svc
                .objects
                .list(&export::day_prefix(&day.candidate, DAY))
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.key)
                .collect();
            assert_eq!(
                listed, in_bucket,
                "stopped after {cut} writes: every file is listed"
            );
            let mut rows_of_call: HashMap<String, Vec<(String, u64)>> = HashMap::new();
            let mut files = HashMap::new();
            for key in &listed {
                let cells = export::call_id_cells(&svc.objects.get(key).await.unwrap()).unwrap();
                for (i, c) in cells.iter().enumerate() {
                    rows_of_call
                        .entry(c.clone())
                        .or_default()
                        .push((key.clone(), i as u64 + 1));
                }
                files.insert(key.clone(), cells);
            }
            let records = svc.ledger.day(&day).await.unwrap();
            assert_eq!(records.len(), 8, "stopped after {cut} writes");
            for r in &records {
                assert_eq!(
                    r.delivery.state,
                    CallState::Finished,
                    "stopped after {cut} writes: {r:?}"
                );
                let Some(Receipt::Csv { key, row, .. }) = &r.delivery.receipt else {
                    panic!("stopped after {cut} writes: no CSV receipt: {r:?}");
                };
                let cell = export::cell(&r.key.call_id.0).into_owned();
                assert_eq!(
                    rows_of_call.get(&cell).cloned().unwrap_or_default(),
                    vec![(key.clone(), *row)],
                    "stopped after {cut} writes: call {} is in exactly the file and row its receipt names",
                    r.key.call_id
                );
            }
            assert_eq!(
                rows_of_call.values().map(Vec::len).sum::<usize>(),
                8,
                "stopped after {cut} writes: no row for a call that is not CSV-bound"
            );
        }
    }
}
