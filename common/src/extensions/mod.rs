//! Extensions: named plug-ins for what differs between campaigns, so those differences never
//! become `if` statements in the core. An extension has [`Metadata`] and implements only the
//! hooks it uses, at fixed points of the flow:
//!
//! - [`Extension::after_read`] — after a source's calls are read, before they are planned:
//!   keep, annotate (the note is kept on the call's ledger record) or drop a call (it is
//!   recorded `ignored`, with the extension's reason);
//! - [`Extension::before_send`] — before a delivery is sent, for any kind, VAN's included:
//!   amend the payload for its destination kind;
//! - [`Extension::on_settled`] — when a day is reported: add to the report.
//!
//! Hooks run in the order the extensions are listed, each seeing what the earlier ones did.
//! A hook that fails fails only the call or delivery it was given, with its name in the
//! error (`extension_failed`).
//!
//! A deployment enables extensions by default with `CALLSYNC_EXTENSIONS` (a comma list, no
//! spaces); a candidate's `extensions` list, when present, replaces that list for it. Each
//! extension's settings live in the document's `extension_settings`, under its name, and are
//! checked when the document is saved. A new extension is one file in this folder and a
//! line in [`REGISTRY`]; [`example`] is the one to copy.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;
use serde_json::Value;

use crate::call::Call;
use crate::candidate::{Candidate, CandidateDoc};
use crate::connect::Connectors;
use crate::ledger::DayKey;
use crate::mapping::FieldError;
use crate::ports::{Clock, SecretStore};
use crate::van::RequestMeter;

pub mod cost_guard;
pub mod example;
pub mod person_match;
pub mod phone_ids;

/// What an extension is, for `GET /extensions` and the document check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Metadata {
    pub name: &'static str,
    pub display_name: &'static str,
    pub description: &'static str,
    /// Whether it can cost the campaign money (a VAN request each time it runs, say).
    pub spends_money: bool,
    /// The hooks through which it spends (empty when it does not).
    pub money_spending_hooks: &'static [Hook],
    /// Whether it needs `extension_settings.<name>` to work.
    pub needs_settings: bool,
    /// The hooks it implements.
    pub hooks: &'static [Hook],
}

/// The points of the flow an extension can hook into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Hook {
    AfterRead,
    BeforeSend,
    OnSettled,
    /// Caps the day's requests to destinations that charge for them
    /// ([`Extension::daily_request_cap`]).
    RequestCap,
}

/// What [`Extension::after_read`] decides for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    Keep,
    /// Keep it, with a note kept on its ledger record.
    Note(String),
    /// Do not deliver it anywhere: recorded `ignored`, with this reason.
    Drop(String),
}

/// Why a hook could not do its work on a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// It may work later (a service it needs was unavailable): the delivery is tried again.
    #[error("{0}")]
    Retryable(String),
    /// It will not work as things are: the delivery ends in `unattempted_error`.
    #[error("{0}")]
    Failed(String),
    /// A request it needed would pass the day's cap on requests that cost money
    /// (`cost_guard`): the call goes to the CSV, as a post past the cap does.
    #[error("{0}")]
    OverCap(String),
}

/// What a hook around a delivery may use.
#[derive(Clone, Copy)]
pub struct SendContext<'a> {
    pub secrets: &'a dyn SecretStore,
    pub connectors: &'a Connectors,
    pub candidate: &'a Candidate,
    pub clock: &'a dyn Clock,
    /// Counts requests to a destination that charges for them before they are sent.
    pub meter: Option<&'a Arc<dyn RequestMeter>>,
    /// The call, when the delivery's record holds it (VAN's does; another destination's
    /// holds its planned payload only).
    pub call: Option<&'a Call>,
    /// The destination's name and kind (`van`, `webhook`, `http_template`, …).
    pub destination: &'a str,
    pub kind: &'static str,
    /// This extension's settings (`null` when the document has none).
    pub settings: &'a Value,
}

impl SendContext<'_> {
    /// When this send is VAN's: its stored post as `payload` holds it now, and the database
    /// it goes to. `None` for any other kind, and for a post VAN's adapter refuses itself.
    pub fn van_post(
        &self,
        payload: &Value,
    ) -> Option<(crate::ledger::StoredPost, crate::van::DatabaseMode)> {
        if self.kind != crate::ledger::VAN {
            return None;
        }
        let post: crate::ledger::StoredPost = serde_json::from_value(payload.clone()).ok()?;
        let mode = post
            .database_mode
            .or(self.candidate.van().map(|v| v.database_mode))?;
        Some((post, mode))
    }
}

impl HookError {
    /// VAN's answer to a hook's request: over the day's cap, worth trying again, or a
    /// failure that `what` describes.
    pub fn from_van(e: crate::van::VanError, what: &str) -> Self {
        match e {
            crate::van::VanError::OverCap(m) => Self::OverCap(m),
            e if e.is_retryable() => Self::Retryable(e.to_string()),
            e => Self::Failed(format!("{what}: {e}")),
        }
    }
}

impl fmt::Debug for SendContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendContext")
            .field("candidate", &self.candidate.slug)
            .field("destination", &self.destination)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// What [`Extension::configured`] may use: read secrets, build clients; never send.
#[derive(Clone, Copy)]
pub struct SetupContext<'a> {
    pub secrets: &'a dyn SecretStore,
    pub connectors: &'a Connectors,
    pub candidate: &'a Candidate,
    pub settings: &'a Value,
}

impl fmt::Debug for SetupContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupContext")
            .field("candidate", &self.candidate.slug)
            .finish_non_exhaustive()
    }
}

/// What [`Extension::on_settled`] sees of a day being reported.
#[derive(Debug, Clone, Copy)]
pub struct Settled<'a> {
    pub candidate: &'a Candidate,
    pub day: &'a DayKey,
    /// Each destination's deliveries of the day by state (`van` and `csv` included).
    pub deliveries: &'a BTreeMap<String, BTreeMap<crate::ledger::CallState, u64>>,
    pub settings: &'a Value,
}

/// The extension point. Every hook has a default that does nothing; an extension
/// implements the ones it lists in its [`Metadata::hooks`].
#[async_trait]
pub trait Extension: Send + Sync + fmt::Debug {
    fn metadata(&self) -> &'static Metadata;

    /// Check `settings` (the document's `extension_settings.<name>`, `null` if absent);
    /// problems go into `errors` under `at`.
    fn check_settings(
        &self,
        _settings: &Value,
        _doc: &CandidateDoc,
        _at: &str,
        _errors: &mut Vec<FieldError>,
    ) {
    }

    /// What keeps it from working for this candidate now (a secret it needs is absent or
    /// unreadable, settings the live system refuses): each problem, empty when it is fully
    /// configured. Any problem keeps the candidate's nightly from running. Reads secrets at
    /// most; sends nothing, and never returns a secret.
    async fn configured(&self, _ctx: SetupContext<'_>) -> Vec<String> {
        Vec::new()
    }

    /// The most requests a day to destinations that charge for them (VAN) this extension
    /// allows the candidate, counted with every other request of the day; a request past
    /// it is not sent, and its call goes to the CSV instead.
    fn daily_request_cap(&self, _settings: &Value) -> Option<u64> {
        None
    }

    /// After a source's calls are read: keep, annotate or drop `call`. An `Err` fails this
    /// call alone (`unattempted_error`, naming the extension).
    fn after_read(
        &self,
        _settings: &Value,
        _candidate: &Candidate,
        _call: &Call,
    ) -> Result<Read, String> {
        Ok(Read::Keep)
    }

    /// Before a delivery is sent: amend `payload` (what the destination's kind sends; VAN's
    /// is its stored post) for its kind.
    async fn before_send(
        &self,
        _ctx: SendContext<'_>,
        _payload: &mut Value,
    ) -> Result<(), HookError> {
        Ok(())
    }

    /// When a day is reported: what to add to the report under the extension's name.
    async fn on_settled(&self, _day: Settled<'_>) -> Result<Option<Value>, String> {
        Ok(None)
    }
}

/// How to make one extension (a fresh instance per compiled candidate).
pub type Make = fn() -> Arc<dyn Extension>;

/// Every extension, by name: its metadata and how to make one.
pub const REGISTRY: &[(&Metadata, Make)] = &[
    (&phone_ids::METADATA, || {
        Arc::new(phone_ids::PhoneIds::default())
    }),
    (&cost_guard::METADATA, || Arc::new(cost_guard::CostGuard)),
    (&example::METADATA, || Arc::new(example::Example)),
    (&person_match::METADATA, || {
        Arc::new(person_match::PersonMatch::default())
    }),
];

/// The names [`REGISTRY`] knows, for error messages.
pub fn known() -> Vec<&'static str> {
    REGISTRY.iter().map(|(m, _)| m.name).collect()
}

/// VAN clients an extension keeps while its candidate is compiled, one per database, each
/// request counted by the send's meter.
#[derive(Debug, Default)]
pub struct VanClients {
    clients: tokio::sync::Mutex<
        std::collections::HashMap<crate::van::DatabaseMode, crate::van::VanClient>,
    >,
}

impl VanClients {
    /// The candidate's client for database `mode`.
    async fn get(
        &self,
        ctx: SendContext<'_>,
        mode: crate::van::DatabaseMode,
    ) -> Result<crate::van::VanClient, HookError> {
        let mut clients = self.clients.lock().await;
        let client = match clients.get(&mode) {
            Some(c) => c.clone(),
            None => {
                let c = ctx
                    .connectors
                    .van(ctx.secrets, ctx.candidate, Some(mode))
                    .await
                    .map_err(|e| {
                        if e.is_transient() {
                            HookError::Retryable(e.to_string())
                        } else {
                            HookError::Failed(e.to_string())
                        }
                    })?;
                clients.insert(mode, c.clone());
                c
            }
        };
        Ok(match ctx.meter {
            Some(meter) => client.metered(Arc::clone(meter)),
            None => client,
        })
    }

    /// `request` sent with the candidate's client for database `mode`; when VAN refuses
    /// its key (401) and the key was replaced since this client read it, sent once more
    /// with the new one (see [`crate::connect::Connectors::van_key_replaced`]).
    pub async fn send<T, F, Fut>(
        &self,
        ctx: SendContext<'_>,
        mode: crate::van::DatabaseMode,
        request: F,
    ) -> Result<Result<T, crate::van::VanError>, HookError>
    where
        F: Fn(crate::van::VanClient) -> Fut,
        Fut: std::future::Future<Output = Result<T, crate::van::VanError>>,
    {
        let client = self.get(ctx, mode).await?;
        match request(client.clone()).await {
            Err(refused) if refused.status() == Some(401) => {
                if !ctx
                    .connectors
                    .van_key_replaced(ctx.secrets, ctx.candidate, mode, &client)
                    .await
                {
                    return Ok(Err(refused));
                }
                {
                    let mut clients = self.clients.lock().await;
                    if clients
                        .get(&mode)
                        .is_some_and(|c| c.rate_key() == client.rate_key())
                    {
                        clients.remove(&mode);
                    }
                }
                Ok(request(self.get(ctx, mode).await?).await)
            }
            answer => Ok(answer),
        }
    }

    /// Whether the candidate's VAN key reads (for [`Extension::configured`]).
    pub async fn check(ctx: SetupContext<'_>, name: &str) -> Vec<String> {
        if ctx.candidate.van().is_none() {
            return vec![format!(
                "it works in VAN, and the candidate has no `van` settings: add them, or take {name} off its extensions"
            )];
        }
        match ctx.connectors.van(ctx.secrets, ctx.candidate, None).await {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        }
    }
}

/// An extension enabled for one candidate, with its settings.
#[derive(Debug, Clone)]
pub struct Enabled {
    pub extension: Arc<dyn Extension>,
    pub settings: Value,
}

impl Enabled {
    pub fn name(&self) -> &'static str {
        self.extension.metadata().name
    }

    pub fn has(&self, hook: Hook) -> bool {
        self.extension.metadata().hooks.contains(&hook)
    }
}

/// The extensions `names` enables (the candidate's list, else the deployment's), checked,
/// with their settings from `settings`. Unknown names and settings for unknown extensions
/// are refused, naming the known ones. `from_document` says whether `names` is the
/// document's own list (errors point at `extensions[i]`) or the deployment's.
pub fn configure(
    doc: &CandidateDoc,
    names: &[String],
    from_document: bool,
    errors: &mut Vec<FieldError>,
) -> Vec<Enabled> {
    let settings = &doc.extension_settings;
    let mut out: Vec<Enabled> = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let Some((_, make)) = REGISTRY.iter().find(|(m, _)| m.name == name) else {
            let (field, whose) = if from_document {
                (format!("extensions[{i}]"), "")
            } else {
                (
                    "extensions".to_owned(),
                    " (named by the deployment's CALLSYNC_EXTENSIONS: fix it there, or give the document its own `extensions` list)",
                )
            };
            errors.push(FieldError::new(
                field,
                format!("{name:?} is not an extension{whose}; known: {:?}", known()),
            ));
            continue;
        };
        if out.iter().any(|e| e.name() == name) {
            errors.push(FieldError::new(
                format!("extensions[{i}]"),
                format!("{name:?} is listed twice: list each extension once"),
            ));
            continue;
        }
        let extension = make();
        let value = settings.get(name).cloned().unwrap_or(Value::Null);
        let before = errors.len();
        if extension.metadata().needs_settings && value.is_null() {
            errors.push(FieldError::new(
                format!("extension_settings.{name}"),
                format!("extension {name:?} needs settings: add them under extension_settings.{name} (see the README's reference of {name})"),
            ));
        } else {
            extension.check_settings(&value, doc, &format!("extension_settings.{name}"), errors);
        }
        if errors.len() == before {
            out.push(Enabled {
                extension,
                settings: value,
            });
        }
    }
    for name in settings.keys() {
        if !REGISTRY.iter().any(|(m, _)| m.name == name) {
            errors.push(FieldError::new(
                format!("extension_settings.{name}"),
                format!("{name:?} is not an extension; known: {:?}", known()),
            ));
        }
    }
    out
}
