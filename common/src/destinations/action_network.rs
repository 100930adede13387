//! Action Network (OSDI): each contact's outcome recorded on the person — tags added and
//! removed, custom fields set — by one person signup helper call per call
//! (`POST /api/v2/people/` with `person`, `add_tags`, `remove_tags`), which finds the person
//! by phone (Action Network matches by email and phone) or creates them.
//!
//! Email and SMS subscriptions are never changed, for new and existing people alike:
//! callsync never sends an email address (a new person is then not subscribed to any email
//! list, which only happens to a new person with an email address) and never sends a
//! `status` for the phone (a new number starts unsubscribed; an existing one keeps its own).
//! Phone-bank contacts have not opted in to either.
//!
//! Action Network ignores tag names it does not have, silently: `validate` lists the
//! group's tags and names every configured tag that is missing, and `GET /configure` lists
//! them. Its limit is 4 requests a second per API key, kept by the shared governor for every
//! destination using one key (the key is read from the candidate's secret, and only a
//! digest of it names the schedule). 429, 5xx, timeouts and lost connections are tried
//! again with back-off; any other answer is final (`attempted_error`, with Action Network's
//! `{"error": …}` kept).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    DeliverContext, DeliveryError, Destination, Inspection, Metadata, own_secret, settings,
    transport_error,
};
use crate::call::Call;
use crate::candidate::{self, Candidate};
use crate::ledger::{DeliveryPlan, DeliveryRecord, Receipt};
use crate::mapping::{FieldError, ResultRow};
use crate::values::{CandidateSlug, ResultKey, sha256_hex};

pub const METADATA: Metadata = Metadata {
    kind: "action_network",
    description: "each contact's outcome on their Action Network person: tags added and removed, custom fields set",
    spends_money: false,
    // "We rate limit the API to a maximum of 4 calls per second" (per API key). Requests
    // leave at their slots and arrive with some jitter: at exactly 4 the fifth of five can
    // land within a second of the first, so the schedule keeps an eighth below.
    default_rate_limit: 3.5,
    resends_updates: true,
    configurable: true,
    batches: false,
    waits_for_call: false,
    codes: super::DESTINATION_CODES,
    retry: super::Retry::Backoff,
};

/// Action Network's API entry point.
pub const DEFAULT_BASE_URL: &str = "https://actionnetwork.org/api/v2/";
/// The most items a page of a collection holds (`per_page` is capped there).
pub const PAGE_SIZE: usize = 25;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Most result entries, tags per entry and custom fields one destination may configure.
const MAX_RESULTS: usize = 500;
const MAX_TAGS: usize = 50;
const MAX_FIELDS: usize = 20;
/// Action Network's names are short; a long one is a paste gone wrong.
const MAX_NAME: usize = 255;
/// The most tag pages `validate` reads (25 each): a group with more tags than that is
/// checked on its first 5,000.
const MAX_TAG_PAGES: usize = 200;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// Secrets Manager secret holding `{"api_key": "…"}`.
    secret_name: String,
    /// Per dialer result (any spelling the mapping accepts) or display name: the tags.
    #[serde(default)]
    results: BTreeMap<String, Tagging>,
    /// Custom field name → the call's value it holds.
    #[serde(default)]
    custom_fields: BTreeMap<String, Field>,
    #[serde(default)]
    timeout_secs: Option<u64>,
}

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct Tagging {
    #[serde(default)]
    add_tags: Vec<String>,
    #[serde(default)]
    remove_tags: Vec<String>,
}

/// A value of the call a custom field can hold (Action Network's values are strings).
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Field {
    /// The mapping's display name ("Strong support").
    DisplayName,
    /// The result as the dialer wrote it.
    Result,
    /// The call's day in the candidate's zone, `YYYY-MM-DD`.
    LocalDate,
    /// When the call started, RFC 3339 UTC.
    StartedAt,
    /// The agent's login.
    Agent,
}

/// The secret's JSON.
#[derive(Deserialize)]
struct ApiKey {
    api_key: String,
}

#[derive(Debug, Clone)]
pub struct ActionNetwork {
    secret_name: String,
    /// By normalised result or display name.
    results: BTreeMap<ResultKey, (String, Tagging)>,
    custom_fields: BTreeMap<String, Field>,
    timeout: Duration,
}

impl ActionNetwork {
    pub(super) fn from_doc(
        doc: &serde_json::Map<String, Value>,
        at: &str,
        slug: Option<&CandidateSlug>,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let s: Settings = settings(doc, at, errors)?;
        let before = errors.len();
        candidate::check_secret(
            &format!("{at}.secret_name"),
            &s.secret_name,
            "the Action Network API key ({\"api_key\": \"…\"})",
            slug,
            errors,
        );
        if s.results.len() > MAX_RESULTS {
            errors.push(FieldError::new(
                format!("{at}.results"),
                format!("lists {} results; at most {MAX_RESULTS}", s.results.len()),
            ));
        }
        let mut results: BTreeMap<ResultKey, (String, Tagging)> = BTreeMap::new();
        for (result, tagging) in s.results.iter().take(MAX_RESULTS) {
            let field = format!("{at}.results.{result}");
            let key = match ResultKey::normalise(result) {
                Ok(k) => k,
                Err(e) => {
                    errors.push(FieldError::new(field, e.to_string()));
                    continue;
                }
            };
            if let Some((first, _)) = results.get(&key) {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "is the same result as {first:?} (results match in any spelling): keep one"
                    ),
                ));
                continue;
            }
            for (list, tags) in [
                ("add_tags", &tagging.add_tags),
                ("remove_tags", &tagging.remove_tags),
            ] {
                if tags.len() > MAX_TAGS {
                    errors.push(FieldError::new(
                        format!("{field}.{list}"),
                        format!("lists {} tags; at most {MAX_TAGS}", tags.len()),
                    ));
                }
                for (i, tag) in tags.iter().enumerate() {
                    if let Some(why) = bad_name(tag) {
                        errors.push(FieldError::new(format!("{field}.{list}[{i}]"), why));
                    }
                }
            }
            if let Some(both) = tagging
                .add_tags
                .iter()
                .find(|t| tagging.remove_tags.contains(t))
            {
                errors.push(FieldError::new(
                    field.clone(),
                    format!("tag {both:?} is both added and removed: keep it in one list"),
                ));
            }
            if tagging.add_tags.is_empty() && tagging.remove_tags.is_empty() {
                errors.push(FieldError::new(
                    field.clone(),
                    "adds and removes no tag: give add_tags or remove_tags, or leave the result out",
                ));
            }
            results.insert(key, (result.clone(), tagging.clone()));
        }
        if s.custom_fields.len() > MAX_FIELDS {
            errors.push(FieldError::new(
                format!("{at}.custom_fields"),
                format!(
                    "lists {} fields; at most {MAX_FIELDS}",
                    s.custom_fields.len()
                ),
            ));
        }
        for name in s.custom_fields.keys() {
            if let Some(why) = bad_name(name) {
                errors.push(FieldError::new(format!("{at}.custom_fields.{name}"), why));
            }
        }
        if s.results.is_empty() && s.custom_fields.is_empty() {
            errors.push(FieldError::new(
                at,
                "records nothing: give `results` (tags per result) and/or `custom_fields`",
            ));
        }
        let timeout = super::timeout_setting(s.timeout_secs, DEFAULT_TIMEOUT, at, "", errors);
        (errors.len() == before).then_some(Self {
            secret_name: s.secret_name,
            results,
            custom_fields: s.custom_fields,
            timeout,
        })
    }

    /// The tags configured for `call`: by its result, else by its row's display name.
    fn tagging(&self, call: &Call, row: Option<&ResultRow>) -> Option<&Tagging> {
        self.results
            .get(&call.result)
            .or_else(|| {
                let name = ResultKey::normalise(&row?.display_name).ok()?;
                self.results.get(&name)
            })
            .map(|(_, t)| t)
    }

    /// Every configured tag, with where it is configured.
    fn tags(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (written, tagging) in self.results.values() {
            for (list, tags) in [
                ("add_tags", &tagging.add_tags),
                ("remove_tags", &tagging.remove_tags),
            ] {
                for tag in tags {
                    out.push((tag.clone(), format!("results.{written}.{list}")));
                }
            }
        }
        out
    }

    async fn api_key(&self, ctx: DeliverContext<'_>) -> Result<String, DeliveryError> {
        let key = own_secret::<ApiKey>(ctx, &self.secret_name).await?.api_key;
        if key.trim().is_empty() {
            return Err(DeliveryError::Setup(format!(
                "secret {:?}: api_key is empty; give the key from Action Network's API & Sync page",
                self.secret_name
            )));
        }
        Ok(key.trim().to_owned())
    }

    fn client(&self) -> Result<reqwest::Client, DeliveryError> {
        reqwest::Client::builder()
            .timeout(self.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| DeliveryError::Setup(format!("no HTTP client: {e}")))
    }

    /// Every tag of the key's group, page by page (25 a page; a `next` link is there even
    /// on the last page, so the listing ends at the first empty page). Paced at Action
    /// Network's 4 requests a second; a 429 is waited out once.
    async fn list_tags(&self, ctx: DeliverContext<'_>) -> Result<Vec<String>, DeliveryError> {
        let key = self.api_key(ctx).await?;
        let client = self.client()?;
        let base = base_url(ctx);
        let mut names = Vec::new();
        let mut page = 1;
        while page <= MAX_TAG_PAGES {
            let url = format!("{base}tags?page={page}&per_page={PAGE_SIZE}");
            let mut tries = 0;
            let response = loop {
                tries += 1;
                let response = client
                    .get(&url)
                    .header("OSDI-API-Token", &key)
                    .send()
                    .await
                    .map_err(|e| {
                        transport_error(e, "Action Network", super::TlsSettings::PublicOnly)
                    })?;
                if response.status().as_u16() == 429 && tries < 3 {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
                break response;
            };
            let status = response.status().as_u16();
            let body = response.text().await.unwrap_or_default();
            if !(200..300).contains(&status) {
                return Err(answer_error(status, &body, "listing the group's tags"));
            }
            let parsed: Value = serde_json::from_str(&body).unwrap_or_default();
            let items = parsed["_embedded"]["osdi:tags"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if items.is_empty() {
                break;
            }
            names.extend(
                items
                    .iter()
                    .filter_map(|t| t["name"].as_str().map(str::to_owned)),
            );
            page += 1;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Ok(names)
    }
}

fn bad_name(name: &str) -> Option<String> {
    if name.trim().is_empty() {
        return Some("is empty".into());
    }
    if name.len() > MAX_NAME {
        return Some(format!("is {} bytes long; at most {MAX_NAME}", name.len()));
    }
    if name.chars().any(char::is_control) {
        return Some("holds a control character".into());
    }
    None
}

/// The API's entry point: Action Network's, unless the deployment points elsewhere (a
/// local fake, `CALLSYNC_ACTION_NETWORK_BASE_URL`). Never the document's.
fn base_url(ctx: DeliverContext<'_>) -> String {
    let base = ctx
        .connectors
        .action_network_base_url
        .as_deref()
        .unwrap_or(DEFAULT_BASE_URL);
    if base.ends_with('/') {
        base.to_owned()
    } else {
        format!("{base}/")
    }
}

/// An answer other than 2xx: 429 and 5xx may pass; anything else is final, with Action
/// Network's `{"error": …}` as the reason.
fn answer_error(status: u16, body: &str, doing: &str) -> DeliveryError {
    let said = serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| super::webhook::clip(body.trim().to_owned()));
    let answer = Some(super::webhook::clip(body.to_owned()));
    if status == 429 || status >= 500 {
        return DeliveryError::Retryable {
            message: format!("Action Network answered {status} {doing}: {said}"),
            status: Some(status),
            answer,
        };
    }
    let hint = match status {
        401 | 403 => {
            ": check the API key in the destination's secret (API & Sync in Action Network)"
        }
        _ => "",
    };
    DeliveryError::Rejected {
        message: format!("Action Network refused {doing} ({status}): {said}{hint}"),
        status: Some(status),
        answer,
        envelope: None,
    }
}

#[async_trait]
impl Destination for ActionNetwork {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    /// Requests go to Action Network's own host (or the deployment's fake), never to one
    /// the document names.
    fn endpoint(&self) -> Option<(&str, &'static str)> {
        None
    }

    async fn check(&self, ctx: DeliverContext<'_>) -> Vec<String> {
        match self.api_key(ctx).await {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        }
    }

    async fn inspect(&self, ctx: DeliverContext<'_>) -> Inspection {
        let mut found = Inspection::default();
        let existing: BTreeSet<String> = match self.list_tags(ctx).await {
            Ok(tags) => tags.into_iter().collect(),
            Err(DeliveryError::Retryable { message, .. }) => {
                found.notes.push(format!(
                    "the group's tags could not be listed ({message}): validate again to check the configured tags"
                ));
                return found;
            }
            Err(e) => {
                found.problems.push(e.to_string());
                return found;
            }
        };
        for (tag, field) in self.tags() {
            if !existing.contains(&tag) {
                found.problems.push(format!(
                    "{field}: tag {tag:?} does not exist in the Action Network group, which ignores unknown tags without a word — create it there (a tag cannot be renamed or deleted later), or correct the name"
                ));
            }
        }
        found
            .notes
            .push(format!("{} tags in the group", existing.len()));
        found
    }

    async fn catalogue(&self, ctx: DeliverContext<'_>) -> Option<Result<Value, String>> {
        Some(
            self.list_tags(ctx)
                .await
                .map(|tags| json!({ "tags": tags }))
                .map_err(|e| e.to_string()),
        )
    }

    /// One limit per API key: every destination and candidate using the key shares it.
    async fn rate_key(&self, ctx: DeliverContext<'_>, name: &str) -> String {
        match self.api_key(ctx).await {
            Ok(key) => format!("action_network/{}", &sha256_hex(key.as_bytes())[..16]),
            Err(_) => format!("action_network/{}/{name}", ctx.candidate.slug),
        }
    }

    fn plan(
        &self,
        _name: &str,
        call: &Call,
        row: Option<&ResultRow>,
        _candidate: &Candidate,
    ) -> DeliveryPlan {
        let Some(phone) = &call.phone else {
            return DeliveryPlan::Skip(
                "the call has no phone number, and Action Network finds a person by phone (or email, which a call does not carry)".into(),
            );
        };
        let tagging = self.tagging(call, row);
        if tagging.is_none() && self.custom_fields.is_empty() {
            return DeliveryPlan::Skip(format!(
                "result {:?} has no tags in this destination's results",
                call.result_text
            ));
        }
        let mut person = serde_json::Map::new();
        if !call.first_name().is_empty() {
            person.insert("given_name".into(), call.first_name().to_owned().into());
        }
        if !call.last_name().is_empty() {
            person.insert("family_name".into(), call.last_name().to_owned().into());
        }
        // No `status`: a new number starts unsubscribed, an existing one keeps its own.
        person.insert(
            "phone_numbers".into(),
            json!([{ "number": phone.digits() }]),
        );
        let fields: serde_json::Map<String, Value> = self
            .custom_fields
            .iter()
            .filter_map(|(name, field)| {
                let value = match field {
                    Field::DisplayName => row.map(|r| r.display_name.clone()),
                    Field::Result => Some(call.result_text.to_string()),
                    Field::LocalDate => Some(call.local_date.to_string()),
                    Field::StartedAt => Some(call.started_at.to_string()),
                    Field::Agent => (!call.agent().is_empty()).then(|| call.agent().to_owned()),
                }?;
                Some((name.clone(), Value::String(value)))
            })
            .collect();
        if !fields.is_empty() {
            person.insert("custom_fields".into(), Value::Object(fields));
        }
        let mut body = json!({ "person": person });
        if let Some(t) = tagging {
            if !t.add_tags.is_empty() {
                body["add_tags"] = json!(t.add_tags);
            }
            if !t.remove_tags.is_empty() {
                body["remove_tags"] = json!(t.remove_tags);
            }
        }
        DeliveryPlan::Send(body)
    }

    async fn deliver(
        &self,
        ctx: DeliverContext<'_>,
        delivery: &DeliveryRecord,
    ) -> Result<Receipt, DeliveryError> {
        let Some(payload) = &delivery.payload else {
            return Err(DeliveryError::Setup("the delivery holds no payload".into()));
        };
        let key = self.api_key(ctx).await?;
        let client = self.client()?;
        let bytes = serde_json::to_vec(payload).unwrap_or_default();
        let post = |key: String| {
            let request = client
                .post(format!("{}people/", base_url(ctx)))
                .header("OSDI-API-Token", key)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(bytes.clone());
            async move {
                let response = request.send().await.map_err(|e| {
                    transport_error(e, "Action Network", super::TlsSettings::PublicOnly)
                })?;
                let status = response.status().as_u16();
                Ok::<_, DeliveryError>((status, response.text().await.unwrap_or_default()))
            }
        };
        let (mut status, mut body) = post(key.clone()).await?;
        if status == 401 {
            // Action Network refuses a key the moment it is replaced, while a warm worker
            // keeps the one it read for minutes: read it afresh, and when it changed, send
            // again with the new one at its own slot (nothing was taken from a refused
            // request). A key that did not change stands refused.
            ctx.secrets.forget(&self.secret_name).await;
            let fresh = self.api_key(ctx).await?;
            if fresh != key {
                if let Some(meter) = ctx.meter {
                    meter.pace().await.map_err(|e| DeliveryError::Retryable {
                        message: e.to_string(),
                        status: None,
                        answer: None,
                    })?;
                }
                (status, body) = post(fresh).await?;
            }
        }
        if !(200..300).contains(&status) {
            return Err(answer_error(status, &body, "the person"));
        }
        let answer: Value = serde_json::from_str(&body).unwrap_or_default();
        let person = answer["identifiers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .find_map(|id| id.strip_prefix("action_network:"))
            .map(str::to_owned);
        Ok(Receipt::Person {
            system: METADATA.kind.to_owned(),
            id: person,
            status,
            at: ctx.clock.now(),
            attempts: delivery.delivery.attempts,
            fingerprint: sha256_hex(&bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn configure(settings: Value) -> (Option<ActionNetwork>, Vec<FieldError>) {
        let slug = CandidateSlug::parse("ny14").unwrap();
        let mut errors = Vec::new();
        let map = settings.as_object().unwrap().clone();
        let out = ActionNetwork::from_doc(&map, "destinations[1]", Some(&slug), &mut errors);
        (out, errors)
    }

    #[test]
    fn settings_are_checked_by_field_and_results_match_in_any_spelling() {
        let (out, errors) = configure(json!({
            "secret_name": "callsync/ny14/an",
            "results": {
                "Agent Cust 1": {"add_tags": ["PB Supporter"], "remove_tags": ["PB Not Home"]},
                "AGENT - CUST 1": {"add_tags": ["PB Supporter"]},
                "No Answer": {"add_tags": ["x"], "remove_tags": ["x"]},
                "Busy": {},
                "Wrong #": {"add_tags": [""]}
            },
            "custom_fields": {"last_call_result": "display_name"}
        }));
        assert!(out.is_none());
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                // The settings are read in name order: "AGENT - CUST 1" came first.
                "destinations[1].results.Agent Cust 1",
                "destinations[1].results.Busy",
                "destinations[1].results.No Answer",
                "destinations[1].results.Wrong #.add_tags[0]"
            ],
            "{errors:?}"
        );
        let (_, errors) = configure(json!({
            "secret_name": "callsync/ny14/an", "results": {}, "custom_fields": {"f": "weather"}
        }));
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["destinations[1].custom_fields.f"], "{errors:?}");
    }
}
