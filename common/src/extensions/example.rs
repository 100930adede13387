//! `example`: exercises every hook, and is the file to copy when writing the next
//! extension. It does nothing unless its settings ask for it:
//!
//! ```json
//! "extensions": ["example"],
//! "extension_settings": {"example": {
//!     "note": "called by the weekend bank",
//!     "drop_results": ["hung up in opening"],
//!     "fail_results": [],
//!     "fail_destinations": [],
//!     "tag": "weekend"
//! }}
//! ```
//!
//! - `note`: kept on every call's ledger record (`after_read`, annotate);
//! - `drop_results`: result keys whose calls are delivered nowhere (`after_read`, drop);
//! - `fail_results`: result keys whose calls fail with this extension's error (`after_read`,
//!   how a failing hook looks: only those calls fail);
//! - `fail_destinations`: destination names whose deliveries fail with this extension's
//!   error before they are sent (`before_send`, how a failing hook looks there: only those
//!   deliveries fail);
//! - `tag`: added as `"example": {"tag": …}` to what webhooks are sent (`before_send`; VAN's
//!   post and a templated destination's rendered request have fixed shapes and are left
//!   alone);
//! - the report gets `extensions.example` with the day's count of delivered calls per
//!   destination (`on_settled`).
//!
//! To write a new extension: copy this file, give it its own [`Metadata`] (a unique name,
//! what it does, whether it spends money and through which hooks, whether it needs
//! settings, and the hooks it implements), implement only those hooks, check its settings
//! in `check_settings`, add its line to [`super::REGISTRY`], and test each hook through a
//! night (see `tests/tests/extensions.rs`).

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{Extension, Hook, HookError, Metadata, Read, SendContext, Settled};
use crate::call::Call;
use crate::candidate::{Candidate, CandidateDoc};
use crate::ledger::CallState;
use crate::mapping::FieldError;

pub const METADATA: Metadata = Metadata {
    name: "example",
    display_name: "Example",
    description: "shows every hook: notes, drops or fails calls by result, tags what webhooks receive, and adds delivered counts to the report",
    spends_money: false,
    money_spending_hooks: &[],
    needs_settings: false,
    hooks: &[Hook::AfterRead, Hook::BeforeSend, Hook::OnSettled],
};

/// The example's settings (`extension_settings.example`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    #[serde(default)]
    note: Option<String>,
    #[serde(default)]
    drop_results: Vec<String>,
    #[serde(default)]
    fail_results: Vec<String>,
    #[serde(default)]
    fail_destinations: Vec<String>,
    #[serde(default)]
    tag: Option<String>,
}

impl Settings {
    /// Checked when the document is saved, so a run only meets settings that read.
    fn read(value: &Value) -> Result<Self, String> {
        if value.is_null() {
            return Ok(Self::default());
        }
        serde_json::from_value(value.clone()).map_err(|e| e.to_string())
    }
}

/// A result key as the mapping keeps it: trimmed and lowercase.
fn key(raw: &str) -> String {
    raw.trim().to_lowercase()
}

#[derive(Debug, Default)]
pub struct Example;

#[async_trait]
impl Extension for Example {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    fn check_settings(
        &self,
        settings: &Value,
        _doc: &CandidateDoc,
        at: &str,
        errors: &mut Vec<FieldError>,
    ) {
        if let Err(e) = Settings::read(settings) {
            errors.push(FieldError::new(
                at,
                format!("{e}: the example takes note, drop_results, fail_results, fail_destinations and tag"),
            ));
        }
    }

    /// Annotate, drop or fail one call. Runs for every call read, before planning: no I/O.
    fn after_read(
        &self,
        settings: &Value,
        _candidate: &Candidate,
        call: &Call,
    ) -> Result<Read, String> {
        let settings = Settings::read(settings)?;
        let result = call.result.as_str();
        if settings.fail_results.iter().any(|r| key(r) == result) {
            return Err(format!(
                "result {result:?} is listed in fail_results: take it off to let these calls through"
            ));
        }
        if settings.drop_results.iter().any(|r| key(r) == result) {
            return Ok(Read::Drop(format!(
                "result {result:?} is listed in drop_results"
            )));
        }
        Ok(settings.note.map_or(Read::Keep, Read::Note))
    }

    /// Amend a payload for its kind: here, tag what webhooks receive.
    async fn before_send(
        &self,
        ctx: SendContext<'_>,
        payload: &mut Value,
    ) -> Result<(), HookError> {
        let settings = Settings::read(ctx.settings).map_err(HookError::Failed)?;
        if settings
            .fail_destinations
            .iter()
            .any(|d| d == ctx.destination)
        {
            return Err(HookError::Failed(format!(
                "destination {:?} is listed in fail_destinations: take it off to let its deliveries through",
                ctx.destination
            )));
        }
        let Some(tag) = settings.tag else {
            return Ok(());
        };
        // Other kinds' payloads have a fixed shape (VAN's post, a rendered request): an
        // extension amends only what it knows the kind sends.
        if let ("webhook", Value::Object(map)) = (ctx.kind, payload) {
            map.insert("example".into(), json!({ "tag": tag }));
        }
        Ok(())
    }

    /// Add to the day's report.
    async fn on_settled(&self, day: Settled<'_>) -> Result<Option<Value>, String> {
        let delivered: serde_json::Map<String, Value> = day
            .deliveries
            .iter()
            .map(|(name, counts)| {
                let n = counts.get(&CallState::Finished).copied().unwrap_or(0);
                (name.clone(), n.into())
            })
            .collect();
        Ok(Some(json!({ "delivered": delivered })))
    }
}
