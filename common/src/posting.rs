//! Posting one call to VAN (`sync-call`): lease it, build the canvass request from what
//! the planner stored, post it under a deadline, and record the outcome — `finished`
//! with a receipt, `attempted_error` with VAN's answer, or the lease released so the
//! queue delivers it again.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::sync::Mutex;

use crate::candidate::Candidate;
use crate::connect::ConnectError;
use crate::deliver::{self, Outcome, isolated};
use crate::ledger::{CallKey, CallRecord, CallState, DayKey, ErrorNote, Receipt, StoredPost};
use crate::mapping::VanAction;
use crate::metrics::{self, Metric};
use crate::ports::DayStore;
use crate::ports::{StoreError, SyncMessage};
use crate::services::{CandidateError, Services};
use crate::values::CandidateSlug;
use crate::van::{
    ActivistAction, CanvassContext, CanvassOutcome, CanvassResponse, DatabaseMode, RequestMeter,
    ResponseItem, VanClient, VanError,
};

/// Counts each VAN request on the day's counter (an atomic add) before it is sent: the
/// budget strategy reads that count, and a worker killed mid-batch must not leave it
/// lower than what VAN received.
struct DayMeter {
    days: Arc<dyn DayStore>,
    day: DayKey,
}

#[async_trait::async_trait]
impl RequestMeter for DayMeter {
    async fn count(&self) -> Result<(), String> {
        self.days
            .add_van_requests(&self.day, 1)
            .await
            .map_err(|e| e.to_string())
    }
}

/// A candidate's VAN connection with its contact and input types resolved by name
/// (ids differ per database).
#[derive(Debug, Clone)]
pub struct VanTarget {
    pub client: VanClient,
    pub contact_type_id: u32,
    pub input_type_id: u32,
    /// Extension `phone_ids`: look up VAN's `phoneId` for the dialed number first.
    pub phone_ids: bool,
}

/// Why a candidate's VAN connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Connect(#[from] ConnectError),
    #[error("VAN: {0}")]
    Van(#[from] VanError),
    #[error("{0}")]
    Config(String),
}

impl SetupError {
    fn is_transient(&self) -> bool {
        match self {
            Self::Connect(e) => e.is_transient(),
            Self::Van(e) => e.is_retryable(),
            Self::Config(_) => false,
        }
    }
}

impl VanTarget {
    /// Connect and resolve the types by name, the lookups counted by `meter`.
    pub async fn connect(
        svc: &Services,
        candidate: &Candidate,
        mode: Option<DatabaseMode>,
        meter: Option<Arc<dyn RequestMeter>>,
    ) -> Result<Self, SetupError> {
        let client = svc
            .connectors
            .van(svc.secrets.as_ref(), candidate, mode)
            .await?;
        let lookups = match meter {
            Some(m) => client.metered(m),
            None => client.clone(),
        };
        let van = candidate.van().ok_or_else(|| {
            SetupError::Config(format!(
                "candidate {} has no VAN settings: add `van` to its document",
                candidate.slug
            ))
        })?;
        let contact_types = lookups.contact_types().await?;
        let contact_type_id = by_name(
            contact_types
                .iter()
                .map(|t| (t.name.as_str(), t.contact_type_id)),
            "contact type",
            "contact_type",
            &van.contact_type,
        )?;
        let input_types = lookups.input_types().await?;
        let input_type_id = by_name(
            input_types
                .iter()
                .map(|t| (t.name.as_str(), t.input_type_id)),
            "input type",
            "input_type",
            &van.input_type,
        )?;
        Ok(Self {
            client,
            contact_type_id,
            input_type_id,
            phone_ids: candidate.doc().extensions.iter().any(|e| e == "phone_ids"),
        })
    }

    /// This target with every request counted by `meter` first.
    pub fn metered(&self, meter: Arc<dyn RequestMeter>) -> Self {
        Self {
            client: self.client.metered(meter),
            ..self.clone()
        }
    }

    /// The canvass request for a stored post.
    pub async fn request(&self, post: &StoredPost) -> Result<CanvassResponse, VanError> {
        let phone_id = match (&post.phone, self.phone_ids) {
            (Some(phone), true) => match self.client.person_with_phones(post.van_id).await {
                Ok(person) => person.phone_id_for(phone),
                // An unknown person gets its 404 from the post itself.
                Err(VanError::Api { status: 404, .. }) => None,
                Err(e) => return Err(e),
            },
            _ => None,
        };
        Ok(self.request_with(post, phone_id))
    }

    pub fn request_with(&self, post: &StoredPost, phone_id: Option<u64>) -> CanvassResponse {
        CanvassResponse {
            context: CanvassContext {
                contact_type_id: self.contact_type_id,
                input_type_id: self.input_type_id,
                date_canvassed: post.date_canvassed.clone(),
                phone: post.phone.clone(),
                phone_id,
                omit_activist_code_contact_history: false,
            },
            outcome: outcome(&post.action()),
        }
    }
}

/// The id of the entry named `wanted` (ids differ per database; names do not).
fn by_name<'a>(
    entries: impl IntoIterator<Item = (&'a str, u32)>,
    what: &str,
    field: &str,
    wanted: &str,
) -> Result<u32, SetupError> {
    entries
        .into_iter()
        .find(|(name, _)| name.trim().eq_ignore_ascii_case(wanted.trim()))
        .map(|(_, id)| id)
        .ok_or_else(|| {
            SetupError::Config(format!(
                "{what} {wanted:?} does not exist in this VAN database: set van.{field} to one GET /configure lists"
            ))
        })
}

/// A mapping action as VAN's `resultCodeId` or `responses` — never both.
pub fn outcome(action: &VanAction) -> CanvassOutcome {
    match action {
        VanAction::ResultCode(code) => CanvassOutcome::ResultCode(*code),
        VanAction::Contact {
            survey_responses,
            activist_codes,
        } => {
            CanvassOutcome::Responses(
                survey_responses
                    .iter()
                    .map(|a| ResponseItem::Survey {
                        question_id: a.question_id,
                        response_id: a.response_id,
                    })
                    .chain(activist_codes.iter().map(|&activist_code_id| {
                        ResponseItem::ActivistCode {
                            activist_code_id,
                            action: ActivistAction::Apply,
                        }
                    }))
                    .collect(),
            )
        }
    }
}

/// SHA-256 of the exact request body: the receipt of a post VAN gives no id for.
pub fn fingerprint(body: &CanvassResponse) -> String {
    crate::values::sha256_hex(&serde_json::to_vec(body).unwrap_or_default())
}

/// Connections kept for the life of a Lambda instance, one per candidate and database,
/// so a batch does not resolve the contact and input types again for every call.
#[derive(Debug, Default)]
pub struct Targets {
    cache: Mutex<HashMap<(CandidateSlug, DatabaseMode), Cached>>,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    target: Arc<VanTarget>,
    /// Counts of the connections this one replaced, so counts never go back.
    retired: Counts,
}

#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    requests: u64,
    rate_limited: u64,
}

impl Cached {
    fn counts(&self) -> Counts {
        Counts {
            requests: self.retired.requests + self.target.client.requests_made(),
            rate_limited: self.retired.rate_limited + self.target.client.rate_limited(),
        }
    }
}

impl Targets {
    const TTL: Duration = Duration::from_secs(10 * 60);

    async fn get(
        &self,
        svc: &Services,
        candidate: &Candidate,
        mode: DatabaseMode,
        meter: &Arc<dyn RequestMeter>,
    ) -> Result<Arc<VanTarget>, SetupError> {
        let mut cache = self.cache.lock().await;
        let key = (candidate.slug.clone(), mode);
        let retired = match cache.get(&key) {
            Some(c) if c.at.elapsed() < Self::TTL => return Ok(Arc::clone(&c.target)),
            Some(c) => c.counts(),
            None => Counts::default(),
        };
        let target = Arc::new(
            VanTarget::connect(svc, candidate, Some(mode), Some(Arc::clone(meter))).await?,
        );
        cache.insert(
            key,
            Cached {
                at: Instant::now(),
                target: Arc::clone(&target),
                retired,
            },
        );
        Ok(target)
    }

    /// VAN requests (and 429s among them) made for a candidate by this instance so far.
    async fn counts(&self, slug: &CandidateSlug) -> Counts {
        self.cache
            .lock()
            .await
            .iter()
            .filter(|((s, _), _)| s == slug)
            .map(|(_, c)| c.counts())
            .fold(Counts::default(), |a, b| Counts {
                requests: a.requests + b.requests,
                rate_limited: a.rate_limited + b.rate_limited,
            })
    }
}

/// Post the calls of one batch, at most `van_concurrency` at a time. Returns each
/// message's outcome, in order.
pub async fn sync_batch(
    svc: &Services,
    targets: &Targets,
    messages: &[SyncMessage],
) -> Vec<Outcome> {
    // No call starts after this point of the batch: with the client's request timeout and
    // retry deadline it keeps a batch inside the function's timeout. A call not started
    // is left for the queue to deliver again.
    let deadline = tokio::time::Instant::now() + svc.settings.post_deadline;
    // VAN's messages and each destination's run side by side: none waits for another.
    let (van, others): (Vec<usize>, Vec<usize>) =
        (0..messages.len()).partition(|&i| messages[i].destination.is_none());
    let van_messages: Vec<&SyncMessage> = van.iter().map(|&i| &messages[i]).collect();
    let other_messages: Vec<&SyncMessage> = others.iter().map(|&i| &messages[i]).collect();
    let (van_done, others_done) = futures::join!(
        van_batch(svc, targets, &van_messages, deadline),
        crate::deliver::deliver_batch(svc, &other_messages, deadline)
    );
    let mut outcomes = vec![Outcome::Retry; messages.len()];
    for (i, o) in van
        .into_iter()
        .zip(van_done)
        .chain(others.into_iter().zip(others_done))
    {
        outcomes[i] = o;
    }
    outcomes
}

async fn van_batch(
    svc: &Services,
    targets: &Targets,
    messages: &[&SyncMessage],
    deadline: tokio::time::Instant,
) -> Vec<Outcome> {
    // The calls of one candidate-day run together and the groups one after another, so
    // each group's metrics belong to its own day (a batch is nearly always one group).
    // The durable count is kept per request (see `DayMeter`).
    let mut groups: Vec<(DayKey, Vec<usize>)> = Vec::new();
    for (i, m) in messages.iter().enumerate() {
        let day = DayKey {
            candidate: m.candidate.clone(),
            date: m.date,
        };
        match groups.iter_mut().find(|(d, _)| *d == day) {
            Some((_, members)) => members.push(i),
            None => groups.push((day, vec![i])),
        }
    }
    let mut outcomes = vec![Outcome::Retry; messages.len()];
    for (day, members) in groups {
        let before = targets.counts(&day.candidate).await;
        let latencies = std::sync::Mutex::new(Vec::new());
        let done: Vec<Outcome> = futures::stream::iter(members.iter().copied())
            .map(|i| {
                isolated(
                    messages[i],
                    sync_one(svc, targets, messages[i], deadline, &latencies),
                )
            })
            .buffered(svc.settings.van_concurrency.max(1))
            .collect()
            .await;
        let after = targets.counts(&day.candidate).await;
        let used = after.requests - before.requests;
        let n = |o: Outcome| done.iter().filter(|d| **d == o).count() as u64;
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
                (Metric::VanRequests, metrics::count(used)),
                (
                    Metric::VanRateLimited,
                    metrics::count(after.rate_limited - before.rate_limited),
                ),
                (
                    Metric::VanLatency,
                    latencies.into_inner().unwrap_or_default(),
                ),
            ],
        );
        for (i, outcome) in members.into_iter().zip(done) {
            outcomes[i] = outcome;
        }
    }
    outcomes
}

/// Post one call; never panics, never returns an error: every failure is an outcome.
pub async fn sync_one(
    svc: &Services,
    targets: &Targets,
    msg: &SyncMessage,
    deadline: tokio::time::Instant,
    latencies: &std::sync::Mutex<Vec<f64>>,
) -> Outcome {
    if tokio::time::Instant::now() >= deadline {
        return Outcome::Retry;
    }
    let key = CallKey {
        day: DayKey {
            candidate: msg.candidate.clone(),
            date: msg.date,
        },
        call_id: msg.call_id.clone(),
    };
    match try_sync(svc, targets, &key, latencies).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::warn!(call = %key, error = %e, "ledger unavailable; the message will be delivered again");
            Outcome::Retry
        }
    }
}

async fn try_sync(
    svc: &Services,
    targets: &Targets,
    key: &CallKey,
    latencies: &std::sync::Mutex<Vec<f64>>,
) -> Result<Outcome, StoreError> {
    let Some(mut record) = svc.ledger.get(key).await? else {
        tracing::warn!(call = %key, "no such call in the ledger; message dropped");
        return Ok(Outcome::Skipped);
    };
    if !record.delivery.can_lease(svc.clock.now()) {
        return Ok(Outcome::Skipped);
    }
    let Some(post) = record.post.clone() else {
        tracing::warn!(call = %key, state = %record.delivery.state, "call has no VAN post; message dropped");
        return Ok(Outcome::Skipped);
    };
    let Some(lease) = deliver::lease(svc, &mut record).await? else {
        // Another worker took it between our read and write.
        return Ok(Outcome::Skipped);
    };

    let candidate = match svc.candidate(&key.day.candidate).await {
        Ok(c) => c,
        Err(CandidateError::Store(e)) => {
            tracing::warn!(call = %key, error = %e, "config unavailable");
            return deliver::release(svc, record, &lease).await;
        }
        Err(e) => {
            return fail(
                svc,
                record,
                &lease,
                CallState::UnattemptedError,
                "candidate_unusable",
                e.to_string(),
                None,
                None,
            )
            .await;
        }
    };
    let meter: Arc<dyn RequestMeter> = Arc::new(DayMeter {
        days: Arc::clone(&svc.days),
        day: key.day.clone(),
    });
    let Some(mode) = post
        .database_mode
        .or(candidate.van().map(|v| v.database_mode))
    else {
        return fail(
            svc,
            record,
            &lease,
            CallState::UnattemptedError,
            "van_setup",
            format!(
                "candidate {} has no VAN settings: add `van` to its document",
                candidate.slug
            ),
            None,
            None,
        )
        .await;
    };
    let target = match targets.get(svc, &candidate, mode, &meter).await {
        Ok(t) => t.metered(meter),
        Err(e) if e.is_transient() => {
            tracing::warn!(call = %key, error = %e, "VAN setup failed for now");
            return deliver::release(svc, record, &lease).await;
        }
        Err(SetupError::Van(e)) => {
            return fail(
                svc,
                record,
                &lease,
                CallState::AttemptedError,
                "van_rejected",
                e.to_string(),
                e.status(),
                e.envelope_json(),
            )
            .await;
        }
        Err(e) => {
            return fail(
                svc,
                record,
                &lease,
                CallState::UnattemptedError,
                "van_setup",
                e.to_string(),
                None,
                None,
            )
            .await;
        }
    };

    // A post once sent is never cut off: VAN may already have taken it, and a second post
    // would duplicate the contact. The client's own limits (request timeout, retry
    // deadline) bound it instead; see `Services::build`.
    let started = Instant::now();
    let posted = async {
        let body = target.request(&post).await?;
        let receipt = target
            .client
            .post_canvass_response(post.van_id, &body)
            .await?;
        Ok::<_, VanError>((body, receipt))
    }
    .await;
    if let Ok(mut l) = latencies.lock() {
        l.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    match posted {
        Ok((body, receipt)) => {
            record.delivery.receipt = Some(Receipt::Van {
                fingerprint: fingerprint(&body),
                status: receipt.status,
                at: svc.clock.now(),
                attempts: receipt.attempts,
            });
            record.delivery.state = CallState::Finished;
            record.delivery.error = None;
            deliver::settle(svc, record, &lease).await?;
            Ok(Outcome::Finished)
        }
        Err(e) if !e.is_retryable() => {
            fail(
                svc,
                record,
                &lease,
                CallState::AttemptedError,
                "van_rejected",
                e.to_string(),
                e.status(),
                e.envelope_json(),
            )
            .await
        }
        Err(e) => {
            tracing::warn!(call = %key, error = %e, "VAN did not accept the post in time; released");
            deliver::release(svc, record, &lease).await
        }
    }
}

/// End a leased call in an error state, keeping VAN's answer.
#[allow(clippy::too_many_arguments)]
async fn fail(
    svc: &Services,
    record: CallRecord,
    lease: &str,
    state: CallState,
    code: &str,
    message: String,
    status: Option<u16>,
    van: Option<serde_json::Value>,
) -> Result<Outcome, StoreError> {
    let note = ErrorNote {
        status,
        van,
        ..ErrorNote::new(code, message, svc.clock.now())
    };
    deliver::fail(svc, record, state, note, lease).await
}
