//! What VAN (and LiveVox) offer a candidate's result mapping to refer to: survey questions
//! with their responses, activist codes, result codes, contact and input types, and the
//! dialer's services and term codes. `configure` shows it; `validate` checks against it.

use std::fmt::Write as _;

use serde::Serialize;

use crate::livevox::{LiveVoxClient, LiveVoxError, Service, TermCode};
use crate::van::{
    ActivistCode, ContactType, InputType, ResultCode, SurveyQuestion, VanClient, VanError,
};

#[derive(Debug, Clone, Serialize)]
pub struct Catalogue {
    pub survey_questions: Vec<SurveyQuestion>,
    pub activist_codes: Vec<ActivistCode>,
    pub result_codes: Vec<ResultCode>,
    pub contact_types: Vec<ContactType>,
    pub input_types: Vec<InputType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub livevox: Option<DialerCatalogue>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DialerCatalogue {
    pub services: Vec<Service>,
    pub term_codes: Vec<TermCode>,
}

impl Catalogue {
    /// Everything VAN offers, fetched concurrently; questions and activist codes of every
    /// status, so validation can tell "inactive" from "does not exist".
    pub async fn fetch(van: &VanClient) -> Result<Self, VanError> {
        let all = Some("Active,Inactive");
        let (survey_questions, activist_codes, result_codes, contact_types, input_types) = tokio::try_join!(
            van.survey_questions(all),
            van.activist_codes(all),
            van.result_codes(),
            van.contact_types(),
            van.input_types(),
        )?;
        Ok(Self {
            survey_questions,
            activist_codes,
            result_codes,
            contact_types,
            input_types,
            livevox: None,
        })
    }

    /// The LiveVox services the candidate reads and their term codes.
    pub async fn fetch_dialer(
        lv: &LiveVoxClient,
        services: &[u64],
    ) -> Result<DialerCatalogue, LiveVoxError> {
        let all = lv.services(None).await?;
        let mut term_codes = Vec::new();
        for &service in services {
            term_codes.extend(lv.term_codes(service).await?);
        }
        let services = all
            .into_iter()
            .filter(|s| services.contains(&s.service_id))
            .collect();
        Ok(DialerCatalogue {
            services,
            term_codes,
        })
    }

    /// A listing for people building a result table by hand.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "Survey questions (id, name, status; responses indented)"
        );
        for q in &self.survey_questions {
            let _ = writeln!(
                out,
                "  {:>7}  {}  [{}]",
                q.survey_question_id,
                q.name,
                q.status.as_deref().unwrap_or("?")
            );
            for r in &q.responses {
                let _ = writeln!(out, "           {:>7}  {}", r.survey_response_id, r.name);
            }
        }
        let _ = writeln!(out, "\nActivist codes (id, name, status)");
        for a in &self.activist_codes {
            let _ = writeln!(
                out,
                "  {:>7}  {}  [{}]",
                a.activist_code_id,
                a.name,
                a.status.as_deref().unwrap_or("?")
            );
        }
        let _ = writeln!(out, "\nResult codes (id, name)");
        for r in &self.result_codes {
            let _ = writeln!(out, "  {:>7}  {}", r.result_code_id, r.name);
        }
        let _ = writeln!(out, "\nContact types (id, name)");
        for c in &self.contact_types {
            let _ = writeln!(out, "  {:>7}  {}", c.contact_type_id, c.name);
        }
        let _ = writeln!(out, "\nInput types (id, name)");
        for i in &self.input_types {
            let _ = writeln!(out, "  {:>7}  {}", i.input_type_id, i.name);
        }
        if let Some(lv) = &self.livevox {
            let _ = writeln!(out, "\nLiveVox services (id, name)");
            for s in &lv.services {
                let _ = writeln!(out, "  {:>7}  {}", s.service_id, s.name);
            }
            let _ = writeln!(out, "\nLiveVox term codes (id, service, name)");
            for t in &lv.term_codes {
                let _ = writeln!(out, "  {:>7}  {:>7}  {}", t.id, t.service_id, t.name);
            }
        }
        out
    }
}
