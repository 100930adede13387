//! Destinations: the systems a call is delivered to. One port ([`Destination`]), one file
//! per kind under this folder, and one registry ([`KINDS`], [`configure`]) from a kind's
//! name to its adapter — so a new system is a new file here and a line in the registry.
//!
//! VAN and the CSV are the call record's own delivery (the strategy chooses between them;
//! see [`crate::planning`], [`van`], [`csv`]). Every other destination
//! is configured in the candidate document's `destinations` list and gets one
//! [`DeliveryRecord`] per call in the ledger. Which calls a destination receives is
//! decided in [`crate::planning::select`]; what it is sent, by its adapter's `plan`.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::call::Call;
use crate::candidate::Candidate;
use crate::connect::Connectors;
use crate::egress::Egress;
use crate::ledger::{CallRecord, DayKey, DeliveryPlan, DeliveryRecord, Receipt};
use crate::mapping::{FieldError, ResultRow};
use crate::ports::{Clock, ObjectStore, SecretStore};
use crate::values::CandidateSlug;
use crate::van::RequestMeter;

pub mod action_network;
pub mod csv;
pub mod http;
pub mod payload;
pub mod sql;
pub mod template;
pub mod van;
pub mod webhook;

/// What a kind of destination is, independent of any one configuration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Metadata {
    pub kind: &'static str,
    pub description: &'static str,
    /// Whether delivering can cost the campaign money (VAN's per-request charges).
    pub spends_money: bool,
    /// Requests a second toward one destination of this kind, unless `rate_limit` says.
    pub default_rate_limit: f64,
    /// Whether a delivered call whose content changed is sent again, as an update.
    pub resends_updates: bool,
    /// Configured in the `destinations` list; `false` for the call record's own (VAN, CSV).
    pub configurable: bool,
    /// Takes a queue batch's deliveries at once ([`Destination::deliver_many`]): the deliver
    /// loop leases them all, then hands them over together.
    pub batches: bool,
    /// Delivered only once the call's other deliveries are final, with their outcomes
    /// (`deliveries` in the payload it is handed): a mirror of the call's whole story.
    pub waits_for_call: bool,
    /// The error codes its deliveries are recorded with.
    #[serde(skip)]
    pub codes: Codes,
    /// What happens after a failure that may pass.
    #[serde(skip)]
    pub retry: Retry,
}

/// The codes a kind's failed deliveries carry in the ledger (`error.code`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Codes {
    /// The destination refused it ([`DeliveryError::Rejected`]).
    pub rejected: &'static str,
    /// Nothing could be sent ([`DeliveryError::Setup`]).
    pub setup: &'static str,
    /// It kept failing for a reason that might pass, and the tries ran out.
    pub unavailable: &'static str,
}

/// The codes of every kind but VAN.
pub const DESTINATION_CODES: Codes = Codes {
    rejected: "destination_rejected",
    setup: "destination_setup",
    unavailable: "destination_unavailable",
};

/// What follows a failure that may pass ([`DeliveryError::Retryable`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// Released as it was, for the queue's next delivery of its message (after the
    /// visibility timeout; the dead-letter queue after the receive limit): for a client
    /// that already retried within the batch's deadline.
    Redeliver,
    /// Released with `next_attempt_at` set by jittered exponential back-off and handed back
    /// to the queue with that delay; `attempted_error` after the deployment's attempts.
    Backoff,
}

pub use van::METADATA as VAN;

pub use csv::METADATA as CSV;

/// Every kind, for `GET /destinations`-style listings and the document check.
pub const KINDS: &[&Metadata] = &[
    &VAN,
    &CSV,
    &webhook::METADATA,
    &http::METADATA,
    &sql::METADATA,
    &action_network::METADATA,
];

pub use crate::candidate::DestinationDoc;
pub use crate::candidate::Select;

/// A delivery that did not land, split by what happens next.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// It may land later (the destination is down, slow, or said "try again").
    #[error("{message}")]
    Retryable {
        message: String,
        status: Option<u16>,
        answer: Option<String>,
    },
    /// The destination refused it; sending it again would be refused again.
    #[error("{message}")]
    Rejected {
        message: String,
        status: Option<u16>,
        answer: Option<String>,
        /// A structured answer kept as it came (VAN's error envelope).
        envelope: Option<Value>,
    },
    /// Nothing was sent: the configuration cannot work (a missing secret, a URL the
    /// deployment may not reach). Fix it, then `POST /retry`.
    #[error("{0}")]
    Setup(String),
    /// Nothing was sent: the day's cap on requests that cost money is reached
    /// (`cost_guard`). The call goes to the day's CSV instead.
    #[error("{0}")]
    OverCap(String),
    /// Nothing was sent: an extension's hook before the send failed.
    #[error("extension {extension}: {message}")]
    Extension {
        extension: &'static str,
        message: String,
    },
}

/// What an adapter may use while delivering.
#[derive(Clone, Copy)]
pub struct DeliverContext<'a> {
    pub secrets: &'a dyn SecretStore,
    /// The deployment's VAN and LiveVox connections and its egress rules.
    pub connectors: &'a Connectors,
    /// The candidate the delivery is for: the secrets and hosts it names are its own.
    pub candidate: &'a Candidate,
    /// Stamps receipts.
    pub clock: &'a dyn Clock,
    /// For a kind that charges per request: counts each request before it is sent (an
    /// uncounted request is never sent).
    pub meter: Option<&'a Arc<dyn RequestMeter>>,
}

impl<'a> DeliverContext<'a> {
    /// For asking a destination something outside a delivery (validate, configure, a
    /// run's checks): nothing is metered.
    pub fn unmetered(
        secrets: &'a dyn SecretStore,
        connectors: &'a Connectors,
        candidate: &'a Candidate,
        clock: &'a dyn Clock,
    ) -> Self {
        Self {
            secrets,
            connectors,
            candidate,
            clock,
            meter: None,
        }
    }

    pub fn egress(&self) -> Egress {
        self.connectors.egress
    }
}

impl fmt::Debug for DeliverContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DeliverContext")
            .field("egress", &self.connectors.egress)
            .field("candidate", &self.candidate.slug)
            .finish_non_exhaustive()
    }
}

/// The port every kind implements.
#[async_trait]
pub trait Destination: Send + Sync + fmt::Debug {
    fn metadata(&self) -> &'static Metadata;
    /// The URL whose host the destination's requests go to, when the document names it
    /// (its scheme, host and port are the document's own), with the document field that
    /// holds it: its address is checked when the document is saved, in `validate` and at
    /// every send.
    fn endpoint(&self) -> Option<(&str, &'static str)>;
    /// Check the settings against the live system (the secret exists and reads, the
    /// endpoint resolves to an address the deployment may reach): problems, for
    /// `validate`. Sends nothing to the destination.
    async fn check(&self, ctx: DeliverContext<'_>) -> Vec<String>;
    /// What destination `name` (of this kind) is sent for `call` (`row` is its mapping
    /// row, if the result is known), why it is sent nothing (a skip: `ignored`), or why it
    /// cannot be (an error: `unattempted_error`).
    fn plan(
        &self,
        name: &str,
        call: &Call,
        row: Option<&ResultRow>,
        candidate: &Candidate,
    ) -> DeliveryPlan;
    /// The key of the rate limit this destination's requests count against: every worker
    /// and every destination with the same key share one schedule ([`crate::governor`]).
    /// By default this destination of this candidate alone.
    async fn rate_key(&self, ctx: DeliverContext<'_>, name: &str) -> String {
        format!("{}/{}/{name}", self.metadata().kind, ctx.candidate.slug)
    }
    /// Send one planned delivery; its receipt when the destination took it.
    async fn deliver(
        &self,
        ctx: DeliverContext<'_>,
        delivery: &DeliveryRecord,
    ) -> Result<Receipt, DeliveryError>;
    /// Send leased deliveries together (a kind whose metadata `batches`): one answer per
    /// delivery, in order. By default one at a time.
    async fn deliver_many(
        &self,
        ctx: DeliverContext<'_>,
        deliveries: &[DeliveryRecord],
    ) -> Vec<Result<Receipt, DeliveryError>> {
        let mut out = Vec::with_capacity(deliveries.len());
        for d in deliveries {
            out.push(self.deliver(ctx, d).await);
        }
        out
    }
    /// What `validate` finds by asking the live system (a database's grants and schema
    /// version, Action Network's tags): problems to fix, and facts. Only `validate` asks:
    /// what a destination's live system lacks holds back that destination's deliveries
    /// alone, never a night (which [`Destination::check`] may).
    async fn inspect(&self, _ctx: DeliverContext<'_>) -> Inspection {
        Inspection::default()
    }
    /// What the live system offers a document (Action Network's tags), for
    /// `GET /configure`; `None` for a kind with nothing to list.
    async fn catalogue(&self, _ctx: DeliverContext<'_>) -> Option<Result<Value, String>> {
        None
    }
}

/// What [`Destination::inspect`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Inspection {
    /// What to fix, each saying how.
    pub problems: Vec<String>,
    /// Facts (a schema version, a database that did not answer).
    pub notes: Vec<String>,
}

/// The port a batch kind implements: its delivery is many calls at once — a day's file —
/// with one receipt per call, read back from the unit itself. Calls stream in and receipts
/// stream out, so a unit of any size is delivered in bounded memory. The run records the
/// receipts (the adapter records nothing), and a unit delivered but not recorded when a run
/// stopped is found again by [`BatchDestination::unrecorded`], never delivered twice.
#[async_trait]
pub trait BatchDestination: Send + Sync + fmt::Debug {
    fn metadata(&self) -> &'static Metadata;
    /// Deliver the calls `calls` yields as one unit, taking them as they come: the unit,
    /// or `None` when there were none to deliver.
    async fn deliver_many(
        &self,
        ctx: BatchContext<'_>,
        calls: crate::ports::Records<'_, CallRecord>,
    ) -> Result<Option<Unit>, DeliveryError>;
    /// The receipt of every call a delivered unit holds, read from the unit as the stream
    /// is taken. A unit that is not this kind's (a stranger's file) is an error item.
    fn receipts<'a>(
        &'a self,
        ctx: BatchContext<'a>,
        unit: &'a str,
    ) -> crate::ports::Records<'a, (crate::call::CallId, Receipt)>;
    /// Units of the day delivered but not among `recorded` (a run stopped between the
    /// delivery and its record).
    async fn unrecorded(
        &self,
        ctx: BatchContext<'_>,
        recorded: &[&str],
    ) -> Result<Vec<String>, DeliveryError>;
}

/// What a batch kind may use: the day's bucket, the candidate, the day, a clock.
#[derive(Clone, Copy)]
pub struct BatchContext<'a> {
    pub objects: &'a dyn ObjectStore,
    pub candidate: &'a Candidate,
    pub day: &'a DayKey,
    pub clock: &'a dyn Clock,
}

impl fmt::Debug for BatchContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BatchContext")
            .field("candidate", &self.candidate.slug)
            .field("day", &self.day)
            .finish_non_exhaustive()
    }
}

/// One unit a batch kind delivered: its name (a file's key) and how many calls it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    pub key: String,
    pub items: u64,
}

/// A destination of one candidate, its settings checked.
#[derive(Debug, Clone)]
pub struct Configured {
    pub name: String,
    pub select: Select,
    /// Requests a second (the document's, else the kind's default).
    pub rate_limit: f64,
    pub adapter: Arc<dyn Destination>,
}

impl Configured {
    pub fn kind(&self) -> &'static str {
        self.adapter.metadata().kind
    }

    /// What this destination is to receive of `call`: its selection rule
    /// ([`crate::planning::select`]), then its adapter's plan.
    pub fn plan(&self, call: &Call, candidate: &Candidate) -> DeliveryPlan {
        use crate::planning::{Selection, select, unknown_result};
        let row = candidate.mapping.get(&call.result);
        match select(self.select, &self.name, row) {
            Selection::Deliver => self.adapter.plan(&self.name, call, row, candidate),
            Selection::Skip(reason) => DeliveryPlan::Skip(reason),
            Selection::UnknownResult => DeliveryPlan::Error(unknown_result(call, candidate)),
        }
    }
}

/// A candidate with its destinations compiled: what runs and the API work with. It derefs
/// to the [`Candidate`] (everything but the destinations), so planning takes it as that.
#[derive(Debug, Clone)]
pub struct Compiled {
    candidate: Candidate,
    /// VAN, when the document has `van` settings.
    pub van: Option<Configured>,
    /// The CSV: calls the strategy exports.
    pub csv: Arc<dyn BatchDestination>,
    /// The configured destinations besides VAN and the CSV, in document order.
    pub destinations: Vec<Configured>,
    /// The extensions it runs, in order.
    pub extensions: Vec<crate::extensions::Enabled>,
}

impl Compiled {
    /// Check every field of `doc` — the candidate's, its extensions' and its destinations' —
    /// reporting every problem at once, in the document's order. Without its own
    /// `extensions` list the candidate runs none; see [`Compiled::from_doc_in`].
    pub fn from_doc(
        doc: crate::candidate::CandidateDoc,
        egress: Egress,
    ) -> Result<Self, Vec<FieldError>> {
        Self::from_doc_in(doc, egress, &[])
    }

    /// [`Compiled::from_doc`] in a deployment that enables `default_extensions` for every
    /// candidate without its own `extensions` list (`CALLSYNC_EXTENSIONS`).
    pub fn from_doc_in(
        doc: crate::candidate::CandidateDoc,
        egress: Egress,
        default_extensions: &[String],
    ) -> Result<Self, Vec<FieldError>> {
        let (candidate, (extensions, destinations)) =
            Candidate::from_doc_with(doc, egress, |doc, slug, errors| {
                let (names, own) = match &doc.extensions {
                    Some(list) => (list.as_slice(), true),
                    None => (default_extensions, false),
                };
                let extensions = crate::extensions::configure(doc, names, own, errors);
                if let Some(r) = doc.van.as_ref().and_then(|v| v.rate_limit) {
                    check_rate(r, "van", errors);
                }
                let configured = configure(&doc.destinations, slug, egress, errors);
                check_row_destinations(doc, &configured, errors);
                (extensions, configured)
            })?;
        let van = candidate.van().map(|settings| Configured {
            name: crate::ledger::VAN.to_owned(),
            select: Select::Synced,
            rate_limit: settings
                .rate_limit
                .unwrap_or(van::METADATA.default_rate_limit),
            adapter: Arc::new(van::Van::default()),
        });
        Ok(Self {
            candidate,
            van,
            csv: Arc::new(csv::Csv),
            destinations,
            extensions,
        })
    }

    /// [`Compiled::from_doc_in`] with the deployment's rules: its egress and its default
    /// extensions.
    pub fn for_deployment(
        doc: crate::candidate::CandidateDoc,
        connectors: &Connectors,
    ) -> Result<Self, Vec<FieldError>> {
        Self::from_doc_in(doc, connectors.egress, &connectors.default_extensions)
    }

    /// The lowest cap an enabled extension puts on the day's requests to destinations that
    /// charge for them, if any does.
    pub fn daily_request_cap(&self) -> Option<u64> {
        self.extensions
            .iter()
            .filter_map(|e| e.extension.daily_request_cap(&e.settings))
            .min()
    }

    /// The enabled extensions that implement `hook`, in order.
    pub fn extensions_with(
        &self,
        hook: crate::extensions::Hook,
    ) -> impl Iterator<Item = &crate::extensions::Enabled> {
        self.extensions.iter().filter(move |e| e.has(hook))
    }

    /// A configured destination by name.
    pub fn destination(&self, name: &str) -> Option<&Configured> {
        self.destinations.iter().find(|d| d.name == name)
    }

    /// The destinations that mirror each call's whole story (`sql`: its kind's
    /// [`Metadata::waits_for_call`]), written again when a call's other deliveries change.
    pub fn mirrors(&self) -> Vec<&Configured> {
        self.destinations
            .iter()
            .filter(|d| d.adapter.metadata().waits_for_call)
            .collect()
    }

    /// The destination a queue message names: VAN when it names none.
    pub fn target(&self, name: Option<&str>) -> Option<&Configured> {
        match name {
            None => self.van.as_ref(),
            Some(name) => self.destination(name),
        }
    }

    pub fn into_doc(self) -> crate::candidate::CandidateDoc {
        self.candidate.into_doc()
    }
}

impl std::ops::Deref for Compiled {
    type Target = Candidate;

    fn deref(&self) -> &Candidate {
        &self.candidate
    }
}

/// A result row may name only destinations that take the rows naming them.
fn check_row_destinations(
    doc: &crate::candidate::CandidateDoc,
    configured: &[Configured],
    errors: &mut Vec<FieldError>,
) {
    for (i, row) in doc.results.iter().enumerate() {
        for (j, name) in row.destinations.iter().enumerate() {
            let field = format!("results[{i}].destinations[{j}]");
            let Some(d) = doc.destinations.iter().find(|d| &d.name == name) else {
                let names: Vec<&str> = doc.destinations.iter().map(|d| d.name.as_str()).collect();
                errors.push(FieldError::new(
                    field,
                    format!("{name:?} is not a configured destination; the document has {names:?}"),
                ));
                continue;
            };
            let takes_rows = configured
                .iter()
                .find(|c| &c.name == name)
                .map_or(d.select == Some(Select::Rows), |c| c.select == Select::Rows);
            if !takes_rows {
                errors.push(FieldError::new(
                    field,
                    format!("destination {name:?} does not take calls by row: set its `select` to \"rows\" for rows to choose what it receives"),
                ));
            }
        }
    }
}

/// The longest destination name: it is part of ledger keys and metric names.
const MAX_NAME: usize = 40;

/// The most destinations (besides VAN and the CSV) one candidate may have: every call
/// becomes a delivery to each, so the number multiplies the night's work.
pub const MAX_DESTINATIONS: usize = 20;

/// The slowest pace a destination may ask for: one request a minute. Slower would leave a
/// night's calls undelivered for days.
pub const MIN_RATE_LIMIT: f64 = 1.0 / 60.0;
/// The fastest: far above any receiver's own limit (VAN's highest key profile is 200/s).
pub const MAX_RATE_LIMIT: f64 = 1000.0;

/// Check a document's `destinations` and build their adapters. Paths are
/// `destinations[i].…`. `van` and `csv` may be listed (they are always there); any other
/// entry is a configurable kind with a unique name.
/// `rate` (the document's `{at}.rate_limit`) is a rate the governor can keep.
fn check_rate(rate: f64, at: &str, errors: &mut Vec<FieldError>) {
    if !(MIN_RATE_LIMIT..=MAX_RATE_LIMIT).contains(&rate) {
        errors.push(FieldError::new(
            format!("{at}.rate_limit"),
            format!("{rate} is not a usable rate: give requests a second, from {MIN_RATE_LIMIT:.4} (one a minute) to {MAX_RATE_LIMIT}"),
        ));
    }
}

pub fn configure(
    docs: &[DestinationDoc],
    slug: Option<&CandidateSlug>,
    egress: Egress,
    errors: &mut Vec<FieldError>,
) -> Vec<Configured> {
    let configurable = docs
        .iter()
        .filter(|d| !matches!(d.kind.as_str(), "van" | "csv"))
        .count();
    if configurable > MAX_DESTINATIONS {
        // Not compiled at all: each is a delivery per call and a compile per load.
        errors.push(FieldError::new(
            "destinations",
            format!("lists {configurable} destinations besides van and csv; a candidate may have at most {MAX_DESTINATIONS}"),
        ));
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, doc) in docs.iter().enumerate() {
        let at = format!("destinations[{i}]");
        let before = errors.len();
        if let Some(first) = docs[..i].iter().position(|d| d.name == doc.name) {
            errors.push(FieldError::new(
                format!("{at}.name"),
                format!("{:?} is also the name of destinations[{first}]: give each destination its own name", doc.name),
            ));
        }
        if let kind @ ("van" | "csv") = doc.kind.as_str() {
            if doc.name != kind {
                errors.push(FieldError::new(
                    format!("{at}.name"),
                    format!("the {kind} destination is named {kind:?}: there is one, set up by the document's `van` settings and strategy"),
                ));
            }
            if !doc.settings.is_empty() || doc.select.is_some() || doc.rate_limit.is_some() {
                errors.push(FieldError::new(
                    at.clone(),
                    format!("the {kind} destination takes no settings here: the `van` settings, `strategy` and the result rows decide what it receives"),
                ));
            }
            continue;
        }
        if !valid_name(&doc.name) {
            errors.push(FieldError::new(
                format!("{at}.name"),
                format!("{:?} is not a destination name: use a lowercase letter, then letters, digits or '-' (at most {MAX_NAME}), such as \"warehouse-hook\"; \"van\" and \"csv\" are taken", doc.name),
            ));
        }
        if let Some(r) = doc.rate_limit {
            check_rate(r, &at, errors);
        }
        let adapter: Option<Arc<dyn Destination>> = match doc.kind.as_str() {
            "webhook" => webhook::Webhook::from_doc(&doc.settings, &at, slug, egress, errors)
                .map(|w| Arc::new(w) as Arc<dyn Destination>),
            "http_template" => {
                http::HttpDestination::from_doc(&doc.settings, &at, slug, egress, errors)
                    .map(|h| Arc::new(h) as Arc<dyn Destination>)
            }
            "sql" => sql::Sql::from_doc(&doc.settings, &at, slug, errors)
                .map(|s| Arc::new(s) as Arc<dyn Destination>),
            "action_network" => {
                action_network::ActionNetwork::from_doc(&doc.settings, &at, slug, errors)
                    .map(|a| Arc::new(a) as Arc<dyn Destination>)
            }
            other => {
                let known: Vec<&str> = KINDS.iter().map(|k| k.kind).collect();
                errors.push(FieldError::new(
                    format!("{at}.kind"),
                    format!("{other:?} is not a destination kind; known: {known:?}"),
                ));
                None
            }
        };
        if let (Some(adapter), true) = (adapter, errors.len() == before) {
            out.push(Configured {
                name: doc.name.clone(),
                select: doc.select.unwrap_or_default(),
                rate_limit: doc
                    .rate_limit
                    .unwrap_or(adapter.metadata().default_rate_limit),
                adapter,
            });
        }
    }
    out
}

fn valid_name(name: &str) -> bool {
    name.len() <= MAX_NAME
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !matches!(name, "van" | "csv")
}

/// A destination's JSON secret, read only if it is one of the candidate's own: a missing
/// or unreadable secret is a setup error, an unavailable store a retryable one.
pub(crate) async fn own_secret<T: serde::de::DeserializeOwned>(
    ctx: DeliverContext<'_>,
    name: &str,
) -> Result<T, DeliveryError> {
    if !crate::candidate::is_own_secret(&ctx.candidate.slug, name) {
        return Err(DeliveryError::Setup(format!(
            "secret {name:?} is not one of candidate {}'s secrets",
            ctx.candidate.slug
        )));
    }
    match ctx.secrets.get(name).await {
        Ok(value) => value
            .json::<T>(name)
            .map_err(|e| DeliveryError::Setup(e.to_string())),
        Err(e @ crate::ports::StoreError::SecretNotFound(_)) => {
            Err(DeliveryError::Setup(e.to_string()))
        }
        Err(e) => Err(DeliveryError::Retryable {
            message: e.to_string(),
            status: None,
            answer: None,
        }),
    }
}

/// `raw` checked by the egress rules and resolved to the addresses a request may use, and
/// a client builder bound to them. `what` names the URL in errors ("the webhook URL").
pub(crate) async fn pinned_client(
    egress: Egress,
    raw: &str,
    timeout: std::time::Duration,
    what: &str,
) -> Result<(url::Url, reqwest::ClientBuilder), DeliveryError> {
    let url = egress
        .check_url(raw)
        .map_err(|e| DeliveryError::Setup(format!("{what} {e}")))?;
    let addrs = egress.resolve(&url).await.map_err(|e| match e {
        // DNS may answer again later; an address the deployment may not reach will not
        // become reachable by waiting.
        crate::egress::EgressError::Unresolved(_) => DeliveryError::Retryable {
            message: format!("{what}'s {e}"),
            status: None,
            answer: None,
        },
        e => DeliveryError::Setup(format!("{what} {e}")),
    })?;
    let builder = egress.builder(&url, &addrs, timeout);
    Ok((url, builder))
}

/// What a kind lets a campaign set for TLS, for advice that names only what it takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TlsSettings {
    /// Public roots only, no client certificate (the webhook).
    PublicOnly,
    /// `client_certificate`, `client_key` and `ca_bundle` in the destination's secret.
    FromSecret,
}

/// A request that got no answer: a TLS refusal is a setup problem (nothing reached the
/// destination, and nothing will until the certificates are fixed), with advice fitting
/// what the kind takes (`tls`); anything else may pass later.
pub(crate) fn transport_error(e: reqwest::Error, who: &str, tls: TlsSettings) -> DeliveryError {
    use crate::egress::TlsRefusal;
    if let Some(refusal) = crate::egress::tls_refusal(&e) {
        return DeliveryError::Setup(match (refusal, tls) {
            (TlsRefusal::ClientCertificate(alert), TlsSettings::FromSecret) => format!(
                "the server refused the TLS handshake ({alert}): it does not accept the client certificate — put the certificate and key the partner issued for this deployment in the destination's secret (client_certificate, client_key), then POST /retry with this destination"
            ),
            (TlsRefusal::ServerCertificate(why), TlsSettings::FromSecret) => format!(
                "the server's TLS certificate does not verify ({why}): if the partner uses a private CA, put its certificates in the destination's secret as ca_bundle, then POST /retry with this destination"
            ),
            (TlsRefusal::ClientCertificate(alert), TlsSettings::PublicOnly) => format!(
                "the server refused the TLS handshake ({alert}): it asks for a client certificate, which {who} does not send — receive the calls on an endpoint without client certificates, or use an http_template destination (it takes client_certificate and client_key), then POST /retry"
            ),
            (TlsRefusal::ServerCertificate(why), TlsSettings::PublicOnly) => format!(
                "the server's TLS certificate does not verify ({why}): {who} trusts only certificates from public CAs — give the receiver one (an http_template destination can trust a private CA through ca_bundle), then POST /retry"
            ),
        });
    }
    DeliveryError::Retryable {
        message: format!(
            "{who} did not answer ({}): {}",
            if e.is_timeout() {
                "timed out"
            } else {
                "no connection"
            },
            crate::egress::transport_message(e)
        ),
        status: None,
        answer: None,
    }
}

/// A kind's `timeout_secs`: 1 to 30 seconds, `default` when not given; `advice` follows
/// the range in the error.
pub(crate) fn timeout_setting(
    secs: Option<u64>,
    default: std::time::Duration,
    at: &str,
    advice: &str,
    errors: &mut Vec<FieldError>,
) -> std::time::Duration {
    match secs {
        None => default,
        Some(t @ 1..=30) => std::time::Duration::from_secs(t),
        Some(t) => {
            errors.push(FieldError::new(
                format!("{at}.timeout_secs"),
                format!("{t} is out of range: give 1–30 seconds{advice}"),
            ));
            default
        }
    }
}

/// Read a kind's settings from the entry's other fields, naming the field at fault.
pub(crate) fn settings<T: serde::de::DeserializeOwned>(
    settings: &serde_json::Map<String, Value>,
    at: &str,
    errors: &mut Vec<FieldError>,
) -> Option<T> {
    let value = Value::Object(settings.clone());
    match serde_path_to_error::deserialize::<_, T>(value) {
        Ok(s) => Some(s),
        Err(e) => {
            let path = e.path().to_string();
            let field = if path == "." || path.is_empty() {
                at.to_owned()
            } else {
                format!("{at}.{path}")
            };
            errors.push(FieldError::new(field, e.into_inner().to_string()));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn docs(json: Value) -> Vec<DestinationDoc> {
        serde_json::from_value(json).unwrap()
    }

    fn check(json: Value) -> (Vec<Configured>, Vec<FieldError>) {
        let slug = CandidateSlug::parse("ny14-smith").unwrap();
        let mut errors = Vec::new();
        let out = configure(&docs(json), Some(&slug), Egress::STRICT, &mut errors);
        (out, errors)
    }

    fn fields(errors: &[FieldError]) -> Vec<&str> {
        errors.iter().map(|e| e.field.as_str()).collect()
    }

    #[test]
    fn a_webhook_is_configured_with_defaults() {
        let (out, errors) = check(serde_json::json!([
            {"name": "van", "kind": "van"},
            {"name": "hook", "kind": "webhook", "url": "https://hooks.example.org/calls",
             "secret_name": "callsync/ny14-smith/hook"}
        ]));
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].name, "hook");
        assert_eq!(out[0].kind(), "webhook");
        assert_eq!(out[0].select, Select::Synced);
        assert_eq!(out[0].rate_limit, webhook::METADATA.default_rate_limit);
    }

    #[test]
    fn names_kinds_and_rates_are_checked_by_path() {
        let (_, errors) = check(serde_json::json!([
            {"name": "hook", "kind": "webhook", "url": "https://a.example.org/",
             "secret_name": "callsync/ny14-smith/a"},
            {"name": "hook", "kind": "webhook", "url": "https://b.example.org/",
             "secret_name": "callsync/ny14-smith/b", "rate_limit": 0},
            {"name": "Sheet", "kind": "spreadsheet"},
            {"name": "vanity", "kind": "van"},
            {"name": "csv", "kind": "csv", "select": "all"}
        ]));
        assert_eq!(
            fields(&errors),
            [
                "destinations[1].name",
                "destinations[1].rate_limit",
                "destinations[2].name",
                "destinations[2].kind",
                "destinations[3].name",
                "destinations[4]"
            ],
            "{errors:?}"
        );
        assert!(errors[3].message.contains("\"webhook\""), "{}", errors[3]);
    }

    #[test]
    fn the_reserved_names_cannot_name_another_kind() {
        let (_, errors) = check(serde_json::json!([
            {"name": "van", "kind": "webhook", "url": "https://a.example.org/",
             "secret_name": "callsync/ny14-smith/a"}
        ]));
        assert_eq!(fields(&errors), ["destinations[0].name"]);
    }
}
