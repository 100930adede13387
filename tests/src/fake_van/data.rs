//! The records the fake VAN serves, shaped like the API's JSON (camelCase) so they serialise as-is.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Everything a fake VAN database holds; tests mutate it through [`super::FakeVan::with_data`].
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VanData {
    pub credentials: Vec<Credential>,
    pub survey_questions: Vec<SurveyQuestion>,
    pub activist_codes: Vec<ActivistCode>,
    pub result_codes: Vec<ResultCode>,
    pub contact_types: Vec<ContactType>,
    pub input_types: Vec<InputType>,
    /// People with a name, phones and emails on file: what find matches and get returns.
    pub people: BTreeMap<u64, Person>,
    /// Further people this database holds, known by id only (get answers them with
    /// nothing on file). Any id in neither set is a person VAN does not know: 404.
    pub known_van_ids: BTreeSet<u64>,
    /// The people of the MyCampaign database (mode 1), by id only. The two databases hold
    /// different people under different ids: a VoterFile id asked for in MyCampaign mode
    /// (or the other way round) is a 404, as in VAN.
    #[serde(default)]
    pub mycampaign_ids: BTreeSet<u64>,
}

/// One API key: valid only in this database mode. VAN authenticates by key and mode; the
/// application name is kept for the record but any user name is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Credential {
    pub application_name: String,
    pub api_key: String,
    /// 0 = VoterFile ("My Voters"), 1 = MyCampaign.
    pub db_mode: u8,
}

/// Whether a survey question or activist code can be used in the current context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Status {
    Active,
    Inactive,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "Active",
            Status::Inactive => "Inactive",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurveyQuestion {
    pub survey_question_id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub cycle: u32,
    pub name: String,
    pub medium_name: String,
    pub short_name: String,
    pub script_question: String,
    pub status: Status,
    pub responses: Vec<SurveyResponse>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SurveyResponse {
    pub survey_response_id: u64,
    pub name: String,
    pub medium_name: String,
    pub short_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivistCode {
    pub activist_code_id: u64,
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub medium_name: String,
    pub short_name: String,
    pub description: String,
    pub script_question: String,
    pub status: Status,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResultCode {
    pub result_code_id: u64,
    pub name: String,
    pub medium_name: String,
    pub short_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContactType {
    pub contact_type_id: u64,
    pub name: String,
    pub channel_type_name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InputType {
    pub input_type_id: u64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Person {
    pub van_id: u64,
    pub first_name: String,
    pub last_name: String,
    pub phones: Vec<Phone>,
    pub emails: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Phone {
    pub phone_id: u64,
    /// Digits only, e.g. "2125550143".
    pub phone_number: String,
}

impl VanData {
    /// Whether `van_id` names a person the database of `mode` (0 VoterFile, 1
    /// MyCampaign) holds.
    pub fn knows_person(&self, van_id: u64, mode: u8) -> bool {
        match mode {
            1 => self.mycampaign_ids.contains(&van_id),
            _ => self.people.contains_key(&van_id) || self.known_van_ids.contains(&van_id),
        }
    }

    /// The person with details on file, in the VoterFile database (the seeded people).
    pub fn person_on_file(&self, van_id: u64, mode: u8) -> Option<&Person> {
        (mode == 0).then(|| self.people.get(&van_id)).flatten()
    }
}
