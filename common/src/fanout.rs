//! The nightly side of destinations: plan each of a day's calls for every destination the
//! candidate configures, record one delivery per call and destination, and hand the due
//! ones to the queue, each message naming its delivery.
//!
//! Planning is insert-only: a delivery already in the ledger keeps its state, so settling a
//! day again (a re-run, a tick's sweep) plans only what is missing. That is how a
//! destination added to a candidate later receives a past day when it is run again, while
//! nothing already delivered anywhere moves. `POST /retry` is the one way to re-plan a
//! delivery ([`retry`]).

use std::collections::{BTreeMap, HashSet};

use futures::StreamExt;
use serde::Serialize;
use serde_json::Value;

use crate::deliver::Stored;
use crate::destinations::Compiled;
use crate::destinations::Configured;
use crate::ledger::{
    self, CallRecord, CallState, DayKey, DeliveryKey, DeliveryPlan, DeliveryRecord, Tracked,
};
use crate::ports::{StoreError, SyncMessage};
use crate::services::Services;

/// What settling one day did for one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestinationSettle {
    pub kind: String,
    /// Deliveries this settle recorded (calls the destination had not been planned for).
    pub planned: u64,
    pub enqueued: u64,
    /// Deliveries the queue refused this time; the next tick sends them.
    pub not_enqueued: u64,
    /// Every delivery of the day to this destination, by state.
    pub counts: BTreeMap<CallState, u64>,
    /// Deliveries not yet in a final state.
    pub pending: u64,
}

/// How many deliveries a settle holds per destination before it records and queues them.
pub const CHUNK: usize = 500;

/// One destination's side of a settle's single pass over a day's calls: its deliveries
/// are read in call-id order beside the calls, a delivery is planned for each call that
/// has none (a destination added since the day last ran gets the whole day), and the due
/// ones are queued — a chunk at a time, so a day of any size is settled in bounded memory.
pub struct DestinationPass<'a> {
    svc: &'a Services,
    candidate: &'a Compiled,
    day: &'a DayKey,
    destination: &'a Configured,
    deliveries: futures::stream::Peekable<crate::ports::Records<'a, DeliveryRecord>>,
    /// Deliveries read, waiting to be queued and counted.
    chunk: Vec<DeliveryRecord>,
    /// Deliveries planned, waiting to be recorded.
    missing: Vec<DeliveryRecord>,
    /// Calls of the chunk whose other deliveries are not final yet: a destination that
    /// waits for them ([`crate::destinations::Metadata::waits_for_call`]) is not sent
    /// these yet.
    held: HashSet<crate::call::CallId>,
    now: jiff::Timestamp,
    summary: DestinationSettle,
}

impl std::fmt::Debug for DestinationPass<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DestinationPass")
            .field("destination", &self.destination.name)
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl<'a> DestinationPass<'a> {
    pub fn new(
        svc: &'a Services,
        candidate: &'a Compiled,
        day: &'a DayKey,
        destination: &'a Configured,
    ) -> Self {
        Self {
            svc,
            candidate,
            day,
            destination,
            deliveries: svc
                .ledger
                .delivery_records(day, &destination.name)
                .peekable(),
            chunk: Vec::new(),
            missing: Vec::new(),
            held: HashSet::new(),
            now: svc.clock.now(),
            summary: DestinationSettle {
                kind: destination.kind().to_owned(),
                ..DestinationSettle::default()
            },
        }
    }

    /// Whether this destination waits for a call's other deliveries to be final.
    pub fn waits(&self) -> bool {
        self.destination.adapter.metadata().waits_for_call
    }

    /// Take the day's next call (calls come in call-id order, as the ledger reads them);
    /// `others_final`: whether its other deliveries are all final (see [`Self::waits`]).
    /// Returns whether this destination's delivery of the call is final.
    pub async fn take(
        &mut self,
        call: &CallRecord,
        others_final: bool,
    ) -> Result<bool, StoreError> {
        if self.waits() && !others_final {
            self.held.insert(call.key.call_id.clone());
        }
        let mut found = false;
        let mut settled = true;
        loop {
            let order = match std::pin::Pin::new(&mut self.deliveries).peek().await {
                None => break,
                Some(Ok(d)) => d.key.call.call_id.cmp(&call.key.call_id),
                Some(Err(_)) => std::cmp::Ordering::Less,
            };
            if order == std::cmp::Ordering::Greater {
                break;
            }
            // Before this call: a delivery of a call the day no longer reads (still
            // counted and swept); equal: this call's.
            let delivery = match self.deliveries.next().await {
                Some(d) => Some(d?),
                None => None,
            };
            if order == std::cmp::Ordering::Equal {
                found = true;
                settled = delivery
                    .as_ref()
                    .is_none_or(|d| d.delivery.state.is_terminal());
            }
            self.chunk.extend(delivery);
            if found {
                break;
            }
        }
        if !found && let Some(c) = call.call.as_ref() {
            let plan = call
                .held_by_extension()
                .unwrap_or_else(|| self.destination.plan(c, self.candidate));
            let key = DeliveryKey {
                call: call.key.clone(),
                destination: self.destination.name.clone(),
            };
            let planned = DeliveryRecord::planned(key, self.destination.kind(), &plan, self.now);
            settled = planned.delivery.state.is_terminal();
            self.missing.push(planned);
        }
        if self.chunk.len() + self.missing.len() >= CHUNK {
            self.flush().await;
        }
        Ok(settled)
    }

    /// The deliveries left after the day's last call, then what the pass did.
    pub async fn finish(mut self) -> Result<DestinationSettle, StoreError> {
        while let Some(d) = self.deliveries.next().await {
            self.chunk.push(d?);
            if self.chunk.len() >= CHUNK {
                self.flush().await;
            }
        }
        self.flush().await;
        Ok(self.summary)
    }

    /// Record the planned deliveries, then queue the due ones and count them all.
    async fn flush(&mut self) {
        let svc = self.svc;
        let inserted: Vec<Result<Option<DeliveryRecord>, StoreError>> =
            futures::stream::iter(std::mem::take(&mut self.missing))
                .map(|r| async move {
                    if svc.ledger.insert_delivery(&r).await? {
                        Ok(Some(r))
                    } else {
                        // Another run recorded it in between: take what the ledger holds.
                        svc.ledger.get_delivery(&r.key).await
                    }
                })
                .buffered(svc.settings.ledger_concurrency.max(1))
                .collect()
                .await;
        for result in inserted {
            match result {
                Ok(Some(r)) => {
                    self.summary.planned += 1;
                    self.chunk.push(r);
                }
                Ok(None) => {}
                Err(e) => {
                    // One unwritable delivery never stops the night: the next settle plans it.
                    tracing::warn!(day = %self.day, destination = %self.destination.name, error = %e, "delivery not recorded");
                }
            }
        }
        let mut records = std::mem::take(&mut self.chunk);
        let held = std::mem::take(&mut self.held);
        let due: Vec<usize> = (0..records.len())
            .filter(|&i| {
                records[i]
                    .delivery
                    .is_due(self.now, true, svc.settings.requeue_stale_after)
                    && !held.contains(&records[i].key.call.call_id)
            })
            .collect();
        let (enqueued, refused) = enqueue(svc, self.day, &mut records, &due).await;
        self.summary.enqueued += enqueued;
        self.summary.not_enqueued += refused;
        for r in &records {
            *self.summary.counts.entry(r.delivery.state).or_default() += 1;
            if !r.delivery.state.is_terminal() {
                self.summary.pending += 1;
            }
        }
    }
}

/// Hand `records[due]` to the queue, then mark each sent one enqueued in the ledger.
/// Returns (enqueued, refused). A death between the two steps leaves sent records
/// unmarked: the sweep sends them again, and the lease keeps a second message harmless.
pub(crate) async fn enqueue<R: Stored>(
    svc: &Services,
    day: &DayKey,
    records: &mut [R],
    due: &[usize],
) -> (u64, u64) {
    if due.is_empty() {
        return (0, 0);
    }
    let messages: Vec<SyncMessage> = due.iter().map(|&i| records[i].message()).collect();
    let failed: HashSet<usize> = match svc.queue.send(&messages).await {
        Ok(failed) => failed.into_iter().collect(),
        Err(e) => {
            tracing::warn!(day = %day, error = %e, "queue unavailable; the next tick sends these");
            (0..messages.len()).collect()
        }
    };
    let sent: Vec<usize> = due
        .iter()
        .enumerate()
        .filter(|(j, _)| !failed.contains(j))
        .map(|(_, &i)| i)
        .collect();
    let now = svc.clock.now();
    let marked: Vec<(usize, Option<R>)> = futures::stream::iter(sent.iter().copied())
        .map(|i| {
            let mut r = records[i].clone();
            r.delivery_mut().enqueued_at = Some(now);
            async move {
                // A worker may have taken it already: then it is no longer ours to mark.
                match r.write(svc.ledger.as_ref()).await {
                    Ok(true) => (i, Some(r)),
                    _ => (i, None),
                }
            }
        })
        .buffered(svc.settings.ledger_concurrency.max(1))
        .collect()
        .await;
    for (i, r) in marked {
        if let Some(r) = r {
            records[i] = r;
        }
    }
    (sent.len() as u64, failed.len() as u64)
}

/// A day's deliveries to every destination, counted by state: VAN's and the CSV's as
/// counted from the day's call records (`own`), every configured destination's from its
/// own records, read a page at a time. Destinations the candidate no longer has are not
/// read (their deliveries stay in the ledger as they were).
pub async fn counts(
    svc: &Services,
    candidate: &Compiled,
    day: &DayKey,
    own: BTreeMap<String, DestinationCounts>,
) -> Result<BTreeMap<String, DestinationCounts>, StoreError> {
    let mut out = own;
    for d in &candidate.destinations {
        let mut counts = DestinationCounts::new(d.kind());
        let mut records = svc.ledger.delivery_records(day, &d.name);
        while let Some(r) = records.next().await {
            counts.add(&r?);
        }
        out.insert(d.name.clone(), counts);
    }
    Ok(out)
}

/// VAN's and the CSV's deliveries, none counted yet (see [`add_own`]).
pub fn no_own_counts() -> BTreeMap<String, DestinationCounts> {
    [ledger::VAN, ledger::CSV]
        .into_iter()
        .map(|name| (name.to_owned(), DestinationCounts::new(name)))
        .collect()
}

/// Count a call's own delivery: to the one of VAN and the CSV its plan chose, if any (an
/// ignored call, a bad row or an unknown result goes to neither and is counted with the
/// calls only).
pub fn add_own(counts: &mut BTreeMap<String, DestinationCounts>, call: &CallRecord) {
    if let Some(c) = call.destination().and_then(|name| counts.get_mut(name)) {
        c.add(call);
    }
}

/// VAN's and the CSV's deliveries of a day, counted from its call records.
pub fn own_counts(calls: &[CallRecord]) -> BTreeMap<String, DestinationCounts> {
    let mut counts = no_own_counts();
    for call in calls {
        add_own(&mut counts, call);
    }
    counts
}

/// What became of a day's deliveries to one destination: for `GET /status` and the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestinationCounts {
    pub kind: String,
    pub total: u64,
    pub by_state: BTreeMap<CallState, u64>,
    /// Deliveries in an error state, with the first few reasons (call id, code, message).
    pub errors: Vec<DeliveryErrorLine>,
}

/// Errors listed per destination; the rest are counted in `by_state`.
pub const ERRORS_LISTED: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeliveryErrorLine {
    pub call_id: String,
    pub state: CallState,
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

impl DestinationCounts {
    pub fn of<'a, R: Tracked + 'a>(kind: &str, records: impl IntoIterator<Item = &'a R>) -> Self {
        let mut out = Self::new(kind);
        for r in records {
            out.add(r);
        }
        out
    }

    pub fn new(kind: &str) -> Self {
        Self {
            kind: kind.to_owned(),
            ..Self::default()
        }
    }

    /// Count one more delivery; its error is listed when it is among the first
    /// [`ERRORS_LISTED`] by call id.
    pub fn add<R: Tracked>(&mut self, r: &R) {
        let d = r.delivery();
        self.total += 1;
        *self.by_state.entry(d.state).or_default() += 1;
        if !d.state.is_retryable() {
            return;
        }
        let call_id = &r.call_key().call_id.0;
        let at = self
            .errors
            .partition_point(|e| e.call_id.as_str() <= call_id.as_str());
        if at >= ERRORS_LISTED {
            return;
        }
        self.errors.insert(
            at,
            DeliveryErrorLine {
                call_id: call_id.to_string(),
                state: d.state,
                code: d.error.as_ref().map(|e| e.code.clone()).unwrap_or_default(),
                message: d
                    .error
                    .as_ref()
                    .map(|e| e.message.clone())
                    .unwrap_or_default(),
                status: d.error.as_ref().and_then(|e| e.status),
            },
        );
        self.errors.truncate(ERRORS_LISTED);
    }

    pub fn count(&self, state: CallState) -> u64 {
        self.by_state.get(&state).copied().unwrap_or(0)
    }
}

/// Dry runs: add to `samples` the payloads the first few calls of `records` would send to
/// each destination, until each has `per_destination` (a night read in batches adds each
/// batch in turn).
pub fn add_sample_payloads(
    samples: &mut BTreeMap<String, Vec<Value>>,
    candidate: &Compiled,
    records: &[CallRecord],
    per_destination: usize,
) {
    for d in &candidate.destinations {
        let taken = samples.entry(d.name.clone()).or_default();
        let wanted = per_destination.saturating_sub(taken.len());
        taken.extend(
            records
                .iter()
                .filter(|r| r.held_by_extension().is_none())
                .filter_map(|r| r.call.as_ref())
                .filter_map(|call| match d.plan(call, candidate) {
                    DeliveryPlan::Send(payload) => Some(payload),
                    _ => None,
                })
                .take(wanted),
        );
    }
}

/// What `/retry` did to one destination's deliveries.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DestinationRetry {
    /// Deliveries re-planned from an error state, by their new state.
    pub replanned: BTreeMap<CallState, u64>,
    /// Delivered calls whose content changed since: sent again, as `updated`.
    pub updated: u64,
}

/// For the destinations that mirror a call's whole story ([`Metadata::waits_for_call`]):
/// plan again a call one of them already delivered, so that it is written again once the
/// call's other deliveries — which a retry just changed — are final again. Returns how
/// many per destination. A call whose mirror is not delivered yet is left alone: it
/// carries the news when it goes (so a call changed twice is marked once).
///
/// [`Metadata::waits_for_call`]: crate::destinations::Metadata::waits_for_call
pub async fn mirror_again(
    svc: &Services,
    candidate: &Compiled,
    mirrors: &[&Configured],
    record: &CallRecord,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut again = Vec::new();
    let Some(call) = record.call.as_ref() else {
        return Ok(again);
    };
    for destination in mirrors {
        let key = DeliveryKey {
            call: record.key.clone(),
            destination: destination.name.clone(),
        };
        let Some(mut delivery) = svc.ledger.get_delivery(&key).await? else {
            continue;
        };
        if delivery.delivery.state != CallState::Finished {
            continue;
        }
        let plan = record
            .held_by_extension()
            .unwrap_or_else(|| destination.plan(call, candidate));
        delivery.apply_plan(&plan, svc.clock.now());
        if svc.ledger.replace_delivery(&mut delivery).await? {
            again.push((destination.name.clone(), 1));
        }
    }
    Ok(again)
}

/// [`mirror_again`] for a call whose record carries the intent (`CallRecord::remirror`),
/// then the intent cleared (`record` is written, its version moves on). Safe to repeat:
/// a mirror already marked is not marked twice.
pub async fn remirror(
    svc: &Services,
    candidate: &Compiled,
    mirrors: &[&Configured],
    record: &mut CallRecord,
) -> Result<Vec<(String, u64)>, StoreError> {
    let again = mirror_again(svc, candidate, mirrors, record).await?;
    if record.remirror {
        record.remirror = false;
        if !svc.ledger.replace(record).await? {
            // Someone wrote the call in between: its next settle sees the intent, and
            // marking again changes nothing.
            tracing::debug!(call = %record.key, "the call changed while its mirrors were marked");
        }
    }
    Ok(again)
}

/// Re-plan one destination's deliveries in `states` (error states) with the current
/// candidate, and, for kinds that take updates, mark a delivered call for sending again
/// when what it would send now differs from what was delivered. Calls are read from the
/// day's call records beside the deliveries, both in call-id order a page at a time, so
/// the payload follows the current mapping and nothing of the day is held. A call whose
/// delivery changed is marked for `mirrors` again ([`mirror_again`]); returns what that
/// did too.
pub async fn retry(
    svc: &Services,
    candidate: &Compiled,
    day: &DayKey,
    destination: &Configured,
    states: &[CallState],
    mirrors: &[&Configured],
) -> Result<(DestinationRetry, Vec<(String, u64)>), StoreError> {
    let resends = destination.adapter.metadata().resends_updates;
    let mirrors: &[&Configured] = if destination.adapter.metadata().waits_for_call {
        &[]
    } else {
        mirrors
    };
    let now = svc.clock.now();
    let mut summary = DestinationRetry::default();
    let mut mirrored = Vec::new();
    let mut calls = svc.ledger.day_records(day).peekable();
    let mut deliveries = svc.ledger.delivery_records(day, &destination.name);
    while let Some(record) = deliveries.next().await {
        let mut record = record?;
        let Some(mut call_record) = call_of(&mut calls, &record.key.call.call_id).await? else {
            continue;
        };
        let Some(call) = call_record.call.as_ref() else {
            continue;
        };
        let plan = call_record
            .held_by_extension()
            .unwrap_or_else(|| destination.plan(call, candidate));
        let replan = states.contains(&record.delivery.state);
        let resend = !replan
            && record.delivery.state == CallState::Finished
            && resends
            && match &plan {
                DeliveryPlan::Send(payload) => {
                    record.delivered_hash.as_deref()
                        != Some(crate::ledger::payload_hash(payload).as_str())
                }
                // A delivered call the destination would no longer take stays delivered:
                // nothing can be taken back from a receiver.
                _ => false,
            };
        if !replan && !resend {
            continue;
        }
        // The mirrors' intent goes on the call before the delivery changes: a run that
        // dies after the change leaves it for the next settle.
        let intent = if mirrors.is_empty() {
            false
        } else {
            match intend_remirror(svc, &mut call_record).await? {
                Some(ours) => ours,
                None => {
                    tracing::warn!(call = %call_record.key, "the call kept changing under this retry; left for the next");
                    continue;
                }
            }
        };
        let changed = if replan {
            record.kind = destination.kind().to_owned();
            record.apply_plan(&plan, now);
            let changed = svc.ledger.replace_delivery(&mut record).await?;
            if changed {
                *summary.replanned.entry(record.delivery.state).or_default() += 1;
            }
            changed
        } else {
            record.apply_plan(&plan, now);
            let changed = svc.ledger.replace_delivery(&mut record).await?;
            if changed {
                summary.updated += 1;
            }
            changed
        };
        if changed {
            mirrored.extend(remirror(svc, candidate, mirrors, &mut call_record).await?);
        } else if intent {
            // Another worker wrote the delivery first: nothing changed, no intent left.
            call_record.remirror = false;
            svc.ledger.replace(&mut call_record).await?;
        }
    }
    Ok((summary, mirrored))
}

/// Put the mirrors' intent on `record` (read again when a worker wrote the call since the
/// page was read). `Some(true)`: this call set it; `Some(false)`: it was there already;
/// `None`: the call is gone or kept changing.
async fn intend_remirror(
    svc: &Services,
    record: &mut CallRecord,
) -> Result<Option<bool>, StoreError> {
    for _ in 0..3 {
        if record.remirror {
            return Ok(Some(false));
        }
        record.remirror = true;
        if svc.ledger.replace(record).await? {
            return Ok(Some(true));
        }
        match svc.ledger.get(&record.key).await? {
            Some(now) => *record = now,
            None => return Ok(None),
        }
    }
    Ok(None)
}

/// The call record of `id` from `calls` (a day's, in call-id order), passing the calls
/// before it; `None` when the day has no such call.
pub(crate) async fn call_of(
    calls: &mut futures::stream::Peekable<crate::ports::Records<'_, CallRecord>>,
    id: &crate::call::CallId,
) -> Result<Option<CallRecord>, StoreError> {
    loop {
        let order = match std::pin::Pin::new(&mut *calls).peek().await {
            None => return Ok(None),
            Some(Ok(c)) => c.key.call_id.cmp(id),
            // Taken next, so the error is returned.
            Some(Err(_)) => std::cmp::Ordering::Less,
        };
        match order {
            std::cmp::Ordering::Greater => return Ok(None),
            std::cmp::Ordering::Equal => return calls.next().await.transpose(),
            std::cmp::Ordering::Less => {
                calls.next().await.transpose()?;
            }
        }
    }
}
