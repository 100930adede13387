//! The rules VAN applies to a `POST /people/{vanId}/canvassResponses` body, in VAN's order,
//! answering the first broken one with VAN's own text and property path.

use serde_json::Value;

use super::reply::VanError;
use super::{BothCodes, Status, VanData};

fn invalid(text: &str, property: impl Into<String>) -> VanError {
    VanError::invalid(text, Some(property.into()))
}

/// A non-negative integer id, or `None` for anything else (strings included: VAN's
/// binder would coerce them, but a client sending them is a bug worth catching).
fn id_at(value: Option<&Value>) -> Option<u64> {
    value.and_then(Value::as_u64)
}

fn is_absent(value: Option<&Value>) -> bool {
    matches!(value, None | Some(Value::Null))
}

pub(super) fn validate(data: &VanData, both: BothCodes, body: &Value) -> Result<(), VanError> {
    check_context(data, body)?;

    let result_code = body.get("resultCodeId");
    let responses: &[Value] = match body.get("responses") {
        None | Some(Value::Null) => &[],
        Some(Value::Array(items)) => items,
        Some(_) => return Err(invalid("'responses' must be a list.", "responses")),
    };
    let has_code = !is_absent(result_code);
    match (has_code, responses.is_empty()) {
        (true, false) if both == BothCodes::Reject => {
            return Err(invalid(
                "resultCodeId must be null when responses are specified",
                "resultCodeId",
            ));
        }
        (false, true) => {
            return Err(VanError::invalid(
                "Either 'resultCodeId' or 'responses' must be specified.",
                None,
            ));
        }
        // With responses the code is overwritten by Canvassed, so its value never matters.
        (true, true) => check_result_code(data, result_code)?,
        _ => {}
    }
    for (i, response) in responses.iter().enumerate() {
        check_response(data, i, response)?;
    }
    Ok(())
}

fn check_context(data: &VanData, body: &Value) -> Result<(), VanError> {
    let Some(context) = body.get("canvassContext").filter(|c| c.is_object()) else {
        return Err(invalid("'canvassContext' is required.", "canvassContext"));
    };
    // The docs call both ids optional; the fake insists so a client that forgets one is caught.
    let contact_type = id_at(context.get("contactTypeId"))
        .and_then(|id| data.contact_types.iter().find(|t| t.contact_type_id == id))
        .ok_or_else(|| {
            invalid(
                "'contactTypeId' must be a valid contact type.",
                "canvassContext.contactTypeId",
            )
        })?;
    id_at(context.get("inputTypeId"))
        .filter(|id| data.input_types.iter().any(|t| t.input_type_id == *id))
        .ok_or_else(|| {
            invalid(
                "'inputTypeId' must be a valid input type.",
                "canvassContext.inputTypeId",
            )
        })?;
    if let Some(date) = context.get("dateCanvassed").filter(|d| !d.is_null()) {
        let parses = date.as_str().is_some_and(|d| {
            d.parse::<jiff::Timestamp>().is_ok() || d.parse::<jiff::civil::DateTime>().is_ok()
        });
        if !parses {
            return Err(invalid(
                "'dateCanvassed' must be a valid date.",
                "canvassContext.dateCanvassed",
            ));
        }
    }
    let needs_phone = ["Phone", "SMS Text"]
        .iter()
        .any(|n| contact_type.name.eq_ignore_ascii_case(n));
    let has_phone = context
        .get("phone")
        .and_then(|p| p.get("phoneNumber"))
        .and_then(Value::as_str)
        .is_some_and(|n| n.chars().any(|c| c.is_ascii_digit()));
    if needs_phone && !has_phone {
        return Err(invalid(
            "'phone' is required when the contact type is Phone or SMS Text.",
            "canvassContext.phone",
        ));
    }
    Ok(())
}

fn check_result_code(data: &VanData, result_code: Option<&Value>) -> Result<(), VanError> {
    let known = id_at(result_code)
        .is_some_and(|id| data.result_codes.iter().any(|c| c.result_code_id == id));
    if known {
        Ok(())
    } else {
        Err(invalid(
            "'resultCodeId' must be a valid result code in the current context.",
            "resultCodeId",
        ))
    }
}

fn check_response(data: &VanData, i: usize, response: &Value) -> Result<(), VanError> {
    let at = |field: &str| format!("responses[{i}].{field}");
    let kind = response.get("type").and_then(Value::as_str).unwrap_or("");
    if kind.eq_ignore_ascii_case("SurveyResponse") {
        let question = id_at(response.get("surveyQuestionId"))
            .and_then(|id| {
                data.survey_questions
                    .iter()
                    .find(|q| q.survey_question_id == id)
            })
            .filter(|q| q.status == Status::Active)
            .ok_or_else(|| {
                invalid(
                    "'surveyQuestionId' must be a valid Survey Question that is available in the current context.",
                    at("surveyQuestionId"),
                )
            })?;
        let answer = id_at(response.get("surveyResponseId"));
        if !answer.is_some_and(|id| {
            question
                .responses
                .iter()
                .any(|r| r.survey_response_id == id)
        }) {
            return Err(invalid(
                "'surveyResponseId' must be a valid Response to the given Survey Question.",
                at("surveyResponseId"),
            ));
        }
        Ok(())
    } else if kind.eq_ignore_ascii_case("ActivistCode") {
        let active = id_at(response.get("activistCodeId")).is_some_and(|id| {
            data.activist_codes
                .iter()
                .any(|c| c.activist_code_id == id && c.status == Status::Active)
        });
        if !active {
            return Err(invalid(
                "'activistCodeId' must be a valid Activist Code that is available in the current context.",
                at("activistCodeId"),
            ));
        }
        let action = response.get("action").and_then(Value::as_str).unwrap_or("");
        if !(action.eq_ignore_ascii_case("Apply") || action.eq_ignore_ascii_case("Remove")) {
            return Err(invalid(
                "'action' must be 'Apply' or 'Remove'.",
                at("action"),
            ));
        }
        Ok(())
    } else {
        Err(invalid(
            "'type' must be 'SurveyResponse' or 'ActivistCode'.",
            at("type"),
        ))
    }
}
