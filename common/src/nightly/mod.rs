//! The nightly run of one candidate: read the calls, plan each, record every call in the
//! ledger (a known call keeps its state, so re-runs are no-ops), then settle each day the
//! calls belong to — CSV-bound calls into one CSV, VAN-bound calls onto the queue, stale
//! work swept back onto it, and once nothing is pending, the report.
//!
//! Also the hourly tick (which candidates are due), dry runs, and `/retry`. By stage:
//! this file reads, plans and records; [`settle`] exports, queues, sweeps and reports a
//! day; [`tick`] finds what is due; [`retry`] plans a day's errors again.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use futures::{StreamExt, TryStreamExt};
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
use crate::ingest::{self, FileRead, SourceProblem};
use crate::ledger::{
    CallRecord, CallState, DayKey, DayRecord, ExportRef, Note, NoteEffect, Receipt,
};
use crate::livevox::{CallDetailPosition, RowOutcome};
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
/// Dry runs: VAN requests shown.
const SAMPLE_POSTS: usize = 3;

#[derive(Debug, Clone, Copy, Default)]
pub struct RunOptions {
    /// Read and plan, write nothing, and say what would happen.
    pub dry_run: bool,
    /// Read the LiveVox API even if this day's was already read.
    pub force_livevox: bool,
    /// When to stop reading (the function's own end, less the time to wrap up): what was
    /// read is kept, and a continuation reads the rest. None: no limit.
    pub deadline: Option<Timestamp>,
    /// Which continuation of a run stopped at its deadline this is (0: a first run).
    pub continuation: u32,
}

/// A run stopped at its deadline starts the next part at most this many times; past
/// that, the hourly tick takes the day up (a night that makes no headway does not
/// invoke itself for ever).
pub const MAX_CONTINUATIONS: u32 = 12;

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
    /// Rows repeating a call read just before (in the same batch of rows); a repeat read
    /// later finds the call recorded and counts among `known_calls`.
    pub duplicates: u64,
    /// Calls new to the ledger (in a dry run: that would be).
    pub new_calls: u64,
    /// Calls the ledger already knew; they keep their state.
    pub known_calls: u64,
    /// New VAN-bound calls handed to the queue as they were recorded.
    pub queued: u64,
    /// New VAN-bound calls the queue refused this time; the next tick sends them.
    pub not_queued: u64,
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
    /// The run stopped at its deadline before reading everything: what takes up the rest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unfinished: Option<String>,
    /// Dry runs: what would keep the night from running (see [`unconfigured`]).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub not_configured: Vec<String>,
}

/// Run one candidate's local day: read its sources, plan and record the calls, settle.
///
/// The sources are read in batches ([`ingest::BATCH_ROWS`] rows, a file streamed in as it
/// is read): each batch is planned, recorded, and its new VAN-bound calls handed to the
/// queue before the next is taken, so the run holds one batch at a time however big the
/// night. The budget strategy reads the sources once more first, to rank the night's
/// posts (holding at most the day's allowance of them).
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

    // A run with a deadline says until when it reads the day, so that the hourly tick does
    // not read the same rows beside it (a run without one, or killed, holds nothing past
    // that instant).
    let reading_until = match (opts.deadline, opts.dry_run) {
        (Some(d), false) => {
            let until = d
                .checked_add(
                    jiff::SignedDuration::try_from(svc.settings.wrap_up).unwrap_or_default(),
                )
                .unwrap_or(d);
            update_day(svc, &day, |r| {
                r.reading_until = Some(until);
                true
            })
            .await?;
            Some(until)
        }
        _ => None,
    };

    let mut problems = Vec::new();
    let day_record = svc.days.get(&day).await?;
    // Each inbox file with the rows of it runs before recorded (a dry run reads it all).
    let inbox: Vec<InboxFile> = match candidate.inbox_prefix() {
        Some(prefix) => match svc.objects.list(&prefix).await {
            Ok(objects) => objects
                .into_iter()
                .map(|o| InboxFile {
                    recorded: match (&day_record, opts.dry_run) {
                        (Some(d), false) => d.recorded_rows(&o.key, &o.etag),
                        _ => 0,
                    },
                    key: o.key,
                    etag: o.etag,
                })
                .collect(),
            Err(e) => {
                problems.push(SourceProblem::for_now(
                    prefix,
                    format!("the inbox could not be read this time: {e}"),
                ));
                Vec::new()
            }
        },
        None => Vec::new(),
    };
    let read_api = candidate.doc().source.livevox.is_some()
        && (opts.force_livevox
            || day_record
                .as_ref()
                .is_none_or(|d| d.livevox_read_at.is_none()));
    // Where the API's day is taken up: after the calls runs before recorded, unless asked
    // to read it all again.
    let livevox_from = match (&day_record, opts.force_livevox || opts.dry_run) {
        (Some(d), false) => d.livevox_progress.unwrap_or_default(),
        _ => CallDetailPosition::default(),
    };
    let mut night = Night::new(svc, &candidate, date, opts.dry_run);
    if matches!(candidate.strategy(), Strategy::Budget { .. }) {
        let api = read_api.then_some((date, livevox_from));
        night.budget = Some(rank_posts(svc, &candidate, &inbox, api).await?);
    }
    let mut files = Vec::new();
    let past = |deadline: Option<Timestamp>| deadline.is_some_and(|d| svc.clock.now() >= d);
    let mut stopped = false;
    for inbox_file in &inbox {
        if past(opts.deadline) {
            stopped = true;
            break;
        }
        let key = inbox_file.key.as_str();
        let mut file = FileRead::new(key);
        file.recorded_before = inbox_file.recorded;
        let opened =
            ingest::open_file(svc.objects.as_ref(), &candidate, key, inbox_file.recorded).await;
        let mut rows = match opened {
            Ok(rows) => rows,
            Err(e) => {
                problems.push(ingest::FileFailure::Unread(e.to_string()).into_problem(key));
                continue;
            }
        };
        // Rows from the file's start all recorded: where the next run starts.
        let mut recorded = Some(inbox_file.recorded);
        while let Some(batch) = rows.next().await {
            let rows_in = batch.len() as u64;
            let failures = night.insert_failures;
            night.take(batch, &mut file).await?;
            recorded = recorded
                .filter(|_| night.insert_failures == failures)
                .map(|n| n + rows_in);
            if let Some(n) = recorded
                && !opts.dry_run
            {
                save_progress(svc, &day, inbox_file, n).await;
            }
            if past(opts.deadline) {
                stopped = true;
                break;
            }
        }
        if stopped {
            // Dropping the rows stops the reader; the file stays in the inbox.
            break;
        }
        match rows.finish().await {
            Ok(()) => files.push(file),
            Err(failure) => problems.push(failure.into_problem(key)),
        }
    }
    // The API's day a page at a time. A read cut short keeps what it recorded, and the
    // next run reads on after the last page whose calls were all recorded.
    let mut livevox_read = false;
    let mut livevox_file = None;
    if read_api && !stopped {
        match ingest::LiveVoxRows::open(svc, &candidate, date, livevox_from).await {
            Ok(None) => {}
            Ok(Some(mut rows)) => {
                let mut file = FileRead::new(ingest::LIVEVOX_SOURCE);
                let mut whole = true;
                loop {
                    if past(opts.deadline) {
                        stopped = true;
                        break;
                    }
                    match rows.next().await {
                        Ok(Some(batch)) => {
                            let failures = night.insert_failures;
                            night.take(batch, &mut file).await?;
                            whole &= night.insert_failures == failures;
                            if whole && !opts.dry_run {
                                save_livevox_progress(svc, &day, rows.position()).await;
                            }
                        }
                        Ok(None) => {
                            livevox_read = true;
                            break;
                        }
                        Err(e) => {
                            problems.push(SourceProblem::for_now(
                                "livevox",
                                if file.rows == 0 {
                                    e.to_string()
                                } else {
                                    format!(
                                        "could not be read to its end this time ({e}); the {} calls read are recorded, and the next run reads on from there",
                                        file.rows
                                    )
                                },
                            ));
                            break;
                        }
                    }
                }
                livevox_file = Some(file);
            }
            Err(e) => problems.push(SourceProblem::for_now("livevox", e.to_string())),
        }
    }

    let Night {
        mut summary,
        touched,
        insert_failures,
        samples,
        ..
    } = night;
    let insert_failed = insert_failures > 0;
    summary.files = files;
    summary.livevox = livevox_file;

    if opts.dry_run {
        summary.sample_requests = sample_requests(svc, &candidate, &samples.posts).await;
        summary.sample_payloads = samples.payloads;
        summary.not_configured = unconfigured(svc, &candidate).await;
        summary.problems = problems;
        return Ok(summary);
    }

    // Files leave the inbox only once all their rows are recorded.
    let mut set_aside = false;
    if insert_failed {
        problems.push(SourceProblem::for_now(
            "ledger",
            "some calls could not be recorded; the inbox files stay for the next run",
        ));
    } else if let Err(e) = ingest::set_aside(
        svc.objects.as_ref(),
        &candidate,
        today,
        &summary.files,
        &mut problems,
    )
    .await
    {
        problems.push(SourceProblem::for_now(
            "inbox",
            format!(
                "files could not be moved aside (the next run reads them again, harmlessly): {e}"
            ),
        ));
    } else {
        set_aside = true;
    }
    summary.problems = problems;

    // A day whose calls were not all recorded is read again by the next run; a file set
    // aside needs no place to start from.
    update_day(svc, &day, |d| {
        let mut changed = false;
        if reading_until.is_some() && d.reading_until == reading_until {
            d.reading_until = None;
            changed = true;
        }
        if set_aside {
            for file in &summary.files {
                changed |= d.progress.remove(&file.key).is_some();
            }
        }
        if livevox_read && !insert_failed {
            d.livevox_read_at = Some(svc.clock.now());
            d.livevox_progress = None;
            changed = true;
        }
        changed
    })
    .await?;

    if stopped {
        // The rest is read, and the day settled, by the next part.
        summary.unfinished = Some(continue_run(svc, slug, date, opts.continuation).await);
        tracing::info!(candidate = %slug, %date, calls = summary.calls_read, new = summary.new_calls, "run stopped at its deadline");
        return Ok(summary);
    }

    // A day still going on is settled only when it is the day asked for: its calls may
    // still come in, and its report waits for its end anyway. The run's own VAN-bound
    // calls are queued already.
    let settle_opts = SettleOptions {
        deadline: opts.deadline,
        ..SettleOptions::default()
    };
    for date in touched.into_iter().filter(|d| *d < today || *d == date) {
        if settle_opts.past(svc) {
            stopped = true;
            break;
        }
        let settled = settle_day(svc, &candidate, date, settle_opts).await?;
        stopped |= settled.stopped;
        summary.days.push(settled);
    }
    if stopped {
        // The next part settles on from where this one stopped.
        summary.unfinished = Some(continue_run(svc, slug, date, opts.continuation).await);
    }
    metrics::emit(
        slug,
        svc.clock.now(),
        &[
            (
                Metric::CallsUnattemptedError,
                metrics::count(
                    summary
                        .planned
                        .get(&CallState::UnattemptedError)
                        .copied()
                        .unwrap_or(0),
                ),
            ),
            (Metric::CallsQueued, metrics::count(summary.queued)),
        ],
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

/// An inbox file as a run finds it: its fingerprint, and the rows of it runs before
/// recorded.
struct InboxFile {
    key: String,
    etag: String,
    recorded: u64,
}

/// Note on the day that the first `rows` rows of `file` are recorded. Only ever moves
/// forward (two runs of a day may read at once); a failure costs the next run a re-read
/// of those rows, nothing more.
async fn save_progress(svc: &Services, day: &DayKey, file: &InboxFile, rows: u64) {
    let saved = update_day(svc, day, |d| {
        if d.recorded_rows(&file.key, &file.etag) >= rows {
            return false;
        }
        d.progress.insert(
            file.key.clone(),
            crate::ledger::SourceProgress {
                etag: file.etag.clone(),
                rows,
            },
        );
        true
    })
    .await;
    if let Err(e) = saved {
        tracing::warn!(day = %day, error = %e, "could not note how far the run got; the next run reads those rows again");
    }
}

/// Note on the day that the LiveVox API's calls before `at` are recorded.
async fn save_livevox_progress(svc: &Services, day: &DayKey, at: CallDetailPosition) {
    let further = |d: &DayRecord| {
        d.livevox_progress
            .is_none_or(|was| (at.groups, at.offset) > (was.groups, was.offset))
    };
    let saved = update_day(svc, day, |d| {
        if d.livevox_read_at.is_some() || !further(d) {
            return false;
        }
        d.livevox_progress = Some(at);
        true
    })
    .await;
    if let Err(e) = saved {
        tracing::warn!(day = %day, error = %e, "could not note how far the LiveVox read got; the next run reads those calls again");
    }
}

/// Start the next part of a run stopped at its deadline; what takes up the rest.
async fn continue_run(
    svc: &Services,
    slug: &CandidateSlug,
    date: Date,
    continuation: u32,
) -> String {
    let next = continuation + 1;
    if next > MAX_CONTINUATIONS {
        return format!(
            "stopped at its deadline in part {next}, the last a run starts by itself; the next hourly tick reads the rest"
        );
    }
    let run = crate::ports::ManualRun {
        candidate: slug.clone(),
        date: Some(date),
        dry_run: false,
        continuation: next,
    };
    match svc.launcher.start(&run).await {
        Ok(()) => format!(
            "stopped at its deadline; part {} was started to read the rest and settle the day",
            next + 1
        ),
        Err(e) => {
            tracing::warn!(candidate = %slug, %date, error = %e, "could not start the run's next part");
            format!(
                "stopped at its deadline, and its next part could not be started ({e}); the next hourly tick reads the rest"
            )
        }
    }
}

/// A night being read: each batch of rows is planned, recorded and its new VAN-bound
/// calls queued before the next is taken.
struct Night<'a> {
    svc: &'a Services,
    candidate: &'a Compiled,
    /// The day run; rows that have no readable day are filed under it.
    date: Date,
    now: Timestamp,
    dry_run: bool,
    /// The budget strategy's posts kept, per local day.
    budget: Option<BTreeMap<Date, planning::BudgetCut>>,
    summary: RunSummary,
    /// The days the new calls belong to (each is settled).
    touched: BTreeSet<Date>,
    /// Calls the ledger could not take (their files stay in the inbox).
    insert_failures: u64,
    samples: Samples,
}

/// Dry runs: the first few VAN posts and payloads per destination.
#[derive(Debug, Default)]
struct Samples {
    posts: Vec<CallRecord>,
    payloads: BTreeMap<String, Vec<Value>>,
}

impl<'a> Night<'a> {
    fn new(svc: &'a Services, candidate: &'a Compiled, date: Date, dry_run: bool) -> Self {
        Self {
            svc,
            candidate,
            date,
            now: svc.clock.now(),
            dry_run,
            budget: None,
            summary: RunSummary {
                candidate: candidate.slug.clone(),
                date,
                dry_run,
                files: Vec::new(),
                livevox: None,
                problems: Vec::new(),
                calls_read: 0,
                test_rows: 0,
                bad_rows: 0,
                duplicates: 0,
                new_calls: 0,
                known_calls: 0,
                queued: 0,
                not_queued: 0,
                planned: BTreeMap::new(),
                planned_by_display_name: BTreeMap::new(),
                moved_over_budget: 0,
                sample_requests: Vec::new(),
                sample_payloads: BTreeMap::new(),
                days: Vec::new(),
                unfinished: None,
                not_configured: Vec::new(),
            },
            touched: BTreeSet::from([date]),
            insert_failures: 0,
            samples: Samples::default(),
        }
    }

    /// Plan, record and queue one batch of `file`'s rows.
    async fn take(&mut self, batch: Vec<RowOutcome>, file: &mut FileRead) -> Result<(), RunError> {
        let (svc, candidate) = (self.svc, self.candidate);
        let mut seen = HashSet::new();
        let mut records = Vec::with_capacity(batch.len());
        let mut calls = Vec::with_capacity(batch.len());
        for outcome in batch {
            file.rows += 1;
            match outcome {
                RowOutcome::Call(call) => {
                    if seen.insert((call.local_date, call.call_id.clone())) {
                        calls.push(call);
                    } else {
                        self.summary.duplicates += 1;
                    }
                }
                RowOutcome::TestAccount => {
                    file.test_rows += 1;
                    self.summary.test_rows += 1;
                }
                RowOutcome::Bad(err) => {
                    file.bad_rows += 1;
                    self.summary.bad_rows += 1;
                    records.push(ingest::bad_row(candidate, self.date, &err, self.now));
                }
            }
        }
        drop(seen);
        self.summary.calls_read += calls.len() as u64;
        for call in calls {
            let (plan, notes) = plan_one(candidate, &call);
            let mut day_plan = DayPlan {
                call_id: call.call_id.clone(),
                started_at: call.started_at,
                plan,
            };
            // A post of a day the first pass did not rank (its file could not be read
            // then) has no place in the allowance: the CSV, never an unplanned charge.
            let over_budget = matches!(day_plan.plan, Plan::Van(_))
                && self.budget.as_ref().is_some_and(|b| {
                    b.get(&call.local_date)
                        .is_none_or(|cut| cut.moves(&day_plan))
                });
            if over_budget {
                day_plan.plan = Plan::Csv(planning::CsvReason::OverBudget);
                self.summary.moved_over_budget += 1;
            }
            let display = display_name(candidate, &call);
            let mut record =
                CallRecord::planned(&candidate.slug, call, display, &day_plan.plan, self.now);
            record.notes = notes;
            records.push(record);
        }

        if self.dry_run {
            for r in &records {
                self.count_new(r);
            }
            self.sample(&records);
            return Ok(());
        }

        // Record every call; a known call keeps its state.
        let inserted = insert_all(svc, &records).await;
        let mut fresh = Vec::new();
        for (i, result) in inserted.into_iter().enumerate() {
            match result {
                Ok(true) => {
                    self.count_new(&records[i]);
                    self.touched.insert(records[i].key.day.date);
                    fresh.push(i);
                }
                Ok(false) => self.summary.known_calls += 1,
                Err(e) => {
                    self.insert_failures += 1;
                    tracing::warn!(call = %records[i].key, error = %e, "could not record the call");
                }
            }
        }
        // The new VAN-bound calls go to the queue now: they are this run's to send.
        let stale = svc.settings.requeue_stale_after;
        let due: Vec<usize> = fresh
            .into_iter()
            .filter(|&i| records[i].delivery.is_due(self.now, true, stale))
            .collect();
        let day = DayKey {
            candidate: candidate.slug.clone(),
            date: self.date,
        };
        let (queued, refused) = fanout::enqueue(svc, &day, &mut records, &due).await;
        self.summary.queued += queued;
        self.summary.not_queued += refused;
        Ok(())
    }

    fn count_new(&mut self, record: &CallRecord) {
        self.summary.new_calls += 1;
        *self
            .summary
            .planned
            .entry(record.delivery.state)
            .or_default() += 1;
        if let Some(name) = &record.display_name {
            *self
                .summary
                .planned_by_display_name
                .entry(name.clone())
                .or_default() += 1;
        }
    }

    /// Dry runs: keep what the samples still lack from this batch.
    fn sample(&mut self, records: &[CallRecord]) {
        for r in records {
            if self.samples.posts.len() < SAMPLE_POSTS && r.post.is_some() {
                self.samples.posts.push(r.clone());
            }
        }
        fanout::add_sample_payloads(
            &mut self.samples.payloads,
            self.candidate,
            records,
            SAMPLE_PAYLOADS,
        );
    }
}

/// The budget strategy's first pass: every post of the night ranked per local day, the
/// best of each kept up to what is left of that day's allowance. Reads every source the
/// run reads (a file that cannot be read now is left to the second pass to report).
async fn rank_posts(
    svc: &Services,
    candidate: &Compiled,
    inbox: &[InboxFile],
    livevox: Option<(Date, CallDetailPosition)>,
) -> Result<BTreeMap<Date, planning::BudgetCut>, StoreError> {
    let Strategy::Budget {
        daily_free_requests,
    } = candidate.strategy()
    else {
        return Ok(BTreeMap::new());
    };
    let mut cuts: BTreeMap<Date, planning::BudgetCut> = BTreeMap::new();
    let offer = async |cuts: &mut BTreeMap<Date, planning::BudgetCut>, call: &Call| {
        let (plan, _) = plan_one(candidate, call);
        if !matches!(plan, Plan::Van(_)) {
            return Ok::<_, StoreError>(());
        }
        let cut = match cuts.entry(call.local_date) {
            std::collections::btree_map::Entry::Occupied(cut) => cut.into_mut(),
            std::collections::btree_map::Entry::Vacant(slot) => {
                let used = budget_used(svc, candidate, call.local_date).await?;
                let left = u64::from(daily_free_requests).saturating_sub(used);
                slot.insert(planning::BudgetCut::new(left))
            }
        };
        cut.offer(&DayPlan {
            call_id: call.call_id.clone(),
            started_at: call.started_at,
            plan,
        });
        Ok(())
    };
    // Rows earlier runs recorded are not offered again: their posts count among the
    // day's used allowance already.
    for file in inbox {
        let opened =
            ingest::open_file(svc.objects.as_ref(), candidate, &file.key, file.recorded).await;
        let Ok(mut rows) = opened else {
            continue;
        };
        while let Some(batch) = rows.next().await {
            for outcome in &batch {
                if let RowOutcome::Call(call) = outcome {
                    offer(&mut cuts, call).await?;
                }
            }
        }
        // Whatever failed is reported by the pass that records.
        let _ = rows.finish().await;
    }
    // The API's day is read twice under the budget, as files are: holding it between the
    // passes would hold the day.
    if let Some((date, from)) = livevox
        && let Ok(Some(mut rows)) = ingest::LiveVoxRows::open(svc, candidate, date, from).await
    {
        while let Ok(Some(batch)) = rows.next().await {
            for outcome in &batch {
                if let RowOutcome::Call(call) = outcome {
                    offer(&mut cuts, call).await?;
                }
            }
        }
    }
    Ok(cuts)
}

/// One call's plan, through the candidate's `after_read` hooks first (their notes come
/// back with it).
pub(super) fn plan_one(candidate: &Compiled, call: &Call) -> (Plan, Vec<Note>) {
    let (notes, decided) = after_read(candidate, call);
    (
        decided.unwrap_or_else(|| planning::plan(call, candidate)),
        notes,
    )
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
    // Counted a page at a time: a big day is never held to count it.
    let pending = svc
        .ledger
        .day_records(&day)
        .try_fold(0_u64, |n, r| {
            let waiting = matches!(
                r.delivery.state,
                CallState::Unsynced | CallState::InProgress
            );
            std::future::ready(Ok(n + u64::from(waiting)))
        })
        .await?;
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
    let ctx = svc.destination_context(candidate);
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
            "sync_hour": 4, "source": {"cdr": {}},
            "strategy": serde_json::from_str::<Value>(strategy).unwrap_or_else(|_| json!(strategy)),
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

        /// Give the candidate a webhook destination, `hook`; the document as stored.
        async fn add_hook(&self) -> CandidateDoc {
            let mut doc = self.svc.config.get(&self.slug()).await.unwrap().unwrap();
            doc.destinations = serde_json::from_value(json!([
                {"name": "hook", "kind": "webhook", "url": "https://hooks.example.org/calls",
                 "secret_name": "callsync/unit/hook"}
            ]))
            .unwrap();
            self.svc.config.put(&doc).await.unwrap();
            doc
        }

        /// Leave `text` the inbox's only file.
        async fn only_file(&self, text: &str) {
            self.objects
                .rename("inbox/unit/a.csv", "elsewhere/a.csv")
                .await
                .unwrap();
            self.objects
                .put("inbox/unit/big.csv", text.as_bytes().to_vec(), "text/csv")
                .await
                .unwrap();
        }

        fn set_clock(&self, at: &str) {
            *self.clock.0.lock().unwrap() = at.parse().unwrap();
        }

        fn slug(&self) -> CandidateSlug {
            CandidateSlug::parse("unit").unwrap()
        }

        /// DAY of the unit candidate.
        fn day(&self) -> DayKey {
            DayKey {
                candidate: self.slug(),
                date: DAY,
            }
        }

        /// The calls of `DAY` planned for VAN (numeric call ids), in order.
        async fn posted(&self) -> Vec<u64> {
            posted_in(&self.svc, &self.day()).await
        }

        async fn candidate(&self) -> Compiled {
            self.svc.candidate(&self.slug()).await.unwrap()
        }

        /// A run of DAY on `svc` that stops once `secs` of the clock have gone by.
        async fn run_for(&self, svc: &Services, secs: i64) -> RunSummary {
            let deadline = self.svc.clock.now() + jiff::SignedDuration::from_secs(secs);
            let opts = RunOptions {
                deadline: Some(deadline),
                ..RunOptions::default()
            };
            run(svc, &self.slug(), DAY, opts).await.unwrap()
        }

        /// Part `continuation` + 1 of DAY's run on `svc`, without a deadline.
        async fn next_part(&self, svc: &Services, continuation: u32) -> RunSummary {
            let opts = RunOptions {
                continuation,
                ..RunOptions::default()
            };
            run(svc, &self.slug(), DAY, opts).await.unwrap()
        }

        async fn settle(&self) -> SettleSummary {
            settle_day(
                &self.svc,
                &self.candidate().await,
                DAY,
                SettleOptions::default(),
            )
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
        let mut doc = w.add_hook().await;
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

    /// `n` VAN-bound calls of DAY, the last in the file the earliest.
    fn latest_first(n: u64) -> String {
        latest_first_as(n, "Agent Cust 3")
    }

    /// `n` calls, each with `result`, the last of the file the earliest of the day.
    fn latest_first_as(n: u64, result: &str) -> String {
        calls_at(n, result, |i| 10 * 3600 + (n - i))
    }

    /// `n` calls of DAY, each with `result`, call `i` at `second(i)` seconds after midnight.
    fn calls_at(n: u64, result: &str, second: impl Fn(u64) -> u64) -> String {
        let mut text =
            String::from("id,account number,first name,last name,phone dialed,start time,result\n");
        for i in 1..=n {
            let at = second(i);
            let (h, m, s) = (at / 3600, at / 60 % 60, at % 60);
            text.push_str(&format!(
                "{i},ny14-van-{i},A,B,2125550101,21-11-2026 {h:02}:{m:02}:{s:02},{result}\n"
            ));
        }
        text
    }

    #[tokio::test]
    async fn the_budget_keeps_the_best_posts_of_the_whole_night_not_of_its_first_batch() {
        let w = world(r#"{"budget": {"daily_free_requests": 5}}"#, MORNING).await;
        let rows = 2 * ingest::BATCH_ROWS as u64 + 500;
        w.only_file(&latest_first(rows)).await;
        let summary = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(summary.new_calls, rows);
        assert_eq!(summary.moved_over_budget, rows - 5);
        let posted = w.posted().await;
        // The five earliest calls are the file's last five, in its last batch.
        assert_eq!(posted, ((rows - 4)..=rows).collect::<Vec<_>>());
        assert_eq!(w.queue.drain().len(), 5);
    }

    #[tokio::test]
    async fn a_retry_under_the_budget_keeps_the_best_posts_of_the_whole_day_read_a_page_at_a_time()
    {
        let w = world(r#"{"budget": {"daily_free_requests": 5}}"#, MORNING).await;
        // More calls than a ledger page holds, all with a result the mapping lacks.
        let rows = 2 * ingest::BATCH_ROWS as u64 + 500;
        w.only_file(&latest_first_as(rows, "Agent Cust 9")).await;
        let night = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(night.new_calls, rows);
        assert!(w.queue.drain().is_empty());

        let mut doc = w.svc.config.get(&w.slug()).await.unwrap().unwrap();
        doc.results.push(
            serde_json::from_value(json!({"result": "Agent Cust 9", "display_name": "Moved",
                "success": false, "result_code_id": 21, "sync": true}))
            .unwrap(),
        );
        w.svc.config.put(&doc).await.unwrap();
        let done = retry(
            &w.svc,
            &w.slug(),
            DAY,
            &[CallState::UnattemptedError],
            &RetryScope::Everything,
        )
        .await
        .unwrap();
        assert_eq!(
            done.replanned.get(&CallState::Unsynced),
            Some(&5),
            "{done:?}"
        );
        assert_eq!(
            done.replanned.get(&CallState::QueuedForCsv),
            Some(&(rows - 5)),
            "{done:?}"
        );
        let posted = w.posted().await;
        // The five earliest calls of the day: the file's last five.
        assert_eq!(posted, ((rows - 4)..=rows).collect::<Vec<_>>());
        // The re-planned posts are this retry's own: queued by its settle, once.
        let queued: Vec<u64> = w
            .queue
            .drain()
            .iter()
            .map(|m| m.call_id.0.parse().unwrap())
            .collect();
        assert_eq!(queued.len(), 5, "{queued:?}");
    }

    #[tokio::test]
    async fn a_day_bigger_than_a_page_is_settled_in_one_pass_each_delivery_planned_and_queued_once()
    {
        let w = world("full", MORNING).await;
        let rows = 3 * fanout::CHUNK as u64 + 234;
        w.only_file(&latest_first(rows)).await;
        let night = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(night.queued, rows);
        assert_eq!(w.queue.drain().len() as u64, rows);

        // A destination added after the night: the next settle plans it the whole day.
        w.add_hook().await;
        let settled = w.settle().await;
        let hook = &settled.destinations["hook"];
        assert_eq!((hook.planned, hook.enqueued), (rows, rows), "{hook:?}");
        assert_eq!(hook.pending, rows);
        assert_eq!(settled.counts.values().sum::<u64>(), rows);
        assert_eq!(settled.enqueued, 0, "VAN's messages are fresh");
        let messages = w.queue.drain();
        let ids: HashSet<_> = messages.iter().map(|m| m.call_id.clone()).collect();
        assert_eq!((messages.len() as u64, ids.len() as u64), (rows, rows));
        assert!(
            messages
                .iter()
                .all(|m| m.destination.as_deref() == Some("hook"))
        );

        let again = w.settle().await;
        let hook = &again.destinations["hook"];
        assert_eq!((hook.planned, hook.enqueued), (0, 0), "{hook:?}");
        assert_eq!(hook.counts.values().sum::<u64>(), rows);
        assert!(w.queue.drain().is_empty());
    }

    #[tokio::test]
    async fn a_big_export_is_written_in_pieces_and_every_receipt_names_its_own_row() {
        let w = world("all_csv", MORNING).await;
        let rows = 4_321;
        w.only_file(&latest_first(rows)).await;
        let summary = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        let export = summary.days[0].csv.clone().unwrap();
        assert_eq!(export.rows, rows);
        let bytes = w.svc.objects.get(&export.key).await.unwrap();
        assert!(
            bytes.len() > 256 * 1024,
            "more than one piece: {}",
            bytes.len()
        );
        let cells = export::call_id_cells(&bytes).unwrap();
        let day = DayKey {
            candidate: w.slug(),
            date: DAY,
        };
        let records = w.svc.ledger.day(&day).await.unwrap();
        assert_eq!(records.len() as u64, rows);
        for r in &records {
            assert_eq!(r.delivery.state, CallState::Finished, "{}", r.key);
            let Some(Receipt::Csv { key, row, .. }) = &r.delivery.receipt else {
                panic!("{} has no row", r.key);
            };
            assert_eq!(key, &export.key);
            assert_eq!(cells[*row as usize - 1], r.key.call_id.0, "row {row}");
        }
        assert_eq!(w.day_record().await.exports.len(), 1);
    }

    /// The bucket, but every object's stream fails after `after` bytes while `failing`.
    struct CutOff {
        inner: Arc<MemoryObjects>,
        after: usize,
        failing: std::sync::atomic::AtomicBool,
        /// Opens refused outright before any byte, counted down.
        refuse_opens: std::sync::atomic::AtomicUsize,
    }

    #[async_trait::async_trait]
    impl ObjectStore for CutOff {
        fn bucket(&self) -> &str {
            self.inner.bucket()
        }
        async fn list(&self, prefix: &str) -> Result<Vec<crate::ports::ObjectInfo>, StoreError> {
            self.inner.list(prefix).await
        }
        async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
            self.inner.get(key).await
        }
        async fn open(&self, key: &str) -> Result<crate::ports::Chunks, StoreError> {
            use std::sync::atomic::Ordering::SeqCst;
            if self
                .refuse_opens
                .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(StoreError::Unavailable("the bucket", "timed out".into()));
            }
            let body = self.inner.get(key).await?;
            if !self.failing.load(std::sync::atomic::Ordering::SeqCst) {
                return self.inner.open(key).await;
            }
            let head = bytes::Bytes::from(body[..self.after].to_vec());
            Ok(Box::pin(futures::stream::iter([
                Ok(head),
                Err(StoreError::Unavailable(
                    "the bucket",
                    "connection reset".into(),
                )),
            ])))
        }
        async fn put(&self, key: &str, body: Vec<u8>, ct: &str) -> Result<(), StoreError> {
            self.inner.put(key, body, ct).await
        }
        async fn upload(
            &self,
            key: &str,
            ct: &str,
        ) -> Result<Box<dyn crate::ports::Upload + '_>, StoreError> {
            self.inner.upload(key, ct).await
        }
        async fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
            self.inner.rename(from, to).await
        }
        async fn presign(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
            self.inner.presign(key, ttl).await
        }
    }

    #[tokio::test]
    async fn a_post_the_budgets_first_pass_could_not_rank_goes_to_the_csv_never_to_van() {
        let mut w = world(r#"{"budget": {"daily_free_requests": 5}}"#, MORNING).await;
        w.only_file(&latest_first(20)).await;
        // The first pass finds the bucket failing; the second reads the file.
        w.svc.objects = Arc::new(CutOff {
            inner: w.objects.clone(),
            after: 0,
            failing: false.into(),
            refuse_opens: 1.into(),
        });
        let summary = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(summary.new_calls, 20);
        assert_eq!(summary.moved_over_budget, 20);
        assert_eq!(summary.queued, 0);
        assert!(w.queue.drain().is_empty(), "nothing unranked is posted");
    }

    #[tokio::test]
    async fn a_file_cut_off_while_it_streams_in_stays_in_the_inbox_and_its_rest_comes_next_run() {
        let mut w = world("full", MORNING).await;
        let rows = 2 * ingest::BATCH_ROWS as u64 + 500;
        let text = latest_first(rows);
        let after = text.len() / 2;
        w.only_file(&text).await;
        let cut = Arc::new(CutOff {
            inner: w.objects.clone(),
            after,
            failing: true.into(),
            refuse_opens: 0.into(),
        });
        w.svc.objects = cut.clone();

        let first = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert!(
            first.new_calls > ingest::BATCH_ROWS as u64 && first.new_calls < rows,
            "{}",
            first.new_calls
        );
        assert_eq!(first.bad_rows, 0, "the row cut in two is not a bad row");
        assert!(first.files.is_empty(), "{:?}", first.files);
        let problem = &first.problems[0];
        assert_eq!(problem.source, "inbox/unit/big.csv");
        assert!(
            problem
                .message
                .contains("could not be read to its end this time"),
            "{}",
            problem.message
        );
        assert!(
            problem.message.contains("connection reset"),
            "{}",
            problem.message
        );
        assert_eq!(problem.moved_to, None);
        assert_eq!(
            w.objects.list("inbox/unit/").await.unwrap().len(),
            1,
            "still in the inbox"
        );

        cut.failing
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let second = run(&w.svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(second.new_calls, rows - first.new_calls);
        // It starts after the rows recorded: none is written twice.
        assert_eq!(second.files[0].recorded_before, first.new_calls);
        assert_eq!(second.known_calls, 0);
        assert_eq!(second.bad_rows, 0);
        assert!(second.problems.is_empty(), "{:?}", second.problems);
        assert!(
            w.objects.list("inbox/unit/").await.unwrap().is_empty(),
            "set aside once whole"
        );
        assert_eq!(
            (first.queued + second.queued) as usize,
            w.queue.drain().len(),
        );
        assert_eq!(first.queued + second.queued, rows, "every call queued once");
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
        assert!(
            summary.days[0].csv.is_none(),
            "the other run settles the day"
        );
        // The VAN-bound calls this run recorded are its own to queue, and only those.
        assert_eq!(summary.queued, 2);
        assert_eq!(w.queue.drain().len(), 2);
    }

    #[tokio::test]
    async fn the_tick_runs_yesterday_only_once_the_sync_hour_has_come() {
        // 03:30 in Chicago: before the 04:00 sync hour.
        let w = world("all_csv", "2026-11-22T09:30:00Z").await;
        let entries = tick(&w.svc, None, None).await.unwrap();
        assert!(entries[0].run.is_none(), "{entries:?}");
        assert!(w.objects.list("inbox/unit/").await.unwrap().len() == 1);

        w.set_clock("2026-11-22T10:30:00Z");
        let entries = tick(&w.svc, None, None).await.unwrap();
        assert_eq!(entries[0].run.as_ref().unwrap().date, DAY);
        // Complete: the next tick leaves the day alone.
        let entries = tick(&w.svc, None, None).await.unwrap();
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
        /// When set, each write takes a second of this clock (a run's time is its writes).
        clock: Option<Arc<FixedClock>>,
        /// Calls read one by one (`Ledger::get`).
        gets: std::sync::atomic::AtomicU64,
    }

    impl PowerCut {
        /// Stores that lose power after `left` more writes, holding `w`'s inbox.
        async fn after(left: i64, w: &World) -> Arc<Self> {
            Self::new(left, w, None).await
        }

        /// Stores on which each write takes a second of `w`'s clock, holding its inbox.
        async fn timed(w: &World) -> Arc<Self> {
            Self::new(i64::MAX, w, Some(w.clock.clone())).await
        }

        async fn new(left: i64, w: &World, clock: Option<Arc<FixedClock>>) -> Arc<Self> {
            let power = Arc::new(PowerCut {
                left: left.into(),
                ledger: MemoryLedger::default(),
                days: MemoryDays::default(),
                objects: MemoryObjects::default(),
                clock,
                gets: 0.into(),
            });
            for o in w.svc.objects.list("inbox/").await.unwrap() {
                let body = w.svc.objects.get(&o.key).await.unwrap();
                power.objects.put(&o.key, body, "text/csv").await.unwrap();
            }
            power
        }

        /// [`PowerCut::timed`], with `w`'s services on it and a launcher that keeps the
        /// runs and ticks it is asked to start.
        async fn timed_with_launcher(w: &World) -> (Arc<Self>, Services, Arc<MemoryLauncher>) {
            let power = Self::timed(w).await;
            let mut svc = power.services(&w.svc);
            let launcher = Arc::new(MemoryLauncher::default());
            svc.launcher = launcher.clone();
            (power, svc, launcher)
        }

        /// `svc` on these stores.
        fn services(self: &Arc<Self>, svc: &Services) -> Services {
            let mut svc = svc.clone();
            svc.ledger = Arc::new(Cut(self.clone()));
            svc.days = Arc::new(Cut(self.clone()));
            svc.objects = Arc::new(Cut(self.clone()));
            svc
        }

        fn write(&self) -> Result<(), StoreError> {
            if let Some(clock) = &self.clock {
                let mut now = clock.0.lock().unwrap();
                *now += jiff::SignedDuration::from_secs(1);
            }
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
            self.0.gets.fetch_add(1, Ordering::SeqCst);
            self.0.ledger.get(key).await
        }
        async fn replace(&self, record: &mut CallRecord) -> Result<bool, StoreError> {
            self.0.write()?;
            self.0.ledger.replace(record).await
        }
        async fn day(&self, day: &DayKey) -> Result<Vec<CallRecord>, StoreError> {
            self.0.ledger.day(day).await
        }
        fn day_records<'a>(&'a self, day: &'a DayKey) -> crate::ports::Records<'a, CallRecord> {
            self.0.ledger.day_records(day)
        }
        fn delivery_records<'a>(
            &'a self,
            day: &'a DayKey,
            destination: &'a str,
        ) -> crate::ports::Records<'a, crate::ledger::DeliveryRecord> {
            self.0.ledger.delivery_records(day, destination)
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
        async fn open(&self, key: &str) -> Result<crate::ports::Chunks, StoreError> {
            self.0.objects.open(key).await
        }
        async fn put(&self, key: &str, body: Vec<u8>, ct: &str) -> Result<(), StoreError> {
            self.0.write()?;
            self.0.objects.put(key, body, ct).await
        }
        async fn upload(
            &self,
            key: &str,
            ct: &str,
        ) -> Result<Box<dyn crate::ports::Upload + '_>, StoreError> {
            Ok(Box::new(CutUpload(
                self,
                self.0.objects.upload(key, ct).await?,
            )))
        }
        async fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
            self.0.write()?;
            self.0.objects.rename(from, to).await
        }
        async fn presign(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
            self.0.objects.presign(key, ttl).await
        }
    }

    /// An upload whose finish is a write that may be cut.
    struct CutUpload<'a>(&'a Cut, Box<dyn crate::ports::Upload + 'a>);

    #[async_trait::async_trait]
    impl crate::ports::Upload for CutUpload<'_> {
        async fn write(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
            self.1.write(bytes).await
        }
        async fn finish(self: Box<Self>) -> Result<(), StoreError> {
            self.0.0.write()?;
            self.1.finish().await
        }
        async fn abort(self: Box<Self>) {
            self.1.abort().await;
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
                clock: None,
                gets: 0.into(),
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

    /// `n` VAN-bound calls of DAY in call-id order; the rows of `earliest` are the day's
    /// first calls (the budget keeps them), the rest later.
    fn calls_with_earliest(n: u64, earliest: &[u64]) -> String {
        let hour = |i: u64| if earliest.contains(&i) { 9 } else { 10 };
        calls_at(n, "Agent Cust 3", |i| hour(i) * 3600 + i)
    }

    #[tokio::test]
    async fn a_run_stopped_at_its_deadline_starts_its_next_part_which_reads_on_from_there() {
        let w = world("full", MORNING).await;
        let rows = 2 * ingest::BATCH_ROWS as u64 + 500;
        w.only_file(&latest_first(rows)).await;
        let (power, svc, launcher) = PowerCut::timed_with_launcher(&w).await;
        // Each write takes a second: the deadline falls inside the file.
        let first = w.run_for(&svc, 3000).await;
        let done = first.new_calls;
        assert!(done > 0 && done < rows, "{done} of {rows}");
        assert_eq!(done % ingest::BATCH_ROWS as u64, 0, "whole batches");
        let unfinished = first.unfinished.as_deref().unwrap();
        assert!(unfinished.contains("part 2 was started"), "{unfinished}");
        assert!(
            first.days.is_empty(),
            "the part that reads the last row settles"
        );
        assert!(first.files.is_empty(), "no file was read to its end");
        let next = launcher.started.lock().unwrap().clone();
        assert_eq!(
            next,
            [crate::ports::ManualRun {
                candidate: w.slug(),
                date: Some(DAY),
                dry_run: false,
                continuation: 1,
            }]
        );
        let key = w.day();
        let day = svc.days.get(&key).await.unwrap().unwrap();
        assert_eq!(day.progress["inbox/unit/big.csv"].rows, done);
        assert_eq!(
            day.reading_until, None,
            "the part that stopped holds nothing"
        );
        assert_eq!(power.objects.list("inbox/").await.unwrap().len(), 1);

        // The next part reads past what is recorded: no call is written twice.
        let second = w.next_part(&svc, 1).await;
        assert_eq!(second.unfinished, None);
        assert_eq!(second.files.len(), 1);
        assert_eq!(second.files[0].recorded_before, done);
        assert_eq!(second.files[0].rows, rows - done);
        assert_eq!(second.new_calls, rows - done);
        assert_eq!(
            second.known_calls, 0,
            "the rows recorded are not written again"
        );
        assert_eq!(second.days.len(), 1, "settled");
        assert!(power.objects.list("inbox/").await.unwrap().is_empty());
        let day = svc.days.get(&key).await.unwrap().unwrap();
        assert!(day.progress.is_empty(), "{:?}", day.progress);
        assert_eq!(svc.ledger.day(&key).await.unwrap().len() as u64, rows);
        // Each call queued once, over both parts.
        let queued: HashSet<String> = w
            .queue
            .drain()
            .into_iter()
            .map(|m| m.call_id.0.into())
            .collect();
        assert_eq!(queued.len() as u64, rows);
    }

    #[tokio::test]
    async fn a_settle_stopped_at_its_deadline_is_finished_by_the_next_part_into_one_file() {
        let w = world("all_csv", MORNING).await;
        let rows = 2 * ingest::BATCH_ROWS as u64 + 500;
        w.only_file(&latest_first(rows)).await;
        let (power, svc, launcher) = PowerCut::timed_with_launcher(&w).await;
        // The rows are read and recorded (a write each); the deadline falls while the
        // export's calls are being finished (a write each too).
        let first = w.run_for(&svc, rows as i64 + 1000).await;
        assert_eq!(first.new_calls, rows, "every row read");
        let settled = &first.days[0];
        assert!(settled.stopped);
        assert_eq!(settled.report, ReportOutcome::Waiting);
        assert!(
            settled.csv.is_none(),
            "not listed before its calls are finished"
        );
        assert!(
            first
                .unfinished
                .as_deref()
                .unwrap()
                .contains("part 2 was started")
        );
        assert_eq!(launcher.started.lock().unwrap()[0].continuation, 1);
        let key = w.day();
        let finished = |svc: &Services| {
            let (svc, key) = (svc.clone(), key.clone());
            async move {
                svc.ledger
                    .day(&key)
                    .await
                    .unwrap()
                    .iter()
                    .filter(|r| r.delivery.state == CallState::Finished)
                    .count() as u64
            }
        };
        let part = finished(&svc).await;
        assert!(part > 0 && part < rows, "{part} of {rows} finished");

        // The next part adopts the file and finishes the rest into it: one file, every
        // call's receipt a row of it, one report.
        let second = w.next_part(&svc, 1).await;
        assert_eq!(second.new_calls, 0);
        let settled = &second.days[0];
        assert!(!settled.stopped);
        assert_eq!(settled.report, ReportOutcome::Sent);
        assert_eq!(finished(&svc).await, rows);
        let day = svc.days.get(&key).await.unwrap().unwrap();
        assert_eq!(day.exports.len(), 1, "{:?}", day.exports);
        assert_eq!(day.exports[0].rows, rows);
        assert_eq!(power.objects.list("exports/unit/").await.unwrap().len(), 1);
        assert_eq!(w.notifier.sent.lock().unwrap().len(), 1);
        // The file's calls came from the day's pages: none was read on its own, and the
        // part that took the file up wrote only the calls not yet finished.
        assert_eq!(power.gets.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn a_tick_out_of_time_hands_the_candidates_it_did_not_reach_to_another_invocation() {
        let w = world("full", MORNING).await;
        let mut doc =
            serde_json::to_value(w.svc.config.get(&w.slug()).await.unwrap().unwrap()).unwrap();
        doc["slug"] = json!("zed");
        doc["van"]["secret_name"] = json!("callsync/zed/van");
        w.svc
            .config
            .put(&serde_json::from_value(doc).unwrap())
            .await
            .unwrap();
        let (_, svc, launcher) = PowerCut::timed_with_launcher(&w).await;
        // Each write takes a second: the first candidate's night outlasts the deadline.
        let deadline = w.svc.clock.now() + jiff::SignedDuration::from_secs(2);
        let entries = tick(&svc, Some(deadline), None).await.unwrap();
        assert_eq!(entries.len(), 2, "{entries:#?}");
        assert_eq!(entries[0].candidate.as_str(), "unit");
        assert_eq!(entries[0].run.as_ref().unwrap().new_calls, 3);
        assert_eq!(entries[1].candidate.as_str(), "zed");
        assert!(entries[1].run.is_none());
        let note = entries[1].error.as_deref().unwrap();
        assert!(note.contains("another invocation goes on"), "{note}");
        let handed = launcher.ticks.lock().unwrap().clone();
        assert_eq!(
            handed,
            [crate::ports::TickAfter {
                tick_after: w.slug()
            }]
        );

        // That invocation takes the candidates after it, and only those.
        let rest = tick(&svc, None, Some(&handed[0].tick_after)).await.unwrap();
        assert_eq!(rest.len(), 1, "{rest:#?}");
        assert_eq!(rest[0].candidate.as_str(), "zed");
        assert_eq!(rest[0].error, None);
        assert!(rest[0].run.is_some(), "zed's night ran");
    }

    #[tokio::test]
    async fn the_tick_leaves_a_night_another_invocation_is_reading_to_it() {
        let w = world("full", MORNING).await;
        // An invocation of `nightly` reads DAY until a minute from now.
        let until = w.svc.clock.now() + jiff::SignedDuration::from_secs(60);
        update_day(&w.svc, &w.day(), |d| {
            d.reading_until = Some(until);
            true
        })
        .await
        .unwrap();
        let entries = tick(&w.svc, None, None).await.unwrap();
        assert!(entries[0].run.is_none(), "{entries:#?}");
        let note = entries[0].note.as_deref().unwrap();
        assert!(note.contains("reading it until"), "{note}");
        assert!(
            w.svc.ledger.day(&w.day()).await.unwrap().is_empty(),
            "nothing read beside it"
        );
        // Past that (the invocation died without clearing it), the tick runs the day.
        w.set_clock("2026-11-22T16:02:00Z");
        let entries = tick(&w.svc, None, None).await.unwrap();
        assert_eq!(entries[0].run.as_ref().unwrap().new_calls, 3);
        assert_eq!(entries[0].note, None);
    }

    #[tokio::test]
    async fn a_run_killed_in_a_file_is_taken_up_after_its_last_whole_batch() {
        let w = world("full", MORNING).await;
        let rows = 3 * ingest::BATCH_ROWS as u64;
        w.only_file(&latest_first(rows)).await;
        // Power lasts into the file's second batch.
        let power = PowerCut::after(ingest::BATCH_ROWS as i64 * 2 + 300, &w).await;
        let svc = power.services(&w.svc);
        let first = run(&svc, &w.slug(), DAY, RunOptions::default()).await;
        assert!(
            first.as_ref().map_or(true, |s| s.new_calls < rows),
            "{first:?}"
        );
        power.left.store(i64::MAX, Ordering::SeqCst);
        let second = run(&svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        let resumed = second.files[0].recorded_before;
        assert!(resumed >= ingest::BATCH_ROWS as u64, "{resumed}");
        assert_eq!(resumed % ingest::BATCH_ROWS as u64, 0);
        // Only the batch the power cut went through is written again.
        assert!(
            second.known_calls < ingest::BATCH_ROWS as u64,
            "{}",
            second.known_calls
        );
        let key = w.day();
        assert_eq!(svc.ledger.day(&key).await.unwrap().len() as u64, rows);
        assert!(power.objects.list("inbox/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_budget_of_a_run_taken_up_offers_only_the_rows_not_yet_recorded() {
        let w = world(r#"{"budget": {"daily_free_requests": 5}}"#, MORNING).await;
        let rows = 2 * ingest::BATCH_ROWS as u64 + 500;
        // The day's five earliest calls: three in the first batch, two in the last.
        let best = [1, 2, 3, rows - 1, rows];
        w.only_file(&calls_with_earliest(rows, &best)).await;
        let power = PowerCut::timed(&w).await;
        let svc = power.services(&w.svc);
        let key = w.day();
        // A first part stopped before the last batch, the first three posted.
        let first = w.run_for(&svc, 1500).await;
        assert!(first.new_calls <= rows - 500, "{}", first.new_calls);
        assert_eq!(posted_in(&svc, &key).await, [1, 2, 3]);
        // The next part has two of the five left, for the best of the rows it reads: the
        // recorded ones are not offered again (they would take those two, and be known).
        let second = run(&svc, &w.slug(), DAY, RunOptions::default())
            .await
            .unwrap();
        assert_eq!(second.files[0].recorded_before, first.new_calls);
        assert_eq!(posted_in(&svc, &key).await, best);
    }

    /// The calls of `key` planned for VAN (numeric call ids), in order.
    async fn posted_in(svc: &Services, key: &DayKey) -> Vec<u64> {
        let mut posted: Vec<u64> = svc
            .ledger
            .day(key)
            .await
            .unwrap()
            .iter()
            .filter(|r| r.post.is_some())
            .map(|r| r.key.call_id.0.parse().unwrap())
            .collect();
        posted.sort_unstable();
        posted
    }
}
