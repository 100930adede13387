//! The result mapping: for each dialer result, what it means and where it goes — as the
//! candidate document spells it (`ResultRowDoc`), as the planner uses it (`ResultRow`), and
//! as the original app's Airtable result table exported to CSV.

use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::values::ResultKey;

/// One field that is wrong, by its path in the document: `results[3].survey_responses[0].response_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// A survey question answered with one of its responses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswer {
    pub question_id: u32,
    pub response_id: u32,
}

/// A result-mapping row as written in the candidate document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResultRowDoc {
    /// The dialer's result text; normalised before matching (`Agent Cust 1 (167)` → `agent cust 1`).
    pub result: String,
    pub display_name: String,
    /// Whether the call reached the voter (a contact). Non-contacts need a result code.
    pub success: bool,
    /// A VAN canvass result code (a non-contact such as Busy or Wrong Number)…
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_code_id: Option<u32>,
    /// …or survey responses and activist codes (a contact). Never both.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub survey_responses: Vec<SurveyAnswer>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub activist_codes: Vec<u32>,
    /// Post calls with this result to VAN.
    #[serde(default)]
    pub sync: bool,
    /// Keep calls with this result in the CSV export (instead of VAN where the strategy says so).
    #[serde(default)]
    pub csv: bool,
    /// Higher first when a daily request budget must choose which calls reach VAN.
    #[serde(default)]
    pub priority: i32,
    /// The configured destinations (by name) that receive calls with this result, for the
    /// destinations that take the rows naming them (`select: rows`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub destinations: Vec<String>,
}

/// What a VAN canvass post says about the voter: a result code, or survey responses and
/// activist codes — the two never travel together (VAN rejects or rewrites such a post).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VanAction {
    ResultCode(u32),
    /// At least one of the two lists is non-empty.
    Contact {
        survey_responses: Vec<SurveyAnswer>,
        activist_codes: Vec<u32>,
    },
}

/// A validated mapping row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultRow {
    pub result: ResultKey,
    pub display_name: String,
    pub success: bool,
    /// `None` only for rows that are neither synced nor exported, or CSV-only contacts.
    pub van: Option<VanAction>,
    pub sync: bool,
    pub csv: bool,
    pub priority: i32,
    pub destinations: Vec<String>,
}

/// Every row of a candidate's mapping, looked up by normalised result.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResultMapping {
    rows: Vec<ResultRow>,
    /// Looked up for every call a night plans, by a key of a few dozen bytes that the
    /// candidate's own rows and the dialer's results make (nothing an outsider picks):
    /// hashed by foldhash, several times faster than the default's SipHash for them.
    by_key: foldhash::HashMap<ResultKey, usize>,
}

impl ResultMapping {
    /// Validate every row, collecting every problem (paths are `results[i].…`).
    pub fn from_docs(docs: &[ResultRowDoc]) -> Result<Self, Vec<FieldError>> {
        let mut errors = Vec::new();
        let mut mapping = Self::default();
        let mut seen: HashMap<ResultKey, usize> = HashMap::new();
        for (i, doc) in docs.iter().enumerate() {
            let at = |field: &str| format!("results[{i}].{field}");
            let before = errors.len();
            let key = match ResultKey::normalise(&doc.result) {
                Ok(key) => Some(key),
                Err(e) => {
                    errors.push(FieldError::new(at("result"), e.to_string()));
                    None
                }
            };
            if doc.display_name.trim().is_empty() {
                errors.push(FieldError::new(
                    at("display_name"),
                    "is empty: give the name reports should use, e.g. \"Strong support\"",
                ));
            }
            let van = row_action(doc, &at, &mut errors);
            if let Some(key) = &key
                && let Some(&first) = seen.get(key)
            {
                errors.push(FieldError::new(
                    at("result"),
                    duplicate_message(
                        &doc.result,
                        &format!("results[{first}].result"),
                        &docs[first].result,
                        key,
                    ),
                ));
            }
            if let Some(key) = &key {
                seen.entry(key.clone()).or_insert(i);
            }
            if let (Some(key), true) = (key, errors.len() == before) {
                mapping.by_key.insert(key.clone(), mapping.rows.len());
                mapping.rows.push(ResultRow {
                    result: key,
                    display_name: doc.display_name.trim().to_owned(),
                    success: doc.success,
                    van,
                    sync: doc.sync,
                    csv: doc.csv,
                    priority: doc.priority,
                    destinations: doc.destinations.clone(),
                });
            }
        }
        if errors.is_empty() {
            Ok(mapping)
        } else {
            Err(errors)
        }
    }

    pub fn get(&self, key: &ResultKey) -> Option<&ResultRow> {
        self.by_key.get(key).map(|&i| &self.rows[i])
    }

    pub fn rows(&self) -> &[ResultRow] {
        &self.rows
    }
}

/// Two rows whose results are one key: name both spellings, so the user sees which to drop.
pub(crate) fn duplicate_message(
    spelling: &str,
    other_at: &str,
    other_spelling: &str,
    key: &ResultKey,
) -> String {
    format!(
        "{spelling:?} is the same result as {other_at} {other_spelling:?} (both read as \"{key}\": case, punctuation, spacing and a trailing disposition code do not count): keep one of the two rows"
    )
}

fn row_action(
    doc: &ResultRowDoc,
    at: &dyn Fn(&str) -> String,
    errors: &mut Vec<FieldError>,
) -> Option<VanAction> {
    let mut questions = BTreeSet::new();
    for (j, answer) in doc.survey_responses.iter().enumerate() {
        if answer.question_id == 0 {
            errors.push(FieldError::new(
                at(&format!("survey_responses[{j}].question_id")),
                "must be a VAN survey question id (a positive number)",
            ));
        }
        if answer.response_id == 0 {
            errors.push(FieldError::new(
                at(&format!("survey_responses[{j}].response_id")),
                "must be a VAN survey response id (a positive number)",
            ));
        }
        if !questions.insert(answer.question_id) {
            errors.push(FieldError::new(
                at(&format!("survey_responses[{j}].question_id")),
                format!(
                    "question {} is answered twice in this row: keep one response per question",
                    answer.question_id
                ),
            ));
        }
    }
    let mut codes = BTreeSet::new();
    for (j, &code) in doc.activist_codes.iter().enumerate() {
        if code == 0 {
            errors.push(FieldError::new(
                at(&format!("activist_codes[{j}]")),
                "must be a VAN activist code id (a positive number)",
            ));
        } else if !codes.insert(code) {
            errors.push(FieldError::new(
                at(&format!("activist_codes[{j}]")),
                format!("activist code {code} is listed twice"),
            ));
        }
    }
    let has_contact = !doc.survey_responses.is_empty() || !doc.activist_codes.is_empty();
    match doc.result_code_id {
        Some(0) => {
            errors.push(FieldError::new(
                at("result_code_id"),
                "must be a VAN result code id (a positive number)",
            ));
            None
        }
        Some(_) if has_contact => {
            errors.push(FieldError::new(
                at("result_code_id"),
                "a row sends either a result code (a non-contact) or survey responses/activist codes (a contact), never both: remove one",
            ));
            None
        }
        Some(code) => Some(VanAction::ResultCode(code)),
        None if has_contact => Some(VanAction::Contact {
            survey_responses: doc.survey_responses.clone(),
            activist_codes: doc.activist_codes.clone(),
        }),
        None => {
            if !doc.success && (doc.sync || doc.csv) {
                errors.push(FieldError::new(
                    at("result_code_id"),
                    "a non-success result that is synced or exported needs a VAN result code (e.g. Busy, Wrong Number)",
                ));
            } else if doc.sync {
                errors.push(FieldError::new(
                    at("survey_responses"),
                    "a synced success row needs survey responses or activist codes (or a result code such as Canvassed): VAN rejects a post with neither",
                ));
            }
            None
        }
    }
}

pub mod airtable;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(result: &str) -> ResultRowDoc {
        ResultRowDoc {
            result: result.into(),
            display_name: "Strong support".into(),
            success: true,
            result_code_id: None,
            survey_responses: vec![SurveyAnswer {
                question_id: 2301,
                response_id: 9120,
            }],
            activist_codes: vec![],
            sync: true,
            csv: false,
            priority: 0,
            destinations: Vec::new(),
        }
    }

    #[test]
    fn a_row_written_one_way_matches_every_spelling_of_its_result() {
        let mapping = ResultMapping::from_docs(&[row("AGENT - CUST 12")]).unwrap();
        for spelling in ["Agent Cust 12 (345)", "agent cust 12", "AGENT-CUST-12"] {
            let key = ResultKey::normalise(spelling).unwrap();
            assert!(mapping.get(&key).is_some(), "{spelling:?} found no row");
        }
        assert!(
            mapping
                .get(&ResultKey::normalise("Agent Cust 1 (345)").unwrap())
                .is_none()
        );
    }

    #[test]
    fn two_rows_for_one_result_are_refused_naming_both() {
        let errors = ResultMapping::from_docs(&[
            row("Agent Cust 12 (345)"),
            row("Busy"),
            row("AGENT - CUST 12"),
        ])
        .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].field, "results[2].result");
        let text = &errors[0].message;
        for want in [
            r#""AGENT - CUST 12""#,
            r#"results[0].result "Agent Cust 12 (345)""#,
            r#""agent cust 12""#,
        ] {
            assert!(text.contains(want), "missing {want}: {text}");
        }
        assert!(!text.contains("ResultKey"), "{text}");
    }
}
