//! The candidate document (a.k.a. integration): everything callsync needs to sync one
//! campaign's calls, as stored (`CandidateDoc`, plain serde) and as used (`Candidate`,
//! every field parsed and checked, with every problem reported by its path).

use serde::{Deserialize, Serialize};

use crate::call::{AccountPattern, PatternError};
use crate::egress::{self, Egress};
use crate::livevox::cdr::CdrColumns;
use crate::mapping::{FieldError, ResultMapping, ResultRowDoc};
use crate::values::CandidateSlug;
use crate::values::DatabaseMode;

/// The candidate document as written by people and stored in the config table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CandidateDoc {
    pub slug: String,
    pub display_name: String,
    #[serde(default = "yes")]
    pub active: bool,
    /// IANA zone of the campaign: local call days and CDR wall-clock times are read in it.
    pub time_zone: String,
    /// Local hour (0–23) after which the previous local day is synced.
    pub sync_hour: u8,
    pub source: SourceDoc,
    #[serde(default = "default_account_pattern")]
    pub account_pattern: String,
    /// The campaign's district as account numbers carry it (`ny14` in `ny14-van-18372073`):
    /// a row whose account names another district is a bad row. Unset: any district.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    /// Accounts matching this are test rows and are skipped; `null` to skip none.
    #[serde(default = "default_test_pattern")]
    pub test_account_pattern: Option<String>,
    /// Required unless the strategy is `all_csv`.
    #[serde(default)]
    pub van: Option<VanSettings>,
    pub strategy: Strategy,
    #[serde(default)]
    pub results: Vec<ResultRowDoc>,
    /// Extensions this candidate runs, in order (see `crate::extensions`); absent: the
    /// deployment's `CALLSYNC_EXTENSIONS`, `[]`: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Vec<String>>,
    /// Each extension's settings, under its name.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub extension_settings: std::collections::BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub notify: Option<Notify>,
    /// Where calls go besides VAN and the CSV (see [`crate::destinations`]). Without it the
    /// candidate has only those two.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<DestinationDoc>,
}

fn yes() -> bool {
    true
}
fn default_account_pattern() -> String {
    AccountPattern::DEFAULT.to_owned()
}
fn default_test_pattern() -> Option<String> {
    Some(AccountPattern::DEFAULT_TEST.to_owned())
}

/// Where calls come from: CDR files dropped in S3, the LiveVox API, or both.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceDoc {
    #[serde(default)]
    pub cdr: Option<CdrSource>,
    #[serde(default)]
    pub livevox: Option<LiveVoxSource>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CdrSource {
    /// S3 key prefix of the candidate's inbox; defaults to `inbox/<slug>/`.
    #[serde(default)]
    pub inbox_prefix: Option<String>,
    /// Header names of the export; the original LiveVox export's by default.
    #[serde(default)]
    pub columns: CdrColumns,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LiveVoxSource {
    /// Secrets Manager secret holding `{access_token, client_name, user_name, password}`.
    pub secret_name: String,
    /// LiveVox API host of the account's environment (`https://api.na4.livevox.com`, …).
    #[serde(default)]
    pub base_url: Option<String>,
    /// LiveVox service ids whose calls belong to this candidate.
    pub services: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VanSettings {
    /// Secrets Manager secret holding `{application_name, api_key}`.
    pub secret_name: String,
    pub database_mode: DatabaseMode,
    /// Resolved to an id by name at run time: ids differ per database.
    #[serde(default = "default_contact_type")]
    pub contact_type: String,
    #[serde(default = "default_input_type")]
    pub input_type: String,
    /// Keys for the other database: calls whose account names that system (`myc` for
    /// MyCampaign, `van` for VoterFile) are posted with it. A call for a database the
    /// candidate has no key for is an `unattempted_error` saying so.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_databases: Vec<DatabaseKey>,
    /// Requests a second the key may make (VAN limits per API key, across all endpoints);
    /// 15 unless set, the sustained rate VAN documents for its common key profile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
}

/// A VAN key for one database mode.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseKey {
    pub database_mode: DatabaseMode,
    /// Secrets Manager secret holding `{application_name, api_key}` for that database.
    pub secret_name: String,
}

fn default_contact_type() -> String {
    "Phone".into()
}
fn default_input_type() -> String {
    "API".into()
}

impl VanSettings {
    /// The secret holding the key for `mode`, if the candidate has one.
    pub fn secret_for(&self, mode: DatabaseMode) -> Option<&str> {
        if mode == self.database_mode {
            return Some(&self.secret_name);
        }
        self.other_databases
            .iter()
            .find(|k| k.database_mode == mode)
            .map(|k| k.secret_name.as_str())
    }

    /// VAN requires `canvassContext.phone` for these contact types.
    pub fn contact_type_needs_phone(&self) -> bool {
        ["phone", "sms text"]
            .iter()
            .any(|t| self.contact_type.trim().eq_ignore_ascii_case(t))
    }
}

/// How a candidate's calls are split between VAN and the CSV export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Strategy {
    /// Post every `sync` row; rows marked only `csv` go to the CSV.
    Full,
    /// The original's money saver: any row marked `csv` goes to the CSV, even when also
    /// marked `sync`; only rows marked `sync` alone are posted.
    Hybrid,
    /// Nothing is posted; every `sync` or `csv` row goes to the CSV.
    AllCsv,
    /// As `full`, but at most `daily_free_requests` posts a local day, filled by row
    /// priority; the overflow goes to the CSV so nobody pays per-request charges by accident.
    Budget {
        #[serde(default = "default_allowance")]
        daily_free_requests: u32,
    },
}

fn default_allowance() -> u32 {
    1_000
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Notify {
    /// Receives the run report as JSON with a `text` field (Slack, an e-mail relay, …).
    pub webhook_url: String,
}

/// Which calls a destination receives (the rules are [`crate::planning::select`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// Every call read, whatever its result (an unknown result travels without a display
    /// name).
    All,
    /// Calls whose result row is marked `sync`.
    #[default]
    Synced,
    /// Calls whose result row lists this destination under `destinations`.
    Rows,
}

/// A destination as written in the candidate document: its name, kind, selection and
/// pace, and the kind's own settings beside them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DestinationDoc {
    pub name: String,
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub select: Option<Select>,
    /// Requests a second toward this destination; the kind's default otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<f64>,
    #[serde(flatten)]
    pub settings: serde_json::Map<String, serde_json::Value>,
}

/// A candidate whose document passed every check.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub slug: CandidateSlug,
    pub zone: jiff::tz::TimeZone,
    pub accounts: AccountPattern,
    pub mapping: ResultMapping,
    doc: CandidateDoc,
}

impl Candidate {
    /// Check every field of `doc`, reporting every problem at once. `egress` says which
    /// endpoints a document may name (public https ones, unless the deployment runs
    /// locally). `more` checks and compiles what this layer does not know — the
    /// destinations, a layer above: use [`crate::destinations::Compiled::from_doc`] — in its
    /// place among the checks, so every problem is reported in the document's order.
    pub fn from_doc_with<T>(
        doc: CandidateDoc,
        egress: Egress,
        more: impl FnOnce(&CandidateDoc, Option<&CandidateSlug>, &mut Vec<FieldError>) -> T,
    ) -> Result<(Self, T), Vec<FieldError>> {
        let mut errors = Vec::new();
        let slug = CandidateSlug::parse(&doc.slug)
            .map_err(|e| errors.push(FieldError::new("slug", e.to_string())))
            .ok();
        if doc.display_name.trim().is_empty() {
            errors.push(FieldError::new(
                "display_name",
                "is empty: give the campaign's name as reports should show it",
            ));
        }
        let zone = jiff::tz::TimeZone::get(&doc.time_zone)
            .map_err(|_| {
                errors.push(FieldError::new(
                    "time_zone",
                    format!(
                        "{:?} is not an IANA time zone: use a name such as America/New_York",
                        doc.time_zone
                    ),
                ))
            })
            .ok();
        if doc.sync_hour > 23 {
            errors.push(FieldError::new(
                "sync_hour",
                format!(
                    "{} is not an hour of the day: use 0–23 (local time)",
                    doc.sync_hour
                ),
            ));
        }
        check_source(&doc.source, slug.as_ref(), &mut errors);
        if let Some(d) = &doc.district
            && (d.trim().is_empty() || !d.trim().chars().all(|c| c.is_ascii_alphanumeric()))
        {
            errors.push(FieldError::new(
                "district",
                format!("{d:?} is not a district as account numbers carry it: use letters and digits such as \"ny14\", or leave it out"),
            ));
        }
        let accounts =
            AccountPattern::new(&doc.account_pattern, doc.test_account_pattern.as_deref())
                .map(|p| p.with_district(doc.district.as_deref()))
                .map_err(|e| {
                    let field = match (&e, AccountPattern::new(&doc.account_pattern, None)) {
                        (PatternError::Syntax(_), Ok(_)) => "test_account_pattern",
                        _ => "account_pattern",
                    };
                    errors.push(FieldError::new(field, e.to_string()));
                })
                .ok();
        match (&doc.van, doc.strategy) {
            (None, Strategy::AllCsv) => {}
            (None, _) => errors.push(FieldError::new(
                "van",
                "is missing: every strategy but all_csv posts to VAN and needs secret_name and database_mode",
            )),
            (Some(van), _) => check_van(van, slug.as_ref(), &mut errors),
        }
        if let Strategy::Budget {
            daily_free_requests: 0,
        } = doc.strategy
        {
            errors.push(FieldError::new(
                "strategy.budget.daily_free_requests",
                "is 0, so nothing would ever be posted: use all_csv for that, or a positive allowance",
            ));
        }
        let mapping = ResultMapping::from_docs(&doc.results)
            .map_err(|e| errors.extend(e))
            .ok();
        let more = more(&doc, slug.as_ref(), &mut errors);
        if let Some(notify) = &doc.notify
            && let Err(e) = egress.check_url(&notify.webhook_url)
        {
            errors.push(FieldError::new(
                "notify.webhook_url",
                format!("{:?} {e}", notify.webhook_url),
            ));
        }
        match (slug, zone, accounts, mapping) {
            (Some(slug), Some(zone), Some(accounts), Some(mapping)) if errors.is_empty() => Ok((
                Self {
                    slug,
                    zone,
                    accounts,
                    mapping,
                    doc,
                },
                more,
            )),
            _ => Err(errors),
        }
    }

    pub fn doc(&self) -> &CandidateDoc {
        &self.doc
    }

    pub fn into_doc(self) -> CandidateDoc {
        self.doc
    }

    pub fn strategy(&self) -> Strategy {
        self.doc.strategy
    }

    pub fn van(&self) -> Option<&VanSettings> {
        self.doc.van.as_ref()
    }

    pub fn active(&self) -> bool {
        self.doc.active
    }

    /// The S3 prefix CDR files for this candidate are dropped under: `inbox/<slug>/` or a
    /// folder beneath it (checked by [`Candidate::from_doc`]).
    pub fn inbox_prefix(&self) -> Option<String> {
        let cdr = self.doc.source.cdr.as_ref()?;
        Some(
            cdr.inbox_prefix
                .clone()
                .unwrap_or_else(|| format!("inbox/{}/", self.slug)),
        )
    }

    /// Whether `key` is an object of this candidate's inbox: the only objects a run of it
    /// may move or delete.
    pub fn owns_inbox_object(&self, key: &str) -> bool {
        self.inbox_prefix().is_some_and(|prefix| {
            key.len() > prefix.len() && key.starts_with(&prefix) && safe_key(key)
        })
    }
}

/// The prefix every secret of candidate `slug` must have. The API token and every other
/// candidate's secrets lie outside it.
pub fn secret_prefix(slug: &CandidateSlug) -> String {
    format!("callsync/{slug}/")
}

/// Whether `name` is a secret candidate `slug` may read: `callsync/<slug>/<name>`, plain
/// segments only. The one rule, for the document check and for every read.
pub fn is_own_secret(slug: &CandidateSlug, name: &str) -> bool {
    let prefix = secret_prefix(slug);
    let allowed = |c: char| c.is_ascii_alphanumeric() || "/_+=.@-".contains(c);
    name.len() <= 512
        && name.len() > prefix.len()
        && name.starts_with(&prefix)
        && name.chars().all(allowed)
        && !name.ends_with('/')
        && safe_key(name)
}

/// A key made of plain path segments: no empty, `.` or `..` segment, no backslash or
/// control character (so no key can climb out of the prefix it starts with).
fn safe_key(key: &str) -> bool {
    !key.starts_with('/')
        && key
            .strip_suffix('/')
            .unwrap_or(key)
            .split('/')
            .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
        && !key.chars().any(|c| c.is_control() || c == '\\')
}

fn check_source(source: &SourceDoc, slug: Option<&CandidateSlug>, errors: &mut Vec<FieldError>) {
    if source.cdr.is_none() && source.livevox.is_none() {
        errors.push(FieldError::new(
            "source",
            "names no call source: set source.cdr (CDR files in S3), source.livevox (the API), or both",
        ));
    }
    if let Some(cdr) = &source.cdr {
        errors.extend(cdr.columns.check("source.cdr.columns"));
    }
    if let (Some(prefix), Some(slug)) = (
        source.cdr.as_ref().and_then(|c| c.inbox_prefix.as_deref()),
        slug,
    ) {
        let own = format!("inbox/{slug}/");
        if !(prefix.starts_with(&own) && prefix.ends_with('/') && safe_key(prefix)) {
            errors.push(FieldError::new(
                "source.cdr.inbox_prefix",
                format!(
                    "{prefix:?} is not this candidate's inbox: use {own:?} (the default) or a folder beneath it such as \"{own}livevox/\", ending in '/'"
                ),
            ));
        }
    }
    if let Some(lv) = &source.livevox {
        check_secret(
            "source.livevox.secret_name",
            &lv.secret_name,
            "the LiveVox credentials",
            slug,
            errors,
        );
        if let Some(i) = lv.services.iter().position(|&s| s == 0) {
            errors.push(FieldError::new(
                format!("source.livevox.services[{i}]"),
                "is 0, which is not a LiveVox service id: GET /configure lists the account's services",
            ));
        }
        if lv.services.is_empty() {
            errors.push(FieldError::new(
                "source.livevox.services",
                "is empty: list the LiveVox service ids whose calls belong to this candidate (GET /configure shows them)",
            ));
        }
        if let Some(url) = &lv.base_url
            && let Err(e) = egress::livevox_base_url(url)
        {
            errors.push(FieldError::new(
                "source.livevox.base_url",
                format!("{url:?} {e}"),
            ));
        }
    }
}

/// A secret a candidate names must be its own: `callsync/<slug>/<name>`, a plain name (no
/// ARN, which could name any secret of the account).
pub(crate) fn check_secret(
    field: &str,
    name: &str,
    holding: &str,
    slug: Option<&CandidateSlug>,
    errors: &mut Vec<FieldError>,
) {
    if name.trim().is_empty() {
        errors.push(FieldError::new(
            field,
            format!("is empty: name the Secrets Manager secret holding {holding}"),
        ));
        return;
    }
    let Some(slug) = slug else { return };
    let prefix = secret_prefix(slug);
    if !is_own_secret(slug, name) {
        errors.push(FieldError::new(
            field,
            format!(
                "{name:?} is not one of this candidate's secrets: name a secret under {prefix:?}, such as \"{prefix}van\" (a candidate may read only its own secrets)"
            ),
        ));
    }
}

fn check_van(van: &VanSettings, slug: Option<&CandidateSlug>, errors: &mut Vec<FieldError>) {
    check_secret(
        "van.secret_name",
        &van.secret_name,
        "the VAN application name and API key",
        slug,
        errors,
    );
    for (i, key) in van.other_databases.iter().enumerate() {
        let field = format!("van.other_databases[{i}]");
        check_secret(
            &format!("{field}.secret_name"),
            &key.secret_name,
            "the VAN key for that database",
            slug,
            errors,
        );
        let earlier = van.other_databases[..i]
            .iter()
            .any(|k| k.database_mode == key.database_mode);
        if key.database_mode == van.database_mode || earlier {
            errors.push(FieldError::new(
                format!("{field}.database_mode"),
                "names a database that already has a key: give each database one key",
            ));
        }
    }
    for (field, value, what) in [
        (
            "van.contact_type",
            &van.contact_type,
            "a VAN contact type name such as Phone",
        ),
        (
            "van.input_type",
            &van.input_type,
            "a VAN input type name such as API",
        ),
    ] {
        if value.trim().is_empty() {
            errors.push(FieldError::new(field, format!("is empty: give {what}")));
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    pub(crate) fn example_json() -> serde_json::Value {
        serde_json::json!({
            "slug": "ny14-smith",
            "display_name": "Smith for Congress",
            "time_zone": "America/New_York",
            "sync_hour": 2,
            "source": {"cdr": {}},
            "van": {"secret_name": "callsync/ny14-smith/van", "database_mode": "voter_file"},
            "strategy": "hybrid",
            "results": [
                {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
                 "survey_responses": [{"question_id": 2301, "response_id": 9120}], "sync": true},
                {"result": "Busy", "display_name": "Busy", "success": false, "result_code_id": 18, "csv": true}
            ]
        })
    }

    #[test]
    fn the_example_document_is_valid_and_defaults_fill_in() {
        let doc: CandidateDoc = serde_json::from_value(example_json()).unwrap();
        let c = crate::destinations::Compiled::from_doc(doc, Egress::STRICT).unwrap();
        assert!(c.active());
        assert_eq!(c.van().unwrap().contact_type, "Phone");
        assert_eq!(c.van().unwrap().input_type, "API");
        assert_eq!(c.inbox_prefix().as_deref(), Some("inbox/ny14-smith/"));
        assert_eq!(c.mapping.rows().len(), 2);
        assert_eq!(c.doc().account_pattern, AccountPattern::DEFAULT);
    }

    #[test]
    fn strategies_read_as_strings_or_budget_objects() {
        for (json, want) in [
            (r#""full""#, Strategy::Full),
            (r#""all_csv""#, Strategy::AllCsv),
            (
                r#"{"budget":{}}"#,
                Strategy::Budget {
                    daily_free_requests: 1000,
                },
            ),
            (
                r#"{"budget":{"daily_free_requests":250}}"#,
                Strategy::Budget {
                    daily_free_requests: 250,
                },
            ),
        ] {
            assert_eq!(
                serde_json::from_str::<Strategy>(json).unwrap(),
                want,
                "{json}"
            );
        }
        assert!(serde_json::from_str::<Strategy>(r#""everything""#).is_err());
    }

    #[test]
    fn every_problem_is_reported_by_its_path() {
        let mut json = example_json();
        json["slug"] = "NY 14".into();
        json["time_zone"] = "Eastern".into();
        json["sync_hour"] = 24.into();
        json["source"] = serde_json::json!({"livevox": {"secret_name": "", "services": []}});
        json["account_pattern"] = r"^(\d+)$".into();
        json["van"] = serde_json::Value::Null;
        json["extensions"] = serde_json::json!(["teleport"]);
        json["notify"] = serde_json::json!({"webhook_url": "ftp://x"});
        json["results"][0]["survey_responses"][0]["response_id"] = 0.into();
        json["results"][1]["result_code_id"] = serde_json::Value::Null;
        json["results"].as_array_mut().unwrap().push(serde_json::json!(
            {"result": "agent cust 1 (12)", "display_name": "Dup", "success": true, "result_code_id": 14,
             "activist_codes": [4411]}));
        let doc: CandidateDoc = serde_json::from_value(json).unwrap();
        let errors = crate::destinations::Compiled::from_doc(doc, Egress::STRICT).unwrap_err();
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "slug",
                "time_zone",
                "sync_hour",
                "source.livevox.secret_name",
                "source.livevox.services",
                "account_pattern",
                "van",
                "results[0].survey_responses[0].response_id",
                "results[1].result_code_id",
                "results[2].result_code_id",
                "results[2].result",
                "extensions[0]",
                "notify.webhook_url",
            ],
            "{errors:#?}"
        );
        assert!(errors[10].message.contains("results[0]"), "{}", errors[10]);
    }

    #[test]
    fn all_csv_needs_no_van_settings() {
        let mut json = example_json();
        json["van"] = serde_json::Value::Null;
        json["strategy"] = "all_csv".into();
        let doc: CandidateDoc = serde_json::from_value(json).unwrap();
        assert!(crate::destinations::Compiled::from_doc(doc, Egress::STRICT).is_ok());
    }

    fn field_errors(json: serde_json::Value) -> Vec<String> {
        let doc: CandidateDoc = serde_json::from_value(json).unwrap();
        match crate::destinations::Compiled::from_doc(doc, Egress::STRICT) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(|e| e.field.clone()).collect(),
        }
    }

    #[test]
    fn a_candidate_may_name_only_its_own_secrets() {
        for name in [
            "callsync/ny14-smith/van",
            "callsync/ny14-smith/keys/van-myc",
        ] {
            let mut json = example_json();
            json["van"]["secret_name"] = name.into();
            assert_eq!(field_errors(json), Vec::<String>::new(), "{name}");
        }
        for name in [
            "callsync/other-candidate/van",
            "callsync/ny14-smith",
            "callsync/ny14-smith/",
            "callsync/ny14-smithx/van",
            "callsync/api-token",
            "callsync-api-token",
            "callsync/ny14-smith/../other/van",
            "callsync/ny14-smith//van",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:callsync/ny14-smith/van",
            "prod/stripe-key",
        ] {
            let mut json = example_json();
            json["van"]["secret_name"] = name.into();
            assert_eq!(field_errors(json), vec!["van.secret_name"], "{name}");
            let mut json = example_json();
            json["source"]["livevox"] =
                serde_json::json!({"secret_name": name, "services": [1001]});
            assert_eq!(
                field_errors(json),
                vec!["source.livevox.secret_name"],
                "{name}"
            );
        }
    }

    #[test]
    fn the_inbox_lies_under_the_candidates_own_prefix() {
        for ok in ["inbox/ny14-smith/", "inbox/ny14-smith/livevox/"] {
            let mut json = example_json();
            json["source"]["cdr"]["inbox_prefix"] = ok.into();
            assert_eq!(field_errors(json), Vec::<String>::new(), "{ok}");
        }
        for bad in [
            "exports/",
            "exports/ny14-smith/",
            "inbox/",
            "inbox/other/",
            "inbox/ny14-smithx/",
            "inbox/ny14-smith",
            "inbox/ny14-smith/../other/",
            "inbox/ny14-smith/./",
            "inbox/ny14-smith//",
            "../",
            "/inbox/ny14-smith/",
            "",
        ] {
            let mut json = example_json();
            json["source"]["cdr"]["inbox_prefix"] = bad.into();
            assert_eq!(
                field_errors(json),
                vec!["source.cdr.inbox_prefix"],
                "{bad:?}"
            );
        }
        let doc: CandidateDoc = serde_json::from_value(example_json()).unwrap();
        let c = crate::destinations::Compiled::from_doc(doc, Egress::STRICT).unwrap();
        assert!(c.owns_inbox_object("inbox/ny14-smith/calls.csv"));
        for other in [
            "inbox/ny14-smith/",
            "inbox/other/calls.csv",
            "exports/ny14-smith/2026-11-03/ny14-smith-11-03-2026-1.csv",
            "inbox/ny14-smith/../other/calls.csv",
        ] {
            assert!(!c.owns_inbox_object(other), "{other}");
        }
    }

    #[test]
    fn the_livevox_login_may_go_only_to_a_livevox_host() {
        for (url, ok) in [
            ("https://api.na4.livevox.com", true),
            ("https://listener.example.com", false),
            ("http://localhost@127.0.0.2:7002", false),
            ("http://127.0.0.1:7002", false),
        ] {
            let mut json = example_json();
            json["source"]["livevox"] = serde_json::json!(
                {"secret_name": "callsync/ny14-smith/livevox", "services": [1001], "base_url": url});
            let want: Vec<String> = if ok {
                vec![]
            } else {
                vec!["source.livevox.base_url".into()]
            };
            assert_eq!(field_errors(json), want, "{url}");
        }
        let mut json = example_json();
        json["source"]["livevox"] = serde_json::json!(
            {"secret_name": "callsync/ny14-smith/livevox", "services": [1001, 0]});
        assert_eq!(field_errors(json), vec!["source.livevox.services[1]"]);
    }

    #[test]
    fn the_report_webhook_must_be_a_public_https_endpoint() {
        for url in [
            "http://hooks.slack.com/services/x",
            "https://127.0.0.1/hook",
            "https://[::1]/hook",
            "https://169.254.169.254/latest",
            "https://10.0.0.5/hook",
            "https://hooks.slack.com@10.0.0.5/hook",
            "https://localhost/hook",
        ] {
            let mut json = example_json();
            json["notify"] = serde_json::json!({"webhook_url": url});
            assert_eq!(field_errors(json), vec!["notify.webhook_url"], "{url}");
        }
        let mut json = example_json();
        json["notify"] = serde_json::json!({"webhook_url": "http://127.0.0.1:9/hook"});
        let doc: CandidateDoc = serde_json::from_value(json).unwrap();
        assert!(crate::destinations::Compiled::from_doc(doc.clone(), Egress::STRICT).is_err());
        assert!(crate::destinations::Compiled::from_doc(doc, Egress::LOCAL).is_ok());
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut json = example_json();
        json["sync_houre"] = 3.into();
        let err = serde_json::from_value::<CandidateDoc>(json).unwrap_err();
        assert!(err.to_string().contains("sync_houre"), "{err}");
    }
}
