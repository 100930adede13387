//! VAN's wire shapes: what its list and person endpoints return, and the bodies we send.
//!
//! Reading is tolerant (unknown fields ignored, anything VAN may omit or null is an
//! `Option`); writing is exact, because VAN rejects or reinterprets loose bodies.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::values::{PhoneNumber, VanId};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurveyQuestion {
    pub survey_question_id: u32,
    #[serde(default)]
    pub r#type: Option<String>,
    #[serde(default)]
    pub cycle: Option<i32>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default)]
    pub medium_name: Option<String>,
    #[serde(default)]
    pub short_name: Option<String>,
    #[serde(default)]
    pub script_question: Option<String>,
    /// `Active`, `Archived` or `Inactive`.
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub responses: Vec<SurveyResponse>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurveyResponse {
    pub survey_response_id: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default)]
    pub medium_name: Option<String>,
    #[serde(default)]
    pub short_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivistCode {
    pub activist_code_id: u32,
    #[serde(default)]
    pub r#type: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default)]
    pub medium_name: Option<String>,
    #[serde(default)]
    pub short_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub script_question: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultCode {
    pub result_code_id: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default)]
    pub medium_name: Option<String>,
    #[serde(default)]
    pub short_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactType {
    pub contact_type_id: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
    #[serde(default)]
    pub channel_type_name: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputType {
    pub input_type_id: u32,
    #[serde(default, deserialize_with = "null_as_default")]
    pub name: String,
}

/// A person as `GET /people/{vanId}?$expand=phones` returns them (the parts we use).
/// `Debug` leaves the names out.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub van_id: VanId,
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    /// `None` unless phones were expanded.
    #[serde(default)]
    pub phones: Option<Vec<PersonPhone>>,
}

impl fmt::Debug for Person {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Person")
            .field("van_id", &self.van_id)
            .field("phones", &self.phones)
            .finish_non_exhaustive()
    }
}

impl Person {
    /// The `phoneId` VAN keeps for `phone`, so a wrong-number result can disqualify the
    /// phone rather than the person.
    pub fn phone_id_for(&self, phone: &PhoneNumber) -> Option<u64> {
        self.phones
            .as_deref()?
            .iter()
            .find(|p| p.number().as_ref() == Some(phone))
            .map(|p| p.phone_id)
    }
}

/// One of a person's phones. `Debug` masks the number.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PersonPhone {
    pub phone_id: u64,
    /// As VAN stores it; see [`PersonPhone::number`] for the parsed form.
    #[serde(default)]
    pub phone_number: Option<String>,
    #[serde(default)]
    pub dialing_prefix: Option<String>,
    /// `H`, `C`, `W`, …
    #[serde(default)]
    pub phone_type: Option<String>,
    #[serde(default)]
    pub is_preferred: Option<bool>,
}

impl PersonPhone {
    /// The number as a [`PhoneNumber`], if it is a US number.
    pub fn number(&self) -> Option<PhoneNumber> {
        PhoneNumber::parse(self.phone_number.as_deref()?).ok()
    }
}

impl fmt::Debug for PersonPhone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let masked = match (&self.phone_number, self.number()) {
            (None, _) => None,
            (Some(_), Some(n)) => Some(n.to_string()),
            (Some(_), None) => Some("<not a US number>".to_owned()),
        };
        f.debug_struct("PersonPhone")
            .field("phone_id", &self.phone_id)
            .field("phone_number", &masked)
            .field("phone_type", &self.phone_type)
            .field("is_preferred", &self.is_preferred)
            .finish_non_exhaustive()
    }
}

/// The body of `POST /people/{vanId}/canvassResponses`: one call's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanvassResponse {
    pub context: CanvassContext,
    pub outcome: CanvassOutcome,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CanvassContext {
    pub contact_type_id: u32,
    pub input_type_id: u32,
    /// RFC 3339 with the local offset, e.g. `2026-11-21T18:04:11-05:00`.
    pub date_canvassed: String,
    /// Required by VAN for the Phone and SMS Text contact types.
    pub phone: Option<PhoneNumber>,
    pub phone_id: Option<u64>,
    pub omit_activist_code_contact_history: bool,
}

/// What the call achieved. A result code (a non-contact such as Busy) and responses
/// (a contact) are exclusive: VAN either rejects both together or overwrites the code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CanvassOutcome {
    ResultCode(u32),
    Responses(Vec<ResponseItem>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ResponseItem {
    #[serde(rename = "SurveyResponse")]
    Survey {
        #[serde(rename = "surveyQuestionId")]
        question_id: u32,
        #[serde(rename = "surveyResponseId")]
        response_id: u32,
    },
    #[serde(rename = "ActivistCode", rename_all = "camelCase")]
    ActivistCode {
        activist_code_id: u32,
        action: ActivistAction,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ActivistAction {
    Apply,
    Remove,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CanvassWire {
    canvass_context: ContextWire,
    result_code_id: Option<u32>,
    responses: Option<Vec<ResponseItem>>,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContextWire {
    contact_type_id: u32,
    input_type_id: u32,
    date_canvassed: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone: Option<PhoneWire>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    phone_id: Option<u64>,
    #[serde(default)]
    omit_activist_code_contact_history: bool,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PhoneWire {
    dialing_prefix: String,
    phone_number: PhoneNumber,
}

impl Serialize for CanvassResponse {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = &self.context;
        let (result_code_id, responses) = match &self.outcome {
            CanvassOutcome::ResultCode(code) => (Some(*code), None),
            CanvassOutcome::Responses(items) => (None, Some(items.clone())),
        };
        CanvassWire {
            canvass_context: ContextWire {
                contact_type_id: c.contact_type_id,
                input_type_id: c.input_type_id,
                date_canvassed: c.date_canvassed.clone(),
                phone: c.phone.clone().map(|phone| PhoneWire {
                    dialing_prefix: phone.dialing_prefix().to_owned(),
                    phone_number: phone,
                }),
                phone_id: c.phone_id,
                omit_activist_code_contact_history: c.omit_activist_code_contact_history,
            },
            result_code_id,
            responses,
        }
        .serialize(s)
    }
}

/// Reads the body back (queue messages, the ledger), refusing one VAN would refuse for
/// carrying both a result code and responses, or neither.
impl<'de> Deserialize<'de> for CanvassResponse {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let wire = CanvassWire::deserialize(d)?;
        let outcome = match (wire.result_code_id, wire.responses) {
            (Some(code), None) => CanvassOutcome::ResultCode(code),
            (None, Some(items)) if !items.is_empty() => CanvassOutcome::Responses(items),
            (Some(_), Some(_)) => {
                return Err(serde::de::Error::custom(
                    "a canvass response carries either resultCodeId or responses, not both",
                ));
            }
            _ => {
                return Err(serde::de::Error::custom(
                    "a canvass response needs resultCodeId or responses",
                ));
            }
        };
        let c = wire.canvass_context;
        Ok(Self {
            context: CanvassContext {
                contact_type_id: c.contact_type_id,
                input_type_id: c.input_type_id,
                date_canvassed: c.date_canvassed,
                phone: c.phone.map(|p| p.phone_number),
                phone_id: c.phone_id,
                omit_activist_code_contact_history: c.omit_activist_code_contact_history,
            },
            outcome,
        })
    }
}

/// The body of `POST /people/find`. VAN's minimum match is first + last name with a
/// phone or an email, or an email alone. `Debug` leaves names and email out.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct FindPerson {
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<PhoneNumber>,
    pub email: Option<String>,
    pub van_id: Option<VanId>,
}

impl fmt::Debug for FindPerson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FindPerson")
            .field("has_first_name", &self.first_name.is_some())
            .field("has_last_name", &self.last_name.is_some())
            .field("phone", &self.phone)
            .field("has_email", &self.email.is_some())
            .field("van_id", &self.van_id)
            .finish()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FindWire<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    van_id: Option<VanId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    last_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    phones: Vec<FindPhone<'a>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    emails: Vec<FindEmail<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FindPhone<'a> {
    phone_number: &'a str,
}

#[derive(Serialize)]
struct FindEmail<'a> {
    email: &'a str,
}

impl Serialize for FindPerson {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        FindWire {
            van_id: self.van_id,
            first_name: self.first_name.as_deref(),
            last_name: self.last_name.as_deref(),
            phones: self
                .phone
                .iter()
                .map(|p| FindPhone {
                    phone_number: p.digits(),
                })
                .collect(),
            emails: self.email.iter().map(|e| FindEmail { email: e }).collect(),
        }
        .serialize(s)
    }
}

/// `find`'s answer body: `{"vanId":N,"status":"Matched"}` or
/// `{"vanId":null,"status":"Unmatched"}`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct FindAnswer {
    #[serde(default)]
    pub van_id: Option<u64>,
    #[serde(default)]
    pub status: Option<String>,
}

/// One page of a list answer: VAN's paging envelope, or the bare array the canvass
/// lookups return, which has no next page.
pub(crate) fn read_list<T: serde::de::DeserializeOwned>(
    value: serde_json::Value,
) -> Result<(Vec<T>, Option<String>), serde_json::Error> {
    if value.is_array() {
        return Ok((serde_json::from_value(value)?, None));
    }
    let page: Page<T> = serde_json::from_value(value)?;
    Ok((page.items, page.next_page_link))
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", bound = "T: Deserialize<'de>")]
struct Page<T> {
    #[serde(deserialize_with = "null_as_default")]
    items: Vec<T>,
    #[serde(default)]
    next_page_link: Option<String>,
}

/// Reads a missing or null value as the type's default (an empty name or list).
pub(crate) fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn context() -> CanvassContext {
        CanvassContext {
            contact_type_id: 1,
            input_type_id: 11,
            date_canvassed: "2026-11-21T18:04:11-05:00".into(),
            phone: Some(PhoneNumber::parse("(212) 555-0143").unwrap()),
            phone_id: None,
            omit_activist_code_contact_history: false,
        }
    }

    #[test]
    fn a_result_code_post_sends_null_responses() {
        let body = CanvassResponse {
            context: context(),
            outcome: CanvassOutcome::ResultCode(18),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"canvassContext":{"contactTypeId":1,"inputTypeId":11,"dateCanvassed":"2026-11-21T18:04:11-05:00","phone":{"dialingPrefix":"1","phoneNumber":"2125550143"},"omitActivistCodeContactHistory":false},"resultCodeId":18,"responses":null}"#
        );
    }

    #[test]
    fn a_responses_post_sends_a_null_result_code() {
        let body = CanvassResponse {
            context: CanvassContext {
                phone_id: Some(123),
                omit_activist_code_contact_history: true,
                ..context()
            },
            outcome: CanvassOutcome::Responses(vec![
                ResponseItem::Survey {
                    question_id: 2301,
                    response_id: 9120,
                },
                ResponseItem::ActivistCode {
                    activist_code_id: 4411,
                    action: ActivistAction::Apply,
                },
                ResponseItem::ActivistCode {
                    activist_code_id: 4412,
                    action: ActivistAction::Remove,
                },
            ]),
        };
        assert_eq!(
            serde_json::to_string(&body).unwrap(),
            r#"{"canvassContext":{"contactTypeId":1,"inputTypeId":11,"dateCanvassed":"2026-11-21T18:04:11-05:00","phone":{"dialingPrefix":"1","phoneNumber":"2125550143"},"phoneId":123,"omitActivistCodeContactHistory":true},"resultCodeId":null,"responses":[{"type":"SurveyResponse","surveyQuestionId":2301,"surveyResponseId":9120},{"type":"ActivistCode","activistCodeId":4411,"action":"Apply"},{"type":"ActivistCode","activistCodeId":4412,"action":"Remove"}]}"#
        );
        let back: CanvassResponse =
            serde_json::from_value(serde_json::to_value(&body).unwrap()).unwrap();
        assert_eq!(back, body);
    }

    #[test]
    fn a_context_without_a_phone_omits_it() {
        let body = CanvassResponse {
            context: CanvassContext {
                contact_type_id: 2,
                phone: None,
                ..context()
            },
            outcome: CanvassOutcome::ResultCode(4),
        };
        let value = serde_json::to_value(&body).unwrap();
        assert!(value["canvassContext"].get("phone").is_none(), "{value}");
        assert!(value["canvassContext"].get("phoneId").is_none(), "{value}");
    }

    #[test]
    fn a_body_with_both_or_neither_outcome_is_refused_when_read() {
        let mut both = serde_json::to_value(CanvassResponse {
            context: context(),
            outcome: CanvassOutcome::ResultCode(18),
        })
        .unwrap();
        both["responses"] =
            json!([{"type":"SurveyResponse","surveyQuestionId":1,"surveyResponseId":2}]);
        assert!(serde_json::from_value::<CanvassResponse>(both.clone()).is_err());
        both["responses"] = json!(null);
        both["resultCodeId"] = json!(null);
        assert!(serde_json::from_value::<CanvassResponse>(both).is_err());
    }

    #[test]
    fn a_find_body_lists_phones_and_emails_like_van_expects() {
        let query = FindPerson {
            first_name: Some("Ada".into()),
            last_name: Some("Lovelace".into()),
            phone: Some(PhoneNumber::parse("212-555-0143").unwrap()),
            email: Some("ada@example.org".into()),
            van_id: None,
        };
        assert_eq!(
            serde_json::to_value(&query).unwrap(),
            json!({"firstName":"Ada","lastName":"Lovelace",
                   "phones":[{"phoneNumber":"2125550143"}],
                   "emails":[{"email":"ada@example.org"}]})
        );
        let debug = format!("{query:?}");
        for secret in ["Ada", "Lovelace", "ada@", "2125550143"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        let email_only = FindPerson {
            email: Some("ada@example.org".into()),
            ..FindPerson::default()
        };
        assert_eq!(
            serde_json::to_value(&email_only).unwrap(),
            json!({"emails":[{"email":"ada@example.org"}]})
        );
    }

    #[test]
    fn list_items_tolerate_nulls_and_unknown_fields() {
        let q: SurveyQuestion = serde_json::from_value(json!({
            "surveyQuestionId": 2301, "type": "Candidate", "cycle": null, "name": "Q1",
            "mediumName": null, "status": "Active", "responses": null, "brandNew": true
        }))
        .unwrap();
        assert_eq!(q.survey_question_id, 2301);
        assert!(q.responses.is_empty());
        assert!(q.short_name.is_none());
        let nameless: ResultCode =
            serde_json::from_value(json!({"resultCodeId": 4, "name": null})).unwrap();
        assert_eq!(nameless.name, "");
        let (items, next) = read_list::<ResultCode>(json!({
            "items": [{"resultCodeId": 18, "name": "Busy"}],
            "nextPageLink": "https://api.securevan.com/v4/x?$top=1&$skip=1", "count": 2
        }))
        .unwrap();
        assert_eq!(items[0].result_code_id, 18);
        assert!(next.unwrap().ends_with("$skip=1"));
        let (items, next) =
            read_list::<ResultCode>(json!([{"resultCodeId": 18, "name": "Busy"}])).unwrap();
        assert_eq!((items.len(), next), (1, None));
        assert!(read_list::<ResultCode>(json!({"nextPageLink": null})).is_err());
    }

    #[test]
    fn a_persons_debug_shows_no_names_or_full_numbers() {
        let person: Person = serde_json::from_value(json!({
            "vanId": 101, "firstName": "Grace", "lastName": "Hopper",
            "phones": [{"phoneId": 7, "phoneNumber": "2125550143", "phoneType": "C"}]
        }))
        .unwrap();
        let debug = format!("{person:?}");
        for secret in ["Grace", "Hopper", "2125550143"] {
            assert!(!debug.contains(secret), "{debug}");
        }
        assert!(debug.contains("0143"), "{debug}");
        let phone = PhoneNumber::parse("212 555 0143").unwrap();
        assert_eq!(person.phone_id_for(&phone), Some(7));
        assert_eq!(
            person.phone_id_for(&PhoneNumber::parse("2125550144").unwrap()),
            None
        );
    }
}
