//! `sync-call` for configured destinations: lease a delivery, send it through its
//! destination's adapter, and record a receipt, a final error, or the next try.
//!
//! Each destination of a batch runs on its own (its own pace and concurrency), beside VAN,
//! so a receiver that is down or slow holds back nobody else's deliveries. A failed try is
//! released with `next_attempt_at` set by jittered exponential back-off and handed back to
//! the queue with a delay (SQS `DelaySeconds`, at most 15 minutes); longer waits are left
//! to the tick's sweep. No worker sleeps through a back-off.
//!
//! A send is never cut off once started; the one window for a second delivery is a worker
//! dying between the destination's 2xx and the ledger write (the receipt), and the
//! idempotency key each request carries lets the receiver recognise that repeat.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use futures::StreamExt;
use futures::future::join_all;
use jiff::Timestamp;

use crate::candidate::Candidate;
use crate::destinations::{Configured, DeliverContext, DeliveryError};
use crate::ledger::{CallKey, CallState, DayKey, DeliveryKey, DeliveryRecord, ErrorNote, Receipt};
use crate::ports::{MAX_QUEUE_DELAY, StoreError, SyncMessage};
use crate::posting::Outcome;
use crate::services::{CandidateError, Services};

/// Deliver the messages that name a destination, at most `destination_concurrency` at a
/// time per destination and no faster than its rate limit. Returns each message's
/// outcome, in order.
pub async fn deliver_batch(
    svc: &Services,
    messages: &[&SyncMessage],
    deadline: tokio::time::Instant,
) -> Vec<Outcome> {
    let mut groups: Vec<((DayKey, String), Vec<usize>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let group = (
            DayKey {
                candidate: m.candidate.clone(),
                date: m.date,
            },
            m.destination.clone().unwrap_or_default(),
        );
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(i),
            None => groups.push((group, vec![i])),
        }
    }
    let runs = groups
        .into_iter()
        .map(|((day, destination), members)| async move {
            // One read of the candidate per group, not one per call.
            let candidate = svc.candidate(&day.candidate).await;
            let pace = Pace::new(
                candidate
                    .as_ref()
                    .ok()
                    .and_then(|c| c.destination(&destination))
                    .map_or(f64::INFINITY, |d| d.rate_limit),
            );
            let done: Vec<Outcome> = futures::stream::iter(members.iter().copied())
                .map(|i| deliver_one(svc, &candidate, messages[i], &pace, deadline))
                .buffered(svc.settings.destination_concurrency.max(1))
                .collect()
                .await;
            members.into_iter().zip(done).collect::<Vec<_>>()
        });
    let mut outcomes = vec![Outcome::Retry; messages.len()];
    for (i, outcome) in join_all(runs).await.into_iter().flatten() {
        outcomes[i] = outcome;
    }
    outcomes
}

/// Spaces sends toward one destination `1 / rate` seconds apart within a worker.
struct Pace {
    gap: Duration,
    next: Mutex<Option<tokio::time::Instant>>,
}

impl Pace {
    fn new(rate: f64) -> Self {
        let gap = if rate.is_finite() && rate > 0.0 {
            Duration::from_secs_f64(1.0 / rate)
        } else {
            Duration::ZERO
        };
        Self {
            gap,
            next: Mutex::new(None),
        }
    }

    /// The moment this send may start.
    fn slot(&self) -> tokio::time::Instant {
        let now = tokio::time::Instant::now();
        let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
        let slot = next.map_or(now, |n| n.max(now));
        *next = Some(slot + self.gap);
        slot
    }
}

async fn deliver_one(
    svc: &Services,
    candidate: &Result<Candidate, CandidateError>,
    msg: &SyncMessage,
    pace: &Pace,
    deadline: tokio::time::Instant,
) -> Outcome {
    let key = DeliveryKey {
        call: CallKey {
            day: DayKey {
                candidate: msg.candidate.clone(),
                date: msg.date,
            },
            call_id: msg.call_id.clone(),
        },
        destination: msg.destination.clone().unwrap_or_default(),
    };
    match try_deliver(svc, candidate, &key, msg, pace, deadline).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(delivery = %key, error = %e, "ledger unavailable; the message will be delivered again");
            Outcome::Retry
        }
    }
}

async fn try_deliver(
    svc: &Services,
    candidate: &Result<Candidate, CandidateError>,
    key: &DeliveryKey,
    msg: &SyncMessage,
    pace: &Pace,
    deadline: tokio::time::Instant,
) -> Result<Outcome, StoreError> {
    let Some(mut record) = svc.ledger.get_delivery(key).await? else {
        tracing::warn!(delivery = %key, "no such delivery in the ledger; message dropped");
        return Ok(Outcome::Skipped);
    };
    let now = svc.clock.now();
    if let (CallState::Unsynced, Some(at)) = (record.state, record.next_attempt_at)
        && at > now
    {
        // Early (a sweep and a delayed message crossed): hand it back for the rest of the
        // wait rather than drop it.
        let rest = Duration::try_from(at - now).unwrap_or_default();
        return Ok(
            match svc.queue.send_later(std::slice::from_ref(msg), rest).await {
                Ok(failed) if failed.is_empty() => Outcome::Skipped,
                _ => Outcome::Retry,
            },
        );
    }
    if !record.can_lease(now) {
        return Ok(Outcome::Skipped);
    }
    let candidate = match candidate {
        Ok(c) => c,
        Err(CandidateError::Store(e)) => {
            tracing::warn!(delivery = %key, error = %e, "config unavailable");
            return Ok(Outcome::Retry);
        }
        Err(e) => {
            let note = ErrorNote::new("candidate_unusable", e.to_string(), now);
            return lease_and_fail(svc, record, note).await;
        }
    };
    let Some(destination) = candidate.destination(&key.destination) else {
        let note = ErrorNote::new(
            "destination_removed",
            format!(
                "candidate {} no longer has a destination named {:?}: add it back, or leave this delivery as it is",
                candidate.slug, key.destination
            ),
            now,
        );
        return lease_and_fail(svc, record, note).await;
    };
    if destination.kind() != record.kind {
        let note = ErrorNote::new(
            "destination_changed",
            format!(
                "destination {:?} is a {} now, and this delivery was planned for a {}: POST /retry with the destination plans it again",
                key.destination,
                destination.kind(),
                record.kind
            ),
            now,
        );
        return lease_and_fail(svc, record, note).await;
    }
    let slot = pace.slot();
    if slot >= deadline {
        // Its turn would come after the batch's last start: the queue delivers it again.
        return Ok(Outcome::Retry);
    }

    let lease = format!("{:016x}", fastrand::u64(..));
    record.state = CallState::InProgress;
    record.lease_until = Some(now + svc.settings.lease);
    record.lease_id = Some(lease.clone());
    record.attempts += 1;
    record.updated_at = now;
    if !svc.ledger.replace_delivery(&mut record).await? {
        return Ok(Outcome::Skipped);
    }
    tokio::time::sleep_until(slot).await;
    send(svc, candidate, destination, record, msg, &lease).await
}

async fn send(
    svc: &Services,
    candidate: &Candidate,
    destination: &Configured,
    mut record: DeliveryRecord,
    msg: &SyncMessage,
    lease: &str,
) -> Result<Outcome, StoreError> {
    let ctx = DeliverContext {
        secrets: svc.secrets.as_ref(),
        egress: svc.connectors.egress,
        candidate: &candidate.slug,
    };
    let answer = destination.adapter.deliver(ctx, &record).await;
    let now = svc.clock.now();
    let note = |code: &str, message: String, status, answer| ErrorNote {
        status,
        answer,
        ..ErrorNote::new(code, message, now)
    };
    match answer {
        Ok(delivered) => {
            record.state = CallState::Finished;
            record.receipt = Some(Receipt::Http {
                status: delivered.status,
                at: now,
                attempts: record.attempts,
                idempotency_key: delivered.idempotency_key,
                fingerprint: delivered.fingerprint,
            });
            record.delivered_hash = record.payload_hash.clone();
            record.error = None;
            record.next_attempt_at = None;
            settle(svc, record, lease).await?;
            Ok(Outcome::Finished)
        }
        Err(DeliveryError::Retryable {
            message,
            status,
            answer,
        }) if record.attempts >= svc.settings.delivery_attempts => {
            let message = format!(
                "{message} — gave up after {} attempts: once the destination is back, POST /retry with this destination sends it again",
                record.attempts
            );
            record.state = CallState::AttemptedError;
            record.error = Some(note("destination_unavailable", message, status, answer));
            settle(svc, record, lease).await?;
            Ok(Outcome::Rejected)
        }
        Err(DeliveryError::Retryable {
            message,
            status,
            answer,
        }) => {
            let delay = backoff(&svc.settings, record.attempts);
            tracing::info!(
                delivery = %record.key,
                attempts = record.attempts,
                delay_s = delay.as_secs(),
                error = %message,
                "destination did not take the delivery; trying again later"
            );
            record.state = CallState::Unsynced;
            record.error = Some(note("destination_unavailable", message, status, answer));
            record.next_attempt_at = Some(now + delay);
            // A wait the queue can hold is handed to it; a longer one to the tick's sweep.
            let queued = delay <= MAX_QUEUE_DELAY;
            record.enqueued_at = queued.then_some(now);
            let key = record.key.clone();
            let Some(mut record) = settle(svc, record, lease).await? else {
                return Ok(Outcome::Skipped);
            };
            if queued {
                let sent = svc.queue.send_later(std::slice::from_ref(msg), delay).await;
                if !matches!(sent, Ok(ref failed) if failed.is_empty()) {
                    tracing::warn!(delivery = %key, "queue refused the delayed try; the sweep sends it");
                    record.enqueued_at = None;
                    let _ = svc.ledger.replace_delivery(&mut record).await?;
                }
            }
            Ok(Outcome::Skipped)
        }
        Err(DeliveryError::Rejected {
            message,
            status,
            answer,
        }) => {
            record.state = CallState::AttemptedError;
            record.error = Some(note("destination_rejected", message, status, answer));
            settle(svc, record, lease).await?;
            Ok(Outcome::Rejected)
        }
        Err(DeliveryError::Setup(message)) => {
            record.state = CallState::UnattemptedError;
            record.error = Some(note("destination_setup", message, None, None));
            settle(svc, record, lease).await?;
            Ok(Outcome::Failed)
        }
    }
}

/// The wait before try `attempts + 1`: `base · 2^(attempts-1)`, at most the maximum, then
/// a random share of it between half and all (so retries of one outage spread out).
pub fn backoff(settings: &crate::services::Settings, attempts: u32) -> Duration {
    let exp = attempts.saturating_sub(1).min(20);
    let full = settings
        .delivery_backoff
        .saturating_mul(1 << exp)
        .min(settings.delivery_backoff_max);
    full.mul_f64(0.5 + fastrand::f64() * 0.5)
}

/// Record why a delivery cannot be sent. One conditional write: nothing is sent, so
/// nothing needs holding first.
async fn lease_and_fail(
    svc: &Services,
    mut record: DeliveryRecord,
    note: ErrorNote,
) -> Result<Outcome, StoreError> {
    record.state = CallState::UnattemptedError;
    record.error = Some(note);
    record.lease_until = None;
    record.lease_id = None;
    record.updated_at = svc.clock.now();
    Ok(if svc.ledger.replace_delivery(&mut record).await? {
        Outcome::Failed
    } else {
        Outcome::Skipped
    })
}

/// Write the outcome of a leased delivery. `None` when someone else wrote in between
/// (only a sweep that found the lease expired can have).
async fn settle(
    svc: &Services,
    mut record: DeliveryRecord,
    lease: &str,
) -> Result<Option<DeliveryRecord>, StoreError> {
    record.lease_until = None;
    record.lease_id = None;
    record.updated_at = svc.clock.now();
    if svc.ledger.replace_delivery(&mut record).await? {
        return Ok(Some(record));
    }
    tracing::error!(
        delivery = %record.key,
        lease,
        state = %record.state,
        "the ledger changed while this worker held the delivery; its outcome was not recorded"
    );
    Ok(None)
}

/// Whether a delivery needs a message now: new or released and never handed to the
/// queue, handed long ago without finishing, or held by a worker whose lease ran out.
pub fn due(record: &DeliveryRecord, now: Timestamp, requeue_stale_after: Duration) -> bool {
    match record.state {
        CallState::Unsynced => {
            // A message handed to the queue with a delay is expected when the delay ends;
            // only long after that is it taken for lost.
            let expected = match (record.enqueued_at, record.next_attempt_at) {
                (Some(sent), Some(next)) => Some(sent.max(next)),
                (sent, _) => sent,
            };
            record.next_attempt_at.is_none_or(|t| t <= now)
                && expected.is_none_or(|at| at + requeue_stale_after <= now)
        }
        CallState::InProgress => record.lease_until.is_none_or(|t| t <= now),
        _ => false,
    }
}

/// Count `records` by state.
pub fn tally(records: &[DeliveryRecord]) -> BTreeMap<CallState, u64> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.state).or_insert(0) += 1;
    }
    counts
}
