//! `sync-call`'s one deliver loop, for every kind of destination, VAN's included: lease a
//! delivery, send it through its kind's adapter ([`crate::destinations::Destination`]),
//! settle it (receipt or error), or release it; each message's [`Outcome`].
//!
//! VAN's messages and every other destination's arrive on their own queues, so no partner
//! holds back VAN. Within a batch each destination runs on its own (its own pace and
//! concurrency). A send once started is never cut off, so the batch ends when its slowest
//! started send has; but once a destination leaves a send unanswered (a timeout, no
//! connection), its group starts no more: the rest of its messages go back to the queue
//! for later, so a stalled partner costs a batch one timeout, not one per message.
//! After a failure that may pass, a kind's [`Retry`] rule decides: VAN's delivery is
//! released for the queue's next delivery (its client already retried); any other's is
//! released with `next_attempt_at` set by jittered exponential back-off and handed back to
//! the queue with a delay (SQS `DelaySeconds`, at most 15 minutes); longer waits are left
//! to the tick's sweep. No worker sleeps through a back-off.
//!
//! A send is never cut off once started; the one window for a second delivery is a worker
//! dying between the destination's 2xx and the ledger write (the receipt), and the
//! idempotency key each request carries lets the receiver recognise that repeat.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use futures::future::join_all;
use serde::Serialize;

use crate::destinations::{
    Compiled, Configured, DeliverContext, DeliveryError, Retry, VAN as VAN_KIND,
};
use crate::governor::{Admission, Governor, Rate, Turn};
use crate::ledger::{
    CallKey, CallRecord, CallState, DayKey, DeliveryKey, DeliveryRecord, ErrorNote, Tracked, VAN,
};
use crate::metrics::{self, Metric};
use crate::ports::{DayStore, Ledger, MAX_QUEUE_DELAY, StoreError, SyncMessage};
use crate::services::{CandidateError, Services};
use crate::van::{MeterError, RequestMeter};

const VAN_CODES: crate::destinations::Codes = VAN_KIND.codes;

/// What became of one message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Posted and recorded.
    Finished,
    /// VAN refused it; recorded as `attempted_error`.
    Rejected,
    /// No request could be built; recorded as `unattempted_error`.
    Failed,
    /// Nothing to do: already done, not VAN-bound, or another worker holds it.
    Skipped,
    /// Not done, for a reason that may pass: the message should be delivered again.
    Retry,
}

/// `work` for one message, whose panic (a defect, never a plan) ends that message alone:
/// it is handed back to the queue (`Retry`, and the dead-letter queue after the receive
/// limit) while the rest of the batch goes on.
pub(crate) async fn isolated(msg: &SyncMessage, work: impl Future<Output = Outcome>) -> Outcome {
    use futures::FutureExt;
    match std::panic::AssertUnwindSafe(work).catch_unwind().await {
        Ok(outcome) => outcome,
        Err(_) => {
            tracing::error!(
                candidate = %msg.candidate,
                date = %msg.date,
                call = %msg.call_id,
                destination = msg.destination.as_deref().unwrap_or("van"),
                "delivering this message failed unexpectedly; it is handed back to the queue"
            );
            Outcome::Retry
        }
    }
}

/// Deliver one batch of messages: VAN's and every other destination's, through one loop.
/// Messages are grouped by candidate-day and destination; each group runs at its own pace
/// and concurrency (`van_concurrency` for VAN, `destination_concurrency` for any other),
/// and no group waits for another: VAN's groups run one after another (one key, its
/// metrics per day) while every other destination's run beside them. Returns each
/// message's outcome, in order.
pub async fn deliver_batch(svc: &Services, messages: &[SyncMessage]) -> Vec<Outcome> {
    // No send starts after this point of the batch: with the clients' request timeouts and
    // retry deadlines it keeps a batch inside the function's timeout. A message not started
    // is left for the queue to deliver again.
    let deadline = tokio::time::Instant::now() + svc.settings.post_deadline;
    // (candidate-day, destination: none for VAN) → the messages' indices.
    type Groups = Vec<((DayKey, Option<String>), Vec<usize>)>;
    let mut groups: Groups = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let group = (
            DayKey {
                candidate: m.candidate.clone(),
                date: m.date,
            },
            m.destination.clone(),
        );
        match groups.iter_mut().find(|(g, _)| *g == group) {
            Some((_, members)) => members.push(i),
            None => groups.push((group, vec![i])),
        }
    }
    let (van, others): (Vec<_>, Vec<_>) = groups.into_iter().partition(|((_, d), _)| d.is_none());
    let van = async {
        let mut done = Vec::new();
        for ((day, _), members) in van {
            done.extend(run_group(svc, messages, day, None, members, deadline).await);
        }
        done
    };
    let others = join_all(others.into_iter().map(|((day, destination), members)| {
        run_group(svc, messages, day, destination, members, deadline)
    }));
    let (van, others) = futures::join!(van, others);
    let mut outcomes = vec![Outcome::Retry; messages.len()];
    for (i, outcome) in van.into_iter().chain(others.into_iter().flatten()) {
        outcomes[i] = outcome;
    }
    outcomes
}

/// What the sends of one group share.
struct Group<'a> {
    svc: &'a Services,
    candidate: &'a Result<Compiled, CandidateError>,
    /// The destination's share of its key's rate limit; none for a destination without one.
    governor: Option<Arc<Governor>>,
    /// Counts the requests that cost money (VAN's) on the day's counter.
    meter: Arc<DayMeter>,
    deadline: tokio::time::Instant,
    /// Milliseconds each send took, for the metrics.
    latencies: Mutex<Vec<f64>>,
    /// Set when a send of this group got no answer (it timed out or found no one): the
    /// group starts no more sends in this batch, and hands the rest of its messages back.
    unanswered: AtomicBool,
    /// For a kind that takes deliveries together: where the group's sends gather.
    batch: Option<Batch>,
}

/// The leased deliveries of one group, gathered for a kind that takes them together
/// ([`crate::destinations::Metadata::batches`]). Every member either hands its delivery
/// in ([`Batch::submit`]) or leaves without one ([`Batch::leave`]: skipped, failed,
/// handed back); when the last has, the batch goes out in one call and each member gets
/// its own answer.
struct Batch {
    state: tokio::sync::Mutex<BatchState>,
}

type Answer = Result<crate::ledger::Receipt, DeliveryError>;

struct BatchState {
    /// Members that have handed in or left.
    done: Vec<bool>,
    waiting: Vec<(DeliveryRecord, tokio::sync::oneshot::Sender<Answer>)>,
}

impl Batch {
    fn new(members: usize) -> Self {
        Self {
            state: tokio::sync::Mutex::new(BatchState {
                done: vec![false; members],
                waiting: Vec::new(),
            }),
        }
    }

    /// Hand in member `i`'s delivery and wait for the batch's answer to it.
    async fn submit(
        &self,
        i: usize,
        ctx: DeliverContext<'_>,
        destination: &Configured,
        parcel: DeliveryRecord,
    ) -> Answer {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let ready = {
            let mut state = self.state.lock().await;
            state.waiting.push((parcel, tx));
            Self::mark(&mut state, i)
        };
        if let Some(ready) = ready {
            Self::send(ctx, destination, ready).await;
        }
        rx.await.unwrap_or_else(|_| {
            Err(DeliveryError::Retryable {
                message: "the batch this delivery was in failed before it was answered".into(),
                status: None,
                answer: None,
            })
        })
    }

    /// Member `i` is done without handing anything in (if it had not handed in already).
    async fn leave(&self, g: &Group<'_>, i: usize) {
        let ready = {
            let mut state = self.state.lock().await;
            Self::mark(&mut state, i)
        };
        let Some(ready) = ready else { return };
        let Ok(candidate) = g.candidate else { return };
        let Some(destination) = ready
            .first()
            .and_then(|(d, _)| candidate.destination(&d.key.destination))
        else {
            return;
        };
        Self::send(g.svc.destination_context(candidate), destination, ready).await;
    }

    /// Mark member `i` done; when it was the last, what is waiting, to be sent.
    fn mark(
        state: &mut BatchState,
        i: usize,
    ) -> Option<Vec<(DeliveryRecord, tokio::sync::oneshot::Sender<Answer>)>> {
        match state.done.get_mut(i) {
            Some(done) if !*done => *done = true,
            _ => return None,
        }
        (state.done.iter().all(|d| *d) && !state.waiting.is_empty())
            .then(|| std::mem::take(&mut state.waiting))
    }

    /// Send the gathered deliveries in one call and answer each member. A panic in the
    /// adapter answers none: each member's delivery is then handed back as retryable.
    async fn send(
        ctx: DeliverContext<'_>,
        destination: &Configured,
        ready: Vec<(DeliveryRecord, tokio::sync::oneshot::Sender<Answer>)>,
    ) {
        use futures::FutureExt;
        let (parcels, senders): (Vec<DeliveryRecord>, Vec<_>) = ready.into_iter().unzip();
        let answers = std::panic::AssertUnwindSafe(destination.adapter.deliver_many(ctx, &parcels))
            .catch_unwind()
            .await
            .unwrap_or_default();
        for (tx, answer) in senders.into_iter().zip(answers) {
            let _ = tx.send(answer);
        }
    }
}

async fn run_group(
    svc: &Services,
    messages: &[SyncMessage],
    day: DayKey,
    destination: Option<String>,
    members: Vec<usize>,
    deadline: tokio::time::Instant,
) -> Vec<(usize, Outcome)> {
    // One read of the candidate per group, not one per call.
    let candidate = svc.candidate(&day.candidate).await;
    let meter = Arc::new(DayMeter {
        days: Arc::clone(&svc.days),
        day: day.clone(),
        cap: candidate
            .as_ref()
            .ok()
            .and_then(Compiled::daily_request_cap),
        block: members.len().max(1) as u64,
        held: tokio::sync::Mutex::new(0),
        requests: AtomicU64::new(0),
        rate_limited: AtomicU64::new(0),
    });
    let governor = match &candidate {
        Ok(c) => governor(svc, c, destination.as_deref(), members.len()).await,
        Err(_) => None,
    };
    let batches = candidate
        .as_ref()
        .ok()
        .and_then(|c| c.target(destination.as_deref()))
        .is_some_and(|t| t.adapter.metadata().batches);
    let group = Group {
        svc,
        candidate: &candidate,
        governor: governor.clone(),
        meter: Arc::clone(&meter),
        deadline,
        latencies: Mutex::new(Vec::new()),
        unanswered: AtomicBool::new(false),
        batch: batches.then(|| Batch::new(members.len())),
    };
    let concurrency = match destination {
        // Every member of a batch runs at once: the batch goes out when the last hands in.
        Some(_) if batches => members.len(),
        // A fast key keeps more of the batch waiting for its slots at once: at 200/s four
        // at a time left the worker's slots unused (61 % of the limit with 8 workers, 93 %
        // with the whole batch; `make bench`), while at VAN's 15/s more only crowds the
        // schedule's horizon and hands messages back.
        None => svc
            .settings
            .van_concurrency
            .max(governor.as_ref().map_or(0, |g| g.in_flight())),
        Some(_) => svc.settings.destination_concurrency,
    };
    let group = &group;
    let done: Vec<Outcome> = futures::stream::iter(members.iter().copied().enumerate())
        .map(|(j, i)| async move {
            let outcome = isolated(&messages[i], deliver_one(group, &messages[i], j)).await;
            if let Some(batch) = &group.batch {
                batch.leave(group, j).await;
            }
            outcome
        })
        .buffered(concurrency.max(1))
        .collect()
        .await;
    meter.give_back().await;
    if let Some(governor) = &governor {
        governor.give_back().await;
    }
    if destination.is_none() {
        let n = |o: Outcome| done.iter().filter(|d| **d == o).count() as u64;
        let latencies =
            std::mem::take(&mut *group.latencies.lock().unwrap_or_else(|p| p.into_inner()));
        metrics::emit(
            &day.candidate,
            svc.clock.now(),
            &[
                (Metric::CallsFinished, metrics::count(n(Outcome::Finished))),
                (
                    Metric::CallsAttemptedError,
                    metrics::count(n(Outcome::Rejected)),
                ),
                (
                    Metric::CallsUnattemptedError,
                    metrics::count(n(Outcome::Failed)),
                ),
                (
                    Metric::VanRequests,
                    metrics::count(meter.requests.load(Ordering::Relaxed)),
                ),
                (
                    Metric::VanRateLimited,
                    metrics::count(meter.rate_limited.load(Ordering::Relaxed)),
                ),
                (Metric::VanLatency, latencies),
            ],
        );
    }
    members.into_iter().zip(done).collect()
}

/// The governor of `destination`'s rate limit (VAN's, when `None`), if it has one.
async fn governor(
    svc: &Services,
    candidate: &Compiled,
    destination: Option<&str>,
    members: usize,
) -> Option<Arc<Governor>> {
    let target = candidate.target(destination)?;
    let rate = Rate::per_second(target.rate_limit)?;
    let key = target
        .adapter
        .rate_key(svc.destination_context(candidate), &target.name)
        .await;
    Some(Arc::new(Governor::new(
        Arc::clone(&svc.rates),
        key,
        rate,
        members,
    )))
}

/// What one delivery's requests pass before they are sent (VAN's client asks before
/// each): a slot from the key's governor — the delivery's first taken before its lease —
/// and the day's count, the wait for the slot last, so that each request leaves at its
/// slot whatever the count's store took.
struct Admitted {
    day: Arc<DayMeter>,
    governor: Option<Arc<Governor>>,
    /// The first request's slot, taken before the lease.
    prepaid: Mutex<Option<tokio::time::Instant>>,
    /// Set when the governor had no slot left in this batch for a request: when to ask
    /// again. The delivery is handed back, not failed: the destination said nothing.
    no_slot: Mutex<Option<Duration>>,
}

impl Admitted {
    fn no_slot(&self) -> Option<Duration> {
        *self.no_slot.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The moment the next request may leave.
    async fn slot(&self) -> Result<tokio::time::Instant, MeterError> {
        let prepaid = self
            .prepaid
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let Some(governor) = &self.governor else {
            return Ok(tokio::time::Instant::now());
        };
        // A slot missed (the request waited on a connection, a lookup) is not used late.
        match governor.keep(prepaid).await {
            Ok(Turn::At(slot)) => Ok(slot),
            Ok(Turn::Busy(next)) => {
                *self.no_slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(next);
                Err(MeterError::NoSlot(format!(
                    "the rate limit of {} has no slot left for this batch; the message is delivered again (a slot in about {} s)",
                    governor.key(),
                    next.as_secs()
                )))
            }
            Err(e) => Err(MeterError::Unavailable(e.to_string())),
        }
    }
}

#[async_trait]
impl RequestMeter for Admitted {
    async fn count(&self) -> Result<(), MeterError> {
        let slot = self.slot().await?;
        self.day.count().await?;
        tokio::time::sleep_until(slot).await;
        Ok(())
    }

    async fn pace(&self) -> Result<(), MeterError> {
        tokio::time::sleep_until(self.slot().await?).await;
        Ok(())
    }

    async fn rate_limited(&self, hint: Option<Duration>) {
        self.day.rate_limited(hint).await;
        if let Some(governor) = &self.governor {
            governor.rate_limited(hint).await;
        }
    }
}

/// Counts each request to a destination that charges for them (VAN) on the day's counter
/// before it is sent: the budget strategy reads that count, and a worker killed mid-batch
/// must not leave it lower than what the destination received. It counts ahead, a block at
/// a time (the group's size: one atomic add per batch instead of one per request, 429s
/// included), hands the block out request by request, and takes back what the group did
/// not use ([`DayMeter::give_back`]). A worker that dies holding a block leaves the count
/// higher than what was sent, by at most the block — never lower. Keeps the group's own
/// counts for its metrics.
struct DayMeter {
    days: Arc<dyn DayStore>,
    day: DayKey,
    /// The day's cap an extension puts on these requests (`cost_guard`): a request past it
    /// is not counted, so not sent.
    cap: Option<u64>,
    /// How many to count ahead at once.
    block: u64,
    /// Counted and not yet sent.
    held: tokio::sync::Mutex<u64>,
    requests: AtomicU64,
    rate_limited: AtomicU64,
}

impl DayMeter {
    /// Count `block` ahead — or, near a cap, one — and say how many were counted.
    async fn reserve(&self) -> Result<u64, MeterError> {
        let unavailable = |e: StoreError| MeterError::Unavailable(e.to_string());
        let Some(cap) = self.cap else {
            self.days
                .add_van_requests(&self.day, self.block)
                .await
                .map_err(unavailable)?;
            return Ok(self.block);
        };
        for n in [self.block, 1] {
            if self
                .days
                .add_van_requests_within(&self.day, n, cap)
                .await
                .map_err(unavailable)?
            {
                return Ok(n);
            }
        }
        Err(MeterError::OverCap(format!(
            "the day's cap of {cap} VAN requests (extension cost_guard) is reached"
        )))
    }

    /// Take back what was counted ahead and not sent.
    async fn give_back(&self) {
        let mut held = self.held.lock().await;
        if *held == 0 {
            return;
        }
        match self.days.return_van_requests(&self.day, *held).await {
            Ok(()) => *held = 0,
            // Counted and never sent: the count stays that much higher, never lower.
            Err(e) => {
                tracing::warn!(day = %self.day, unsent = *held, error = %e, "requests counted ahead could not be taken back")
            }
        }
    }
}

#[async_trait]
impl RequestMeter for DayMeter {
    async fn count(&self) -> Result<(), MeterError> {
        let mut held = self.held.lock().await;
        if *held == 0 {
            *held = self.reserve().await?;
        }
        *held -= 1;
        self.requests.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn rate_limited(&self, _hint: Option<Duration>) {
        self.rate_limited.fetch_add(1, Ordering::Relaxed);
    }
}

async fn deliver_one(g: &Group<'_>, msg: &SyncMessage, member: usize) -> Outcome {
    let key = DeliveryKey {
        call: CallKey {
            day: DayKey {
                candidate: msg.candidate.clone(),
                date: msg.date,
            },
            call_id: msg.call_id.clone(),
        },
        destination: msg.destination.clone().unwrap_or_else(|| VAN.to_owned()),
    };
    // VAN's delivery is kept on the call's own record; every other in its own.
    let delivered = match msg.destination {
        None => try_deliver::<CallRecord>(g, &key, msg, member).await,
        Some(_) => try_deliver::<DeliveryRecord>(g, &key, msg, member).await,
    };
    match delivered {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(delivery = %key, error = %e, "ledger unavailable; the message will be delivered again");
            Outcome::Retry
        }
    }
}

async fn try_deliver<R: Stored>(
    g: &Group<'_>,
    key: &DeliveryKey,
    msg: &SyncMessage,
    member: usize,
) -> Result<Outcome, StoreError> {
    let svc = g.svc;
    let Some(mut record) = R::fetch(svc.ledger.as_ref(), key).await? else {
        tracing::warn!(delivery = %key, "no such delivery in the ledger; message dropped");
        return Ok(Outcome::Skipped);
    };
    let now = svc.clock.now();
    if let (CallState::Unsynced, Some(at)) =
        (record.delivery().state, record.delivery().next_attempt_at)
        && at > now
    {
        // Early (a sweep and a delayed message crossed): hand it back for the rest of the
        // wait rather than drop it.
        let rest = Duration::try_from(at - now).unwrap_or_default();
        return Ok(hand_back(svc, msg, rest).await);
    }
    if !record.delivery().can_lease(now) {
        return Ok(Outcome::Skipped);
    }
    if !record.sendable() {
        tracing::warn!(delivery = %key, state = %record.delivery().state, "the record holds nothing for this destination; message dropped");
        return Ok(Outcome::Skipped);
    }
    let candidate = match g.candidate {
        Ok(c) => c,
        Err(CandidateError::Store(e)) => {
            tracing::warn!(delivery = %key, error = %e, "config unavailable");
            return Ok(Outcome::Retry);
        }
        Err(e) => {
            let note = ErrorNote::new("candidate_unusable", e.to_string(), now);
            return refuse(svc, record, note).await;
        }
    };
    let Some(destination) = candidate.target(msg.destination.as_deref()) else {
        let note = match &msg.destination {
            None => ErrorNote::new(
                VAN_CODES.setup,
                format!(
                    "candidate {} has no VAN settings: add `van` to its document",
                    candidate.slug
                ),
                now,
            ),
            Some(name) => ErrorNote::new(
                "destination_removed",
                format!(
                    "candidate {} no longer has a destination named {name:?}: add it back, or leave this delivery as it is",
                    candidate.slug
                ),
                now,
            ),
        };
        return refuse(svc, record, note).await;
    };
    if destination.kind() != record.planned_kind() {
        let note = ErrorNote::new(
            "destination_changed",
            format!(
                "destination {:?} is a {} now, and this delivery was planned for a {}: POST /retry with the destination plans it again",
                key.destination,
                destination.kind(),
                record.planned_kind()
            ),
            now,
        );
        return refuse(svc, record, note).await;
    }
    if g.unanswered.load(Ordering::Relaxed) {
        // The destination did not answer a send of this batch: the batch does not wait
        // through more of its timeouts (nor hold the other destinations' next batch). The
        // message comes back after the first back-off, its attempts untouched.
        return Ok(hand_back(svc, msg, backoff(&svc.settings, 1)).await);
    }
    // Its first request's slot, before the lease: a key with no slot in reach costs no
    // ledger write, only the message's return to the queue.
    let wait = match &g.governor {
        None => Duration::ZERO,
        Some(governor) => match governor.admit().await {
            Ok(Admission::At { wait, .. }) => wait,
            Ok(Admission::Busy(next)) => return Ok(hand_back(svc, msg, next).await),
            Err(e) => {
                tracing::warn!(delivery = %key, error = %e, "the rate governor is unavailable; the message will be delivered again");
                return Ok(Outcome::Retry);
            }
        },
    };
    let slot = tokio::time::Instant::now() + wait;
    if slot >= g.deadline {
        // Its turn would come after the batch's last start: the queue delivers it again.
        return Ok(Outcome::Retry);
    }

    let Some(lease) = lease(svc, &mut record).await? else {
        // Another worker took it between our read and write.
        return Ok(Outcome::Skipped);
    };
    // VAN's client asks the delivery's meter before each request, and waits there for this
    // slot (after counting it on the day); any other kind sends once, at its slot.
    let prepaid = match msg.destination {
        None => Some(slot),
        Some(_) => {
            // A slot the lease's write outlasted is not used late: sent late, it would
            // bunch with the next worker's, and the destination counts arrivals.
            let slot = match g.governor.as_deref().map(|gov| gov.keep(Some(slot))) {
                None => slot,
                Some(turn) => match turn.await {
                    Ok(Turn::At(slot)) => slot,
                    Ok(Turn::Busy(next)) => {
                        return unsent(svc, record, msg, &lease, Some(next)).await;
                    }
                    Err(e) => {
                        tracing::warn!(delivery = %key, error = %e, "the rate governor is unavailable; the message will be delivered again");
                        return unsent(svc, record, msg, &lease, None).await;
                    }
                },
            };
            tokio::time::sleep_until(slot).await;
            None
        }
    };
    let held = Held {
        lease: &lease,
        prepaid,
        member,
    };
    send(g, candidate, destination, record, msg, held).await
}

/// Give back a leased delivery nothing was sent for (its attempt not counted): handed
/// back to the queue after `back`, or, with no time to give, left for the queue's own
/// redelivery.
async fn unsent<R: Stored>(
    svc: &Services,
    mut record: R,
    msg: &SyncMessage,
    lease: &str,
    back: Option<Duration>,
) -> Result<Outcome, StoreError> {
    let d = record.delivery_mut();
    d.state = CallState::Unsynced;
    d.attempts = d.attempts.saturating_sub(1);
    if settle(svc, record, lease).await?.is_none() {
        return Ok(Outcome::Skipped);
    }
    Ok(match back {
        Some(after) => hand_back(svc, msg, after).await,
        None => Outcome::Retry,
    })
}

/// What a worker holds of a leased delivery: the lease's id, the first request's slot
/// (VAN's), and the message's place in its group (for a kind that takes a batch).
struct Held<'a> {
    lease: &'a str,
    prepaid: Option<tokio::time::Instant>,
    member: usize,
}

async fn send<R: Stored>(
    g: &Group<'_>,
    candidate: &Compiled,
    destination: &Configured,
    mut record: R,
    msg: &SyncMessage,
    held: Held<'_>,
) -> Result<Outcome, StoreError> {
    let Held {
        lease,
        prepaid,
        member,
    } = held;
    let svc = g.svc;
    let admitted = Arc::new(Admitted {
        day: Arc::clone(&g.meter),
        governor: g.governor.clone(),
        prepaid: Mutex::new(prepaid),
        no_slot: Mutex::new(None),
    });
    let meter: Arc<dyn RequestMeter> = admitted.clone();
    let ctx = DeliverContext {
        meter: Some(&meter),
        ..svc.destination_context(candidate)
    };
    let started = std::time::Instant::now();
    let mut parcel = record.as_delivery();
    let mut hooked = before_send(ctx, candidate, destination, record.call(), &mut parcel).await;
    if hooked.is_ok() && destination.adapter.metadata().waits_for_call {
        hooked = with_the_calls_deliveries(svc, candidate, &record, &mut parcel).await;
    }
    let answer = match (hooked, &g.batch) {
        (Ok(()), Some(batch)) => {
            batch
                .submit(member, ctx, destination, parcel.clone().into_owned())
                .await
        }
        (Ok(()), None) => destination.adapter.deliver(ctx, &parcel).await,
        (Err(e), _) => Err(e),
    };
    let amended = match parcel {
        Cow::Owned(p) => p.payload,
        Cow::Borrowed(_) => None,
    };
    if let Some(payload) = amended {
        // What the hooks found that later tries need (a matched VAN id) stays on the record.
        record.keep_found(&payload);
    }
    if let Ok(mut l) = g.latencies.lock() {
        l.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    if let (Err(_), Some(wait)) = (&answer, admitted.no_slot()) {
        // A further request (a retry after a 429, an extension's lookup) found no slot left
        // in this batch: the delivery goes back to the queue as it was, for a later batch.
        record.delivery_mut().state = CallState::Unsynced;
        if settle(svc, record, lease).await?.is_none() {
            return Ok(Outcome::Skipped);
        }
        return Ok(hand_back(svc, msg, wait).await);
    }
    match &answer {
        Err(DeliveryError::Retryable { status: None, .. }) => {
            g.unanswered.store(true, Ordering::Relaxed);
        }
        // VAN's 429s reach the governor through its client (with VAN's hint); another
        // kind's through its answer.
        Err(DeliveryError::Retryable {
            status: Some(429), ..
        }) if msg.destination.is_some() => {
            if let Some(governor) = &g.governor {
                governor.rate_limited(None).await;
            }
        }
        _ => {}
    }
    let metadata = destination.adapter.metadata();
    let codes = metadata.codes;
    let now = svc.clock.now();
    let note = |code: &str, message: String, status, answer| ErrorNote {
        status,
        answer,
        ..ErrorNote::new(code, message, now)
    };
    match answer {
        Ok(receipt) => {
            let d = record.delivery_mut();
            d.state = CallState::Finished;
            d.receipt = Some(receipt);
            d.error = None;
            d.next_attempt_at = None;
            record.delivered();
            settle(svc, record, lease).await?;
            Ok(Outcome::Finished)
        }
        Err(DeliveryError::Retryable { message, .. }) if metadata.retry == Retry::Redeliver => {
            tracing::warn!(delivery = %record.delivery_key(), error = %message, "the destination did not take it in time; released");
            release(svc, record, lease).await
        }
        Err(DeliveryError::Retryable {
            message,
            status,
            answer,
        }) if record.delivery().attempts >= svc.settings.delivery_attempts => {
            let message = format!(
                "{message} — gave up after {} attempts: once the destination is back, POST /retry with this destination sends it again",
                record.delivery().attempts
            );
            let note = note(codes.unavailable, message, status, answer);
            fail(svc, record, CallState::AttemptedError, note, lease).await
        }
        Err(DeliveryError::Retryable {
            message,
            status,
            answer,
        }) => {
            let delay = backoff(&svc.settings, record.delivery().attempts);
            let key = record.delivery_key();
            tracing::info!(
                delivery = %key,
                attempts = record.delivery().attempts,
                delay_s = delay.as_secs(),
                error = %message,
                "destination did not take the delivery; trying again later"
            );
            // A wait the queue can hold is handed to it; a longer one to the tick's sweep.
            let queued = delay <= MAX_QUEUE_DELAY;
            let d = record.delivery_mut();
            d.state = CallState::Unsynced;
            d.error = Some(note(codes.unavailable, message, status, answer));
            d.next_attempt_at = Some(now + delay);
            d.enqueued_at = queued.then_some(now);
            let Some(mut record) = settle(svc, record, lease).await? else {
                return Ok(Outcome::Skipped);
            };
            if queued {
                let sent = svc.queue.send_later(std::slice::from_ref(msg), delay).await;
                if !matches!(sent, Ok(ref failed) if failed.is_empty()) {
                    tracing::warn!(delivery = %key, "queue refused the delayed try; the sweep sends it");
                    record.delivery_mut().enqueued_at = None;
                    let _ = record.write(svc.ledger.as_ref()).await?;
                }
            }
            Ok(Outcome::Skipped)
        }
        Err(DeliveryError::Rejected {
            message,
            status,
            answer,
            envelope,
        }) => {
            let note = ErrorNote {
                van: envelope,
                ..note(codes.rejected, message, status, answer)
            };
            fail(svc, record, CallState::AttemptedError, note, lease).await
        }
        Err(DeliveryError::Setup(message)) => {
            let note = note(codes.setup, message, None, None);
            fail(svc, record, CallState::UnattemptedError, note, lease).await
        }
        Err(DeliveryError::OverCap(message)) => {
            tracing::info!(delivery = %record.delivery_key(), reason = %message, "over the day's cap; the call goes to the CSV");
            record.divert();
            settle(svc, record, lease).await?;
            Ok(Outcome::Skipped)
        }
        Err(e @ DeliveryError::Extension { .. }) => {
            let note = note("extension_failed", e.to_string(), None, None);
            fail(svc, record, CallState::UnattemptedError, note, lease).await
        }
    }
}

/// Run the candidate's `before_send` hooks on the delivery's payload, in order, each seeing
/// what the earlier ones did. The amended payload is what is sent (the ledger keeps the
/// planned one).
async fn before_send(
    ctx: DeliverContext<'_>,
    candidate: &Compiled,
    destination: &Configured,
    call: Option<&crate::call::Call>,
    parcel: &mut Cow<'_, DeliveryRecord>,
) -> Result<(), DeliveryError> {
    use crate::extensions::{Hook, HookError, SendContext};
    for enabled in candidate.extensions_with(Hook::BeforeSend) {
        let Some(payload) = parcel.to_mut().payload.as_mut() else {
            return Ok(());
        };
        let hook = SendContext {
            secrets: ctx.secrets,
            connectors: ctx.connectors,
            candidate: ctx.candidate,
            clock: ctx.clock,
            meter: ctx.meter,
            call,
            destination: &destination.name,
            kind: destination.kind(),
            settings: &enabled.settings,
        };
        let name = enabled.name();
        enabled
            .extension
            .before_send(hook, payload)
            .await
            .map_err(|e| match e {
                HookError::Retryable(message) => DeliveryError::Retryable {
                    message: format!("extension {name}: {message}"),
                    status: None,
                    answer: None,
                },
                HookError::Failed(message) => DeliveryError::Extension {
                    extension: name,
                    message,
                },
                HookError::OverCap(message) => DeliveryError::OverCap(message),
            })?;
    }
    Ok(())
}

/// For a kind that mirrors the call's whole story: the call's own delivery (VAN's or the
/// CSV's) and every other destination's as the ledger holds them now, as `deliveries` in
/// the payload it is handed (the ledger keeps the planned one).
async fn with_the_calls_deliveries<R: Stored>(
    svc: &Services,
    candidate: &Compiled,
    record: &R,
    parcel: &mut Cow<'_, DeliveryRecord>,
) -> Result<(), DeliveryError> {
    use crate::destinations::sql::delivery_row;
    let unavailable = |e: StoreError| DeliveryError::Retryable {
        message: format!("the ledger is unavailable: {e}"),
        status: None,
        answer: None,
    };
    let key = record.call_key();
    let mut rows = Vec::new();
    if let Some(call) = svc.ledger.get(key).await.map_err(unavailable)? {
        rows.push(delivery_row(&call, call.updated_at));
    }
    for d in &candidate.destinations {
        if d.adapter.metadata().waits_for_call {
            continue;
        }
        let other = DeliveryKey {
            call: key.clone(),
            destination: d.name.clone(),
        };
        if let Some(r) = svc.ledger.get_delivery(&other).await.map_err(unavailable)? {
            rows.push(delivery_row(&r, r.updated_at));
        }
    }
    if let Some(serde_json::Value::Object(map)) = parcel.to_mut().payload.as_mut() {
        map.insert(
            "deliveries".into(),
            serde_json::to_value(rows).unwrap_or_default(),
        );
    }
    Ok(())
}

/// Put `msg` back on its queue to be delivered after `delay` (and this receipt of it done),
/// or, if the queue refuses, leave it for the queue's own redelivery.
async fn hand_back(svc: &Services, msg: &SyncMessage, delay: Duration) -> Outcome {
    match svc.queue.send_later(std::slice::from_ref(msg), delay).await {
        Ok(failed) if failed.is_empty() => Outcome::Skipped,
        _ => Outcome::Retry,
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

/// A ledger record a queue message stands for (a call record: its VAN delivery; or one
/// [`DeliveryRecord`]), with its versioned write. Leasing, sending, settling, failing,
/// releasing and the sweep's rule are written once, over this, for every destination.
#[async_trait]
pub(crate) trait Stored: Tracked {
    /// The record that holds delivery `key`.
    async fn fetch(ledger: &dyn Ledger, key: &DeliveryKey) -> Result<Option<Self>, StoreError>;
    fn message(&self) -> SyncMessage;
    /// The versioned replace of this kind of record.
    async fn write(&mut self, ledger: &dyn Ledger) -> Result<bool, StoreError>;
    /// The delivery as its destination's adapter takes it.
    fn as_delivery(&self) -> Cow<'_, DeliveryRecord>;
    /// The kind of destination it was planned for.
    fn planned_kind(&self) -> &str;
    /// Whether it holds something to send (a call re-planned for the CSV holds no post).
    fn sendable(&self) -> bool;
    /// Note that what it holds was delivered.
    fn delivered(&mut self);
    /// The call, when this record holds it.
    fn call(&self) -> Option<&crate::call::Call>;
    /// Keep what the hooks found that later tries need (`payload` as they amended it).
    fn keep_found(&mut self, payload: &serde_json::Value);
    /// Send it elsewhere: the day's cap on requests that cost money is reached
    /// (`cost_guard`). A call's VAN delivery goes to the day's CSV; any other is skipped.
    fn divert(&mut self);
    fn delivery_key(&self) -> DeliveryKey {
        DeliveryKey {
            call: self.call_key().clone(),
            destination: self.destination_name().unwrap_or(VAN).to_owned(),
        }
    }
}

#[async_trait]
impl Stored for CallRecord {
    async fn fetch(ledger: &dyn Ledger, key: &DeliveryKey) -> Result<Option<Self>, StoreError> {
        ledger.get(&key.call).await
    }
    fn message(&self) -> SyncMessage {
        SyncMessage {
            candidate: self.key.day.candidate.clone(),
            date: self.key.day.date,
            call_id: self.key.call_id.clone(),
            destination: None,
        }
    }
    async fn write(&mut self, ledger: &dyn Ledger) -> Result<bool, StoreError> {
        ledger.replace(self).await
    }
    fn as_delivery(&self) -> Cow<'_, DeliveryRecord> {
        Cow::Owned(CallRecord::as_delivery(self))
    }
    fn planned_kind(&self) -> &str {
        VAN
    }
    fn sendable(&self) -> bool {
        self.post.is_some()
    }
    fn delivered(&mut self) {}
    fn call(&self) -> Option<&crate::call::Call> {
        self.call.as_ref()
    }
    /// A VAN id an extension found (`person_match`) is kept on the post.
    fn keep_found(&mut self, payload: &serde_json::Value) {
        let found = payload
            .get("van_id")
            .and_then(serde_json::Value::as_u64)
            .and_then(|id| crate::values::VanId::new(id).ok());
        if let (Some(post), Some(id)) = (self.post.as_mut(), found)
            && post.van_id.is_none()
        {
            post.van_id = Some(id);
        }
    }
    fn divert(&mut self) {
        // The next settle writes it into the day's CSV (see `nightly::settle`).
        self.post = None;
        self.csv_reason = Some(crate::planning::CsvReason::CostGuard);
        self.delivery.state = CallState::QueuedForCsv;
        self.delivery.error = None;
        self.delivery.next_attempt_at = None;
    }
}

#[async_trait]
impl Stored for DeliveryRecord {
    async fn fetch(ledger: &dyn Ledger, key: &DeliveryKey) -> Result<Option<Self>, StoreError> {
        ledger.get_delivery(key).await
    }
    fn message(&self) -> SyncMessage {
        SyncMessage {
            candidate: self.key.call.day.candidate.clone(),
            date: self.key.call.day.date,
            call_id: self.key.call.call_id.clone(),
            destination: Some(self.key.destination.clone()),
        }
    }
    async fn write(&mut self, ledger: &dyn Ledger) -> Result<bool, StoreError> {
        ledger.replace_delivery(self).await
    }
    fn as_delivery(&self) -> Cow<'_, DeliveryRecord> {
        Cow::Borrowed(self)
    }
    fn planned_kind(&self) -> &str {
        &self.kind
    }
    fn sendable(&self) -> bool {
        true
    }
    fn delivered(&mut self) {
        self.delivered_hash = self.payload_hash.clone();
    }
    fn call(&self) -> Option<&crate::call::Call> {
        None
    }
    fn keep_found(&mut self, _payload: &serde_json::Value) {}
    fn divert(&mut self) {
        self.reason = Some("the day's cap on requests that cost money is reached".into());
        self.delivery.state = CallState::Ignored;
        self.delivery.error = None;
        self.delivery.next_attempt_at = None;
    }
}

/// Take a delivery for one send: one conditional write. The lease's id, or `None` when
/// another worker wrote the record first.
pub(crate) async fn lease<R: Stored>(
    svc: &Services,
    record: &mut R,
) -> Result<Option<String>, StoreError> {
    let now = svc.clock.now();
    let id = record.delivery_mut().lease(now + svc.settings.lease);
    record.touch(now);
    Ok(record.write(svc.ledger.as_ref()).await?.then_some(id))
}

/// Record why a delivery cannot be sent. One conditional write: nothing is sent, so
/// nothing needs holding first.
pub(crate) async fn refuse<R: Stored>(
    svc: &Services,
    mut record: R,
    note: ErrorNote,
) -> Result<Outcome, StoreError> {
    let d = record.delivery_mut();
    d.state = CallState::UnattemptedError;
    d.error = Some(note);
    d.lease_until = None;
    d.lease_id = None;
    record.touch(svc.clock.now());
    Ok(if record.write(svc.ledger.as_ref()).await? {
        Outcome::Failed
    } else {
        Outcome::Skipped
    })
}

/// End a leased delivery in an error `state`: `Rejected` for an attempted error,
/// `Failed` when nothing could be sent.
pub(crate) async fn fail<R: Stored>(
    svc: &Services,
    mut record: R,
    state: CallState,
    note: ErrorNote,
    lease: &str,
) -> Result<Outcome, StoreError> {
    let d = record.delivery_mut();
    d.state = state;
    d.error = Some(note);
    d.next_attempt_at = None;
    settle(svc, record, lease).await?;
    Ok(if state == CallState::AttemptedError {
        Outcome::Rejected
    } else {
        Outcome::Failed
    })
}

/// Give a leased delivery back (`unsynced`) for the queue's next delivery of its message.
pub(crate) async fn release<R: Stored>(
    svc: &Services,
    mut record: R,
    lease: &str,
) -> Result<Outcome, StoreError> {
    record.delivery_mut().state = CallState::Unsynced;
    settle(svc, record, lease).await?;
    Ok(Outcome::Retry)
}

/// Write the outcome of a leased delivery as soon as possible after the destination
/// answered. `None` when someone else wrote in between (only a sweep that found the lease
/// expired can have).
pub(crate) async fn settle<R: Stored>(
    svc: &Services,
    mut record: R,
    lease: &str,
) -> Result<Option<R>, StoreError> {
    let d = record.delivery_mut();
    d.lease_until = None;
    d.lease_id = None;
    record.touch(svc.clock.now());
    if record.write(svc.ledger.as_ref()).await? {
        return Ok(Some(record));
    }
    tracing::error!(
        call = %record.call_key(),
        destination = record.destination_name().unwrap_or("none"),
        lease,
        state = %record.delivery().state,
        "the ledger changed while this worker held the delivery; its outcome was not recorded"
    );
    Ok(None)
}

/// Count `records` by state.
pub fn tally<R: Tracked>(records: &[R]) -> BTreeMap<CallState, u64> {
    let mut counts = BTreeMap::new();
    for r in records {
        *counts.entry(r.delivery().state).or_insert(0) += 1;
    }
    counts
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn a_panic_in_one_messages_work_hands_that_message_back_and_no_other() {
        let msg = SyncMessage {
            candidate: crate::values::CandidateSlug::parse("ny14").unwrap(),
            date: jiff::civil::date(2026, 11, 21),
            call_id: crate::call::CallId("1001".into()),
            destination: Some("hook".into()),
        };
        let outcomes = futures::future::join_all([
            isolated(&msg, async { Outcome::Finished }.boxed()),
            isolated(
                &msg,
                async {
                    let rate: f64 = "1e-300".parse().unwrap();
                    // The kind of defect the pace once had: a duration no clock holds.
                    let _ = std::time::Duration::from_secs_f64(1.0 / rate / 1e-300);
                    Outcome::Finished
                }
                .boxed(),
            ),
            isolated(&msg, async { Outcome::Rejected }.boxed()),
        ])
        .await;
        assert_eq!(
            outcomes,
            [Outcome::Finished, Outcome::Retry, Outcome::Rejected]
        );
    }
}
