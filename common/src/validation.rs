//! Is a candidate's mapping sound against what VAN actually offers? A pure check of a
//! document against a [`Catalogue`]; the `validate` endpoint fetches the catalogue and
//! reports what this finds.

use std::collections::{HashMap, HashSet};

use serde::Serialize;

use crate::candidate::CandidateDoc;
use crate::catalogue::Catalogue;
use crate::mapping::FieldError;
use crate::values::ResultKey;

/// One problem, tied to the mapping row it concerns (`result`) where there is one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub result: Option<String>,
    pub field: String,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub ok: bool,
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// Facts a destination reports once it checked out (a database's schema version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Finding>,
}

/// The document's own checks (shape, ids, both-or-neither, non-success rows), as findings.
pub fn static_findings(doc: &CandidateDoc, errors: &[FieldError]) -> Vec<Finding> {
    errors
        .iter()
        .map(|e| Finding {
            result: row_of(&e.field)
                .and_then(|i| doc.results.get(i))
                .map(|r| r.result.clone()),
            field: e.field.clone(),
            message: e.message.clone(),
        })
        .collect()
}

fn row_of(field: &str) -> Option<usize> {
    field
        .strip_prefix("results[")?
        .split(']')
        .next()?
        .parse()
        .ok()
}

/// Check `doc` against `catalogue`. Static problems (`static_errors`, from
/// [`static_findings`]) come first; then every id the mapping refers to is looked up in
/// VAN's lists.
pub fn check(doc: &CandidateDoc, static_errors: Vec<Finding>, catalogue: &Catalogue) -> Report {
    let mut errors = static_errors;
    let mut warnings = Vec::new();

    if let Some(van) = &doc.van {
        let names = |list: Vec<&str>| list.join(", ");
        if !catalogue
            .contact_types
            .iter()
            .any(|t| t.name.eq_ignore_ascii_case(van.contact_type.trim()))
        {
            errors.push(Finding {
                result: None,
                field: "van.contact_type".into(),
                message: format!(
                    "{:?} is not a contact type in this VAN database; it has: {}",
                    van.contact_type,
                    names(
                        catalogue
                            .contact_types
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect()
                    )
                ),
            });
        }
        if !catalogue
            .input_types
            .iter()
            .any(|t| t.name.eq_ignore_ascii_case(van.input_type.trim()))
        {
            errors.push(Finding {
                result: None,
                field: "van.input_type".into(),
                message: format!(
                    "{:?} is not an input type in this VAN database; it has: {}",
                    van.input_type,
                    names(
                        catalogue
                            .input_types
                            .iter()
                            .map(|t| t.name.as_str())
                            .collect()
                    )
                ),
            });
        }
    }

    let result_codes: HashMap<u32, &str> = catalogue
        .result_codes
        .iter()
        .map(|r| (r.result_code_id, r.name.as_str()))
        .collect();
    let activist_codes: HashMap<u32, &crate::van::ActivistCode> = catalogue
        .activist_codes
        .iter()
        .map(|a| (a.activist_code_id, a))
        .collect();
    let questions: HashMap<u32, &crate::van::SurveyQuestion> = catalogue
        .survey_questions
        .iter()
        .map(|q| (q.survey_question_id, q))
        .collect();
    let active = |status: &Option<String>| {
        status
            .as_deref()
            .is_none_or(|s| s.eq_ignore_ascii_case("active"))
    };

    for (i, row) in doc.results.iter().enumerate() {
        let mut err = |field: String, message: String| {
            errors.push(Finding {
                result: Some(row.result.clone()),
                field: format!("results[{i}].{field}"),
                message,
            })
        };
        if let Some(code) = row.result_code_id
            && code != 0
            && !result_codes.contains_key(&code)
        {
            err(
                "result_code_id".into(),
                format!(
                    "result code {code} does not exist in this VAN database (GET /configure lists them)"
                ),
            );
        }
        for (j, &code) in row.activist_codes.iter().enumerate() {
            match activist_codes.get(&code) {
                None if code != 0 => err(
                    format!("activist_codes[{j}]"),
                    format!("activist code {code} does not exist in this VAN database"),
                ),
                Some(a) if !active(&a.status) => err(
                    format!("activist_codes[{j}]"),
                    format!(
                        "activist code {code} ({}) is {}: VAN will refuse it",
                        a.name,
                        a.status.as_deref().unwrap_or("inactive")
                    ),
                ),
                _ => {}
            }
        }
        for (j, answer) in row.survey_responses.iter().enumerate() {
            match questions.get(&answer.question_id) {
                None if answer.question_id != 0 => err(
                    format!("survey_responses[{j}].question_id"),
                    format!(
                        "survey question {} does not exist in this VAN database",
                        answer.question_id
                    ),
                ),
                Some(q) if !active(&q.status) => err(
                    format!("survey_responses[{j}].question_id"),
                    format!(
                        "survey question {} ({}) is {}: VAN will refuse it",
                        answer.question_id,
                        q.name,
                        q.status.as_deref().unwrap_or("inactive")
                    ),
                ),
                Some(q)
                    if answer.response_id != 0
                        && !q
                            .responses
                            .iter()
                            .any(|r| r.survey_response_id == answer.response_id) =>
                {
                    let offered: Vec<String> = q
                        .responses
                        .iter()
                        .map(|r| format!("{} {}", r.survey_response_id, r.name))
                        .collect();
                    err(
                        format!("survey_responses[{j}].response_id"),
                        format!(
                            "{} is not a response of survey question {} ({}); its responses are: {}",
                            answer.response_id,
                            answer.question_id,
                            q.name,
                            offered.join(", ")
                        ),
                    )
                }
                _ => {}
            }
        }
    }

    if let Some(lv) = &catalogue.livevox {
        let mapped: HashSet<ResultKey> = doc
            .results
            .iter()
            .filter_map(|r| ResultKey::normalise(&r.result).ok())
            .collect();
        let mut seen = HashSet::new();
        for t in &lv.term_codes {
            let Ok(key) = ResultKey::normalise(&t.name) else {
                continue;
            };
            if !mapped.contains(&key) && seen.insert(key.clone()) {
                warnings.push(Finding {
                    result: Some(t.name.clone()),
                    field: "results".into(),
                    message: format!(
                        "LiveVox term code {:?} (id {}, service {}) has no result row: its calls will become unattempted errors until one is added",
                        t.name, t.id, t.service_id
                    ),
                });
            }
        }
    }

    Report {
        ok: errors.is_empty(),
        errors,
        warnings,
        notes: Vec::new(),
    }
}
