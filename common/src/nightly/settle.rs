//! Settling a day: its CSV-bound calls into one CSV (crash-safe: a file written but not
//! listed is adopted), its waiting deliveries onto the queue, stale work swept back onto it,
//! and once nothing is pending, the report.

use super::*;

/// What settling one day did.
#[derive(Debug, Clone, Serialize)]
pub struct SettleSummary {
    pub date: Date,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub csv: Option<ExportRef>,
    pub enqueued: u64,
    /// Calls the queue refused this time; the next tick sends them.
    pub not_enqueued: u64,
    pub counts: BTreeMap<CallState, u64>,
    /// Calls and deliveries not yet in a final state.
    pub pending: u64,
    /// Each configured destination's deliveries of the day.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub destinations: BTreeMap<String, DestinationSettle>,
    pub report: ReportOutcome,
    /// The settle stopped at its deadline: the counts are of the calls it reached, and
    /// the next settle of the day goes on (an export it began is adopted then).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub stopped: bool,
}

/// How a settle runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SettleOptions {
    /// The instant a run (`/retry`) wrote the calls it re-planned — those are its own,
    /// queued now rather than once the run that planned them is surely gone.
    pub fresh: Option<Timestamp>,
    /// When to stop (between calls; never inside a write): see [`RunOptions::deadline`].
    pub deadline: Option<Timestamp>,
}

impl SettleOptions {
    pub(super) fn past(&self, svc: &Services) -> bool {
        self.deadline.is_some_and(|d| svc.clock.now() >= d)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "status", content = "detail")]
pub enum ReportOutcome {
    /// Calls are still pending, the day is not over, or its LiveVox calls are not read
    /// yet: no report yet.
    Waiting,
    Sent,
    /// The candidate has no webhook: the day is complete without one.
    NoWebhook,
    /// Delivery failed; a later tick tries again (up to the configured attempts).
    Failed(String),
    /// Delivery failed on every attempt; recorded on the day and given up.
    GaveUp(String),
    /// The day was already complete.
    AlreadyDone,
    /// Another run was settling this day.
    Busy,
}

/// Read-modify-write of a day record; `change` returns false to leave it as it is.
/// Returns the record as stored afterwards.
pub async fn update_day(
    svc: &Services,
    day: &DayKey,
    mut change: impl FnMut(&mut DayRecord) -> bool,
) -> Result<DayRecord, StoreError> {
    loop {
        let mut record = svc
            .days
            .get(day)
            .await?
            .unwrap_or_else(|| DayRecord::new(day.clone()));
        if !change(&mut record) {
            return Ok(record);
        }
        if svc.days.replace(&mut record).await? {
            return Ok(record);
        }
    }
}

/// Settle one day: export, enqueue, sweep, report. Holds the day's lock while it works,
/// so two runs never write the same CSV rows or double-send the report.
pub async fn settle_day(
    svc: &Services,
    candidate: &Compiled,
    date: Date,
    opts: SettleOptions,
) -> Result<SettleSummary, StoreError> {
    let day = DayKey {
        candidate: candidate.slug.clone(),
        date,
    };
    let now = svc.clock.now();
    let lock = format!("{:016x}", fastrand::u64(..));
    let lock_until = now + svc.settings.run_lock;
    let mut busy = false;
    let held = update_day(svc, &day, |d| {
        if d.lock_until.is_some_and(|t| t > now) && d.lock_id.as_deref() != Some(lock.as_str()) {
            busy = true;
            return false;
        }
        d.lock_until = Some(lock_until);
        d.lock_id = Some(lock.clone());
        d.runs += 1;
        d.last_run_at = Some(now);
        true
    })
    .await?;
    let mut summary = SettleSummary {
        date,
        csv: None,
        enqueued: 0,
        not_enqueued: 0,
        counts: BTreeMap::new(),
        pending: 0,
        destinations: BTreeMap::new(),
        report: ReportOutcome::Busy,
        stopped: false,
    };
    if busy {
        return Ok(summary);
    }

    let result = settle_locked(svc, candidate, &day, &held, opts, &mut summary).await;
    let finish = update_day(svc, &day, |d| {
        if d.lock_id.as_deref() != Some(lock.as_str()) {
            return false;
        }
        d.lock_until = None;
        d.lock_id = None;
        true
    })
    .await;
    result?;
    finish?;
    metrics::emit(
        &day.candidate,
        svc.clock.now(),
        &[
            (Metric::CallsQueued, metrics::count(summary.enqueued)),
            (
                Metric::CallsFinished,
                metrics::count(summary.csv.as_ref().map_or(0, |c| c.rows)),
            ),
        ],
    );
    Ok(summary)
}

pub(super) async fn settle_locked(
    svc: &Services,
    candidate: &Compiled,
    day: &DayKey,
    held: &DayRecord,
    opts: SettleOptions,
    summary: &mut SettleSummary,
) -> Result<(), StoreError> {
    use futures::TryStreamExt;
    let fresh = opts.fresh;
    // Stopped at the deadline: the rest is the next settle's.
    let stop = |summary: &mut SettleSummary| {
        summary.stopped = true;
        summary.report = ReportOutcome::Waiting;
        Ok(())
    };

    // 1. CSV-bound calls into one new CSV, written as the day's calls stream by. A file a
    // dead run wrote but never listed is adopted first: its calls are finished into it,
    // never written into a second file.
    if !adopt_unlisted_exports(svc, candidate, day, held, opts).await? {
        return stop(summary);
    }
    let queued = svc
        .ledger
        .day_records(day)
        .try_filter(|r| {
            std::future::ready(r.delivery.state == CallState::QueuedForCsv && r.call.is_some())
        })
        // A file cut at the deadline holds the calls before it; the next settle's the rest.
        .try_take_while(|_| std::future::ready(Ok(!opts.past(svc))));
    let written = candidate
        .csv
        .deliver_many(batch_context(svc, candidate, day), Box::pin(queued))
        .await
        .map_err(export_error)?;
    if let Some(unit) = written {
        if finish_unit(svc, candidate, day, &unit.key, opts)
            .await?
            .is_none()
        {
            // Left unlisted: the next settle adopts it and finishes its calls.
            return stop(summary);
        }
        let export = ExportRef {
            key: unit.key,
            rows: unit.items,
            at: svc.clock.now(),
        };
        list_export(svc, day, &export).await?;
        summary.csv = Some(export);
    }

    // 2. One pass over the day's calls, a page at a time: VAN-bound calls onto the queue
    // (new ones, ones a dead run never sent, ones whose message was lost, ones whose worker
    // died holding them); every other destination's deliveries planned for calls they have
    // not seen (a destination added since the day last ran gets the whole day) and the due
    // ones queued; everything counted.
    let now = svc.clock.now();
    let s = &svc.settings;
    let due = |r: &CallRecord| {
        // A call never handed to the queue is the run's that planned it to send (a run
        // queues its new calls as it records them), anyone's once that run is surely gone.
        let unsent_due = fresh.is_some_and(|at| r.updated_at == at)
            || r.updated_at + s.requeue_unsent_after <= now;
        r.delivery.is_due(now, unsent_due, s.requeue_stale_after)
    };
    let mut tally = report::Tally::default();
    let mut own = fanout::no_own_counts();
    let mut passes: Vec<fanout::DestinationPass> = candidate
        .destinations
        .iter()
        .map(|d| fanout::DestinationPass::new(svc, candidate, day, d))
        .collect();
    let mirrors = candidate.mirrors();
    let mut sending: Vec<CallRecord> = Vec::new();
    let mut calls = svc.ledger.day_records(day);
    let mut stopped = false;
    while let Some(record) = calls.next().await {
        if opts.past(svc) {
            stopped = true;
            break;
        }
        let mut record = record?;
        if record.remirror {
            // A `/retry` that died before marking the call's mirrors: marked now.
            fanout::remirror(svc, candidate, &mirrors, &mut record).await?;
        }
        tally.add(&record);
        fanout::add_own(&mut own, &record);
        // Destinations that mirror the call's whole story come last, told whether the
        // rest of it is final.
        let mut others_final = record.delivery.state.is_terminal();
        for pass in passes.iter_mut().filter(|p| !p.waits()) {
            others_final &= pass.take(&record, true).await?;
        }
        for pass in passes.iter_mut().filter(|p| p.waits()) {
            pass.take(&record, others_final).await?;
        }
        if due(&record) {
            sending.push(record);
            if sending.len() >= fanout::CHUNK {
                send_calls(svc, day, &mut sending, summary).await;
            }
        }
    }
    drop(calls);
    send_calls(svc, day, &mut sending, summary).await;
    for (pass, d) in passes.into_iter().zip(&candidate.destinations) {
        summary
            .destinations
            .insert(d.name.clone(), pass.finish().await?);
    }
    if stopped {
        summary.counts = tally.by_state.clone();
        return stop(summary);
    }
    let delivering: u64 = summary.destinations.values().map(|d| d.pending).sum();
    // A day already complete has work again: ticks sweep it until done.
    if held.complete && delivering > 0 {
        update_day(svc, day, |d| {
            let was = d.complete;
            d.complete = false;
            was
        })
        .await?;
    }

    // 3. Counts, and the report once nothing is pending and the day is over.
    let waiting: u64 = tally
        .by_state
        .iter()
        .filter(|(state, _)| !state.is_terminal())
        .map(|(_, n)| n)
        .sum();
    summary.counts = tally.by_state.clone();
    summary.pending = waiting + delivering;
    // A LiveVox day the API has not served yet (it serves a day only once it is over in
    // its own reckoning) is not done, however empty it looks: the next tick reads it.
    let livevox_unread = candidate.doc().source.livevox.is_some() && held.livevox_read_at.is_none();
    summary.report = if held.complete {
        ReportOutcome::AlreadyDone
    } else if summary.pending > 0 || livevox_unread || day.date >= local_today(svc, candidate) {
        ReportOutcome::Waiting
    } else {
        let deliveries = own
            .into_iter()
            .map(|(name, d)| (name, d.by_state))
            .chain(
                summary
                    .destinations
                    .iter()
                    .map(|(name, d)| (name.clone(), d.counts.clone())),
            )
            .collect();
        send_report(svc, candidate, day, &tally, &deliveries).await?
    };
    Ok(())
}

/// Hand `calls` (due VAN-bound calls) to the queue, counted on the settle; empties it.
async fn send_calls(
    svc: &Services,
    day: &DayKey,
    calls: &mut Vec<CallRecord>,
    summary: &mut SettleSummary,
) {
    let all: Vec<usize> = (0..calls.len()).collect();
    let (sent, refused) = fanout::enqueue(svc, day, calls, &all).await;
    summary.enqueued += sent;
    summary.not_enqueued += refused;
    calls.clear();
}

/// Finish each call the export `key` holds that is still CSV-bound, its receipt its row;
/// returns the file's rows, or `None` when the deadline came first (the file stays
/// unlisted, for the next settle to adopt). Its rows are read back from the file (so the receipts are
/// what the file says, whoever wrote it), a chunk at a time. Each step is safe to repeat,
/// and any store failure stops here: the file then stays unlisted, and the next settle
/// adopts it — every CSV-bound call ends in exactly one listed file.
async fn finish_unit(
    svc: &Services,
    candidate: &Compiled,
    day: &DayKey,
    key: &str,
    opts: SettleOptions,
) -> Result<Option<u64>, StoreError> {
    let mut receipts = candidate
        .csv
        .receipts(batch_context(svc, candidate, day), key)
        .chunks(fanout::CHUNK);
    // The file holds its calls in the day's order: their records come from the day's
    // pages as they go by (a page read for many rows, and none again for a call already
    // finished), and a row out of that order is read on its own.
    let mut calls = svc.ledger.day_records(day).peekable();
    let mut rows = 0;
    while let Some(chunk) = receipts.next().await {
        if opts.past(svc) {
            return Ok(None);
        }
        let chunk: Vec<(CallId, Receipt)> = chunk.into_iter().collect::<Result<_, _>>()?;
        rows += chunk.len() as u64;
        let mut found = Vec::with_capacity(chunk.len());
        for (call_id, receipt) in chunk {
            let record = fanout::call_of(&mut calls, &call_id).await?;
            found.push((call_id, receipt, record));
        }
        let finished: Vec<Result<(), StoreError>> = futures::stream::iter(found)
            .map(|(call_id, receipt, record)| finish_one(svc, day, call_id, receipt, record))
            .buffer_unordered(svc.settings.ledger_concurrency.max(1))
            .collect()
            .await;
        finished.into_iter().collect::<Result<(), _>>()?;
    }
    Ok(Some(rows))
}

/// Finish one call into its row, if it is still CSV-bound: one write, given the record as
/// the day's pages had it; a record not given, or changed since, is read (once more).
async fn finish_one(
    svc: &Services,
    day: &DayKey,
    call_id: CallId,
    receipt: Receipt,
    mut read: Option<CallRecord>,
) -> Result<(), StoreError> {
    let key = crate::ledger::CallKey {
        day: day.clone(),
        call_id,
    };
    for _ in 0..3 {
        let record = match read.take() {
            Some(record) => Some(record),
            None => svc.ledger.get(&key).await?,
        };
        let Some(mut record) = record else {
            tracing::warn!(call = %key, "an exported call is not in the ledger");
            return Ok(());
        };
        if record.delivery.state != CallState::QueuedForCsv {
            return Ok(());
        }
        record.delivery.state = CallState::Finished;
        record.delivery.receipt = Some(receipt.clone());
        record.updated_at = svc.clock.now();
        if svc.ledger.replace(&mut record).await? {
            return Ok(());
        }
    }
    tracing::warn!(call = %key, "changed while being exported; left as it is");
    Ok(())
}

fn batch_context<'a>(
    svc: &'a Services,
    candidate: &'a Compiled,
    day: &'a DayKey,
) -> crate::destinations::BatchContext<'a> {
    crate::destinations::BatchContext {
        objects: svc.objects.as_ref(),
        candidate,
        day,
        clock: svc.clock.as_ref(),
    }
}

/// The CSV's failure, as the settle's: the bucket could not be written or read for now.
fn export_error(e: crate::destinations::DeliveryError) -> StoreError {
    StoreError::Unavailable("the CSV export", e.to_string())
}

/// Put `export` on the day's list of files, once.
pub(super) async fn list_export(
    svc: &Services,
    day: &DayKey,
    export: &ExportRef,
) -> Result<(), StoreError> {
    update_day(svc, day, |d| {
        if d.exports.iter().any(|e| e.key == export.key) {
            return false;
        }
        d.exports.push(export.clone());
        true
    })
    .await
    .map(drop)
}

/// Complete what a run that died while exporting left: a file in the day's export folder
/// that the day does not list (the CSV destination's [`unrecorded`]). Each call still
/// CSV-bound is finished into its row there, and the file is listed. A file that is not an
/// export is left alone.
///
/// [`unrecorded`]: crate::destinations::BatchDestination::unrecorded
pub(super) async fn adopt_unlisted_exports(
    svc: &Services,
    candidate: &Compiled,
    day: &DayKey,
    held: &DayRecord,
    opts: SettleOptions,
) -> Result<bool, StoreError> {
    let listed: Vec<&str> = held.exports.iter().map(|e| e.key.as_str()).collect();
    let unlisted = candidate
        .csv
        .unrecorded(batch_context(svc, candidate, day), &listed)
        .await
        .map_err(export_error)?;
    for key in unlisted {
        tracing::warn!(key = %key, "adopting an export a stopped run left unlisted");
        match finish_unit(svc, candidate, day, &key, opts).await {
            Ok(None) => return Ok(false),
            Ok(Some(rows)) => {
                let export = ExportRef {
                    key,
                    rows,
                    at: svc.clock.now(),
                };
                list_export(svc, day, &export).await?;
            }
            Err(StoreError::Corrupt { what, message }) => {
                tracing::error!(key = %key, what = %what, error = %message, "an unlisted file in the export folder is not an export; left alone");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

pub(super) async fn send_report(
    svc: &Services,
    candidate: &Compiled,
    day: &DayKey,
    tally: &report::Tally,
    deliveries: &BTreeMap<String, BTreeMap<CallState, u64>>,
) -> Result<ReportOutcome, StoreError> {
    let Some(notify) = candidate.doc().notify.as_ref() else {
        update_day(svc, day, |d| {
            d.complete = true;
            true
        })
        .await?;
        return Ok(ReportOutcome::NoWebhook);
    };
    let stored = svc
        .days
        .get(day)
        .await?
        .unwrap_or_else(|| DayRecord::new(day.clone()));
    if stored.report.sent_at.is_some() {
        update_day(svc, day, |d| {
            d.complete = true;
            true
        })
        .await?;
        return Ok(ReportOutcome::AlreadyDone);
    }
    let mut links = Vec::new();
    for e in &stored.exports {
        links.push(svc.objects.presign(&e.key, svc.settings.link_ttl).await?);
    }
    let mut body = report::run_report(candidate, day, tally, deliveries, &links);
    let added = on_settled(candidate, day, deliveries).await;
    if !added.is_empty()
        && let Value::Object(map) = &mut body
    {
        map.insert("extensions".into(), Value::Object(added));
    }
    let delivered = svc.notifier.send(&notify.webhook_url, &body).await;
    let now = svc.clock.now();
    let give_up_after = svc.settings.report_attempts;
    let mut outcome = ReportOutcome::Sent;
    update_day(svc, day, |d| {
        d.report.attempts += 1;
        match &delivered {
            Ok(()) => {
                d.report.sent_at = Some(now);
                d.report.last_error = None;
                d.complete = true;
                outcome = ReportOutcome::Sent;
            }
            Err(e) => {
                d.report.last_error = Some(e.clone());
                if d.report.attempts >= give_up_after {
                    d.complete = true;
                    outcome = ReportOutcome::GaveUp(e.clone());
                } else {
                    outcome = ReportOutcome::Failed(e.clone());
                }
            }
        }
        true
    })
    .await?;
    if let ReportOutcome::Failed(e) | ReportOutcome::GaveUp(e) = &outcome {
        tracing::warn!(day = %day, error = %e, "run report not delivered");
    }
    Ok(outcome)
}

/// Run the candidate's `on_settled` hooks for a day being reported, in order: what each
/// adds, under its name. A hook that fails adds its error there instead; the report still
/// goes.
async fn on_settled(
    candidate: &Compiled,
    day: &DayKey,
    deliveries: &BTreeMap<String, BTreeMap<CallState, u64>>,
) -> serde_json::Map<String, Value> {
    use crate::extensions::{Hook, Settled};
    let mut added = serde_json::Map::new();
    for enabled in candidate.extensions_with(Hook::OnSettled) {
        let seen = Settled {
            candidate,
            day,
            deliveries,
            settings: &enabled.settings,
        };
        match enabled.extension.on_settled(seen).await {
            Ok(Some(value)) => {
                added.insert(enabled.name().into(), value);
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(extension = enabled.name(), candidate = %day.candidate, error = %e, "an extension could not add to the report");
                added.insert(
                    enabled.name().into(),
                    serde_json::json!({ "error": format!("extension {}: {e}", enabled.name()) }),
                );
            }
        }
    }
    added
}
