//! VAN (NGP VAN / EveryAction) as a destination kind: a call's canvass response, posted to
//! `POST /people/{vanId}/canvassResponses` with the contact and input types resolved by
//! name. Its delivery is kept on the call's own record (see
//! [`crate::ledger::CallRecord`]); the strategy decides which calls it receives
//! ([`crate::planning`]), and the stored post is what [`Van::deliver`] sends.
//!
//! Every VAN request is counted on the day's counter before it is sent (the
//! [`DeliverContext::meter`]); an uncounted request is never sent. A failure VAN may get
//! over (429, 5xx, no answer) has already been retried by the client within the batch's
//! deadline, so the delivery is handed back to the queue ([`Retry::Redeliver`]).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::Mutex;

use super::{Codes, DeliverContext, DeliveryError, Destination, Metadata, Retry};
use crate::call::Call;
use crate::candidate::Candidate;
use crate::connect::{ConnectError, Connectors};
use crate::ledger::{DeliveryPlan, DeliveryRecord, Receipt, StoredPost};
use crate::mapping::{ResultRow, VanAction};
use crate::ports::SecretStore;
use crate::van::{
    ActivistAction, CanvassContext, CanvassOutcome, CanvassResponse, DatabaseMode, RequestMeter,
    ResponseItem, VanClient, VanError,
};

pub const METADATA: Metadata = Metadata {
    kind: "van",
    description: "NGP VAN / EveryAction canvass responses (the `van` settings and the strategy)",
    spends_money: true,
    // VAN's documented default for an API key.
    default_rate_limit: 15.0,
    resends_updates: false,
    configurable: false,
    batches: false,
    waits_for_call: false,
    codes: Codes {
        rejected: "van_rejected",
        setup: "van_setup",
        unavailable: "van_unavailable",
    },
    retry: Retry::Redeliver,
};

/// A candidate's VAN connection with its contact and input types resolved by name
/// (ids differ per database).
#[derive(Debug, Clone)]
pub struct VanTarget {
    pub client: VanClient,
    pub contact_type_id: u32,
    pub input_type_id: u32,
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

impl From<SetupError> for DeliveryError {
    fn from(e: SetupError) -> Self {
        match e {
            e if e.is_transient() => DeliveryError::Retryable {
                message: e.to_string(),
                status: None,
                answer: None,
            },
            SetupError::Van(e) => van_error(e),
            e => DeliveryError::Setup(e.to_string()),
        }
    }
}

/// VAN's answer as a delivery error: retryable as VAN says, refused with its envelope kept.
fn van_error(e: VanError) -> DeliveryError {
    if let VanError::OverCap(message) = e {
        return DeliveryError::OverCap(message);
    }
    if e.is_retryable() {
        DeliveryError::Retryable {
            message: e.to_string(),
            status: e.status(),
            answer: None,
        }
    } else {
        DeliveryError::Rejected {
            message: e.to_string(),
            status: e.status(),
            answer: None,
            envelope: e.envelope_json(),
        }
    }
}

impl VanTarget {
    /// Connect and resolve the types by name, the lookups counted by `meter`.
    pub async fn connect(
        connectors: &Connectors,
        secrets: &dyn SecretStore,
        candidate: &Candidate,
        mode: Option<DatabaseMode>,
        meter: Option<Arc<dyn RequestMeter>>,
    ) -> Result<Self, SetupError> {
        let client = connectors.van(secrets, candidate, mode).await?;
        let lookups = match meter {
            Some(m) => client.metered(m),
            None => client.clone(),
        };
        let van = candidate.van().ok_or_else(|| no_van_settings(candidate))?;
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
        })
    }

    /// This target with every request counted by `meter` first.
    pub fn metered(&self, meter: Arc<dyn RequestMeter>) -> Self {
        Self {
            client: self.client.metered(meter),
            ..self.clone()
        }
    }

    /// The canvass request for a stored post (with the `phoneId` an extension found).
    pub fn request(&self, post: &StoredPost) -> CanvassResponse {
        self.request_with(post, post.phone_id)
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

fn no_van_settings(candidate: &Candidate) -> SetupError {
    SetupError::Config(format!(
        "candidate {} has no VAN settings: add `van` to its document",
        candidate.slug
    ))
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

/// The VAN destination of one candidate. It keeps its connections (one per database,
/// the types resolved) for as long as the compiled candidate lives — the document
/// unchanged, at most [`Van::TTL`] — so a batch does not resolve the types again for
/// every call.
#[derive(Debug, Default)]
pub struct Van {
    connections: Mutex<HashMap<DatabaseMode, (Instant, Arc<VanTarget>)>>,
}

impl Van {
    const TTL: Duration = Duration::from_secs(10 * 60);

    /// The connection to database `mode`, its type lookups counted by the context's meter.
    async fn target(
        &self,
        ctx: DeliverContext<'_>,
        mode: DatabaseMode,
    ) -> Result<Arc<VanTarget>, SetupError> {
        let mut connections = self.connections.lock().await;
        if let Some((at, target)) = connections.get(&mode)
            && at.elapsed() < Self::TTL
        {
            return Ok(Arc::clone(target));
        }
        let target = Arc::new(
            VanTarget::connect(
                ctx.connectors,
                ctx.secrets,
                ctx.candidate,
                Some(mode),
                ctx.meter.cloned(),
            )
            .await?,
        );
        connections.insert(mode, (Instant::now(), Arc::clone(&target)));
        Ok(target)
    }

    /// Drop the connection to database `mode` if it still uses the key VAN refused
    /// (`refused`, its rate key); a connection another call made since is kept.
    async fn drop_target(&self, mode: DatabaseMode, refused: &str) {
        let mut connections = self.connections.lock().await;
        if connections
            .get(&mode)
            .is_some_and(|(_, target)| target.client.rate_key() == refused)
        {
            connections.remove(&mode);
        }
    }

    /// The connection to database `mode` to send with, every request counted by the
    /// context's meter.
    async fn sender(
        &self,
        ctx: DeliverContext<'_>,
        mode: DatabaseMode,
    ) -> Result<VanTarget, SetupError> {
        let target = self.target(ctx, mode).await?;
        Ok(match ctx.meter {
            Some(meter) => target.metered(Arc::clone(meter)),
            None => (*target).clone(),
        })
    }
}

#[async_trait]
impl Destination for Van {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    /// VAN's address is the deployment's, never the document's.
    fn endpoint(&self) -> Option<(&str, &'static str)> {
        None
    }

    /// VAN limits per API key: the key of the candidate's main database (a digest of it),
    /// shared with every candidate that uses the same key.
    async fn rate_key(&self, ctx: DeliverContext<'_>, name: &str) -> String {
        match ctx
            .connectors
            .van_credentials(ctx.secrets, ctx.candidate, None)
            .await
        {
            Ok((credentials, _)) => credentials.rate_key(),
            // The send will fail on the same problem; until then the candidate's own.
            Err(_) => format!("van/{}/{name}", ctx.candidate.slug),
        }
    }

    /// The candidate's VAN key reads, for its main database and each other one. Sends
    /// nothing (a request here would go uncounted); `validate` checks the types and the
    /// mapping against VAN itself.
    async fn check(&self, ctx: DeliverContext<'_>) -> Vec<String> {
        let Some(van) = ctx.candidate.van() else {
            return vec![no_van_settings(ctx.candidate).to_string()];
        };
        let modes = std::iter::once(van.database_mode)
            .chain(van.other_databases.iter().map(|o| o.database_mode));
        let mut problems = Vec::new();
        for mode in modes {
            if let Err(e) = ctx
                .connectors
                .van(ctx.secrets, ctx.candidate, Some(mode))
                .await
            {
                problems.push(e.to_string());
            }
        }
        problems
    }

    /// The canvass post for `call`, as the strategy's VAN plan stores it.
    fn plan(
        &self,
        _name: &str,
        call: &Call,
        _row: Option<&ResultRow>,
        candidate: &Candidate,
    ) -> DeliveryPlan {
        match crate::planning::plan(call, candidate) {
            crate::planning::Plan::Van(post) => match serde_json::to_value(StoredPost::from(&post))
            {
                Ok(payload) => DeliveryPlan::Send(payload),
                Err(e) => DeliveryPlan::Skip(format!("the post does not serialise: {e}")),
            },
            crate::planning::Plan::Error(e) => DeliveryPlan::Error(e),
            crate::planning::Plan::Csv(reason) => {
                DeliveryPlan::Skip(format!("the strategy exports it ({})", reason.as_str()))
            }
            crate::planning::Plan::Ignore => {
                DeliveryPlan::Skip("the mapping keeps neither sync nor csv for its result".into())
            }
        }
    }

    async fn deliver(
        &self,
        ctx: DeliverContext<'_>,
        delivery: &DeliveryRecord,
    ) -> Result<Receipt, DeliveryError> {
        let Some(payload) = &delivery.payload else {
            return Err(DeliveryError::Setup("the call holds no VAN post".into()));
        };
        let post: StoredPost = serde_json::from_value(payload.clone()).map_err(|_| {
            DeliveryError::Setup(
                "the call's VAN post does not read: plan the day again with POST /retry".into(),
            )
        })?;
        let van = ctx
            .candidate
            .van()
            .ok_or_else(|| no_van_settings(ctx.candidate))?;
        let Some(van_id) = post.van_id else {
            return Err(DeliveryError::Setup(
                "the call's account carries no VAN id: give the account its VAN id, or enable the person_match extension to find the person in VAN by name and phone, then POST /retry".into(),
            ));
        };
        let mode = post.database_mode.unwrap_or(van.database_mode);
        let mut target = self.sender(ctx, mode).await?;
        // A post once sent is never cut off: VAN may already have taken it, and a second
        // post would duplicate the contact. The client's own limits (request timeout,
        // retry deadline) bound it instead; see `Connectors::for_sync`.
        let mut body = target.request(&post);
        let answer = match target.client.post_canvass_response(van_id, &body).await {
            // VAN refuses a key the moment it is replaced, while a warm worker keeps the
            // one it read for minutes: read it afresh, and when it changed, post again
            // with the new one (VAN took nothing from a refused request). A key that did
            // not change stands refused.
            Err(refused) if refused.status() == Some(401) => {
                if !ctx
                    .connectors
                    .van_key_replaced(ctx.secrets, ctx.candidate, mode, &target.client)
                    .await
                {
                    return Err(van_error(refused));
                }
                self.drop_target(mode, &target.client.rate_key()).await;
                target = self.sender(ctx, mode).await?;
                body = target.request(&post);
                target.client.post_canvass_response(van_id, &body).await
            }
            answer => answer,
        }
        .map_err(van_error)?;
        Ok(Receipt::Van {
            fingerprint: fingerprint(&body),
            status: answer.status,
            at: ctx.clock.now(),
            attempts: answer.attempts,
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::destinations::payload::fixtures::{call, candidate};

    #[test]
    fn vans_plan_is_the_strategys_post_or_a_reasoned_skip() {
        let c = candidate(serde_json::json!([]));
        let strong = call("Agent Cust 1", "Ana");
        let DeliveryPlan::Send(payload) = Van::default().plan("van", &strong, None, &c) else {
            panic!("a synced result is posted");
        };
        let crate::planning::Plan::Van(post) = crate::planning::plan(&strong, &c) else {
            panic!("the strategy posts it");
        };
        assert_eq!(
            serde_json::from_value::<StoredPost>(payload).unwrap(),
            StoredPost::from(&post)
        );
        let unknown = call("Left a message", "Ana");
        assert!(matches!(
            Van::default().plan("van", &unknown, None, &c),
            DeliveryPlan::Error(crate::planning::PlanError::UnknownResult { .. })
        ));
    }

    #[tokio::test]
    async fn the_check_reads_the_key_and_sends_nothing() {
        let c = candidate(serde_json::json!([]));
        let connectors = Connectors {
            // Nothing listens here: a request would fail the check.
            van_base_url: Some("http://127.0.0.1:9".into()),
            ..Connectors::default()
        };
        let ctx = |secrets: &'static crate::adapters::memory::MemorySecrets| DeliverContext {
            secrets,
            connectors: Box::leak(Box::new(connectors.clone())),
            candidate: Box::leak(Box::new(c.clone())),
            clock: &crate::ports::SystemClock,
            meter: None,
        };
        let with_key: &'static _ = Box::leak(Box::new(
            crate::adapters::memory::MemorySecrets::default().with(
                "callsync/ny14-smith/van",
                r#"{"application_name":"a","api_key":"k"}"#,
            ),
        ));
        assert_eq!(
            Van::default().check(ctx(with_key)).await,
            Vec::<String>::new()
        );
        let without: &'static _ =
            Box::leak(Box::new(crate::adapters::memory::MemorySecrets::default()));
        let problems = Van::default().check(ctx(without)).await;
        assert!(
            problems[0].contains("callsync/ny14-smith/van"),
            "{problems:?}"
        );
    }
}
