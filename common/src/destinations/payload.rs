//! The call as destinations outside VAN receive it: `{"call": …, "contact": …}`, one shape
//! for the webhook body and the templated destination's variables, so a receiver reads
//! the same field names whichever way it is fed.

use serde_json::{Value, json};

use crate::call::Call;
use crate::candidate::Candidate;
use crate::mapping::ResultRow;

/// `call` as a destination receives it. `row` is its result row (`None`: a result the
/// mapping does not know, sent only by destinations that take every call).
pub fn call_and_contact(call: &Call, row: Option<&ResultRow>, candidate: &Candidate) -> Value {
    let database_mode = call
        .database_mode
        .or(candidate.van().map(|v| v.database_mode));
    json!({
        "call": {
            "id": call.call_id,
            "local_date": call.local_date.to_string(),
            "started_at": call.started_at.to_string(),
            "ended_at": call.ended_at.map(|t| t.to_string()),
            "agent": call.agent(),
            "result_key": call.result.as_str(),
            "result": call.result_text,
            "display_name": row.map(|r| r.display_name.as_str()),
            "success": row.map(|r| r.success),
            // Calls read from a CDR file know their line; the API's do not.
            "source": if call.origin.is_some() { "cdr" } else { "livevox" },
            "service": call.service,
            "campaign": call.campaign,
        },
        "contact": {
            "van_id": call.van_id.map(crate::values::VanId::get),
            "database_mode": database_mode,
            "account": call.account(),
            "first_name": call.first_name(),
            "last_name": call.last_name(),
            "phone": call.phone,
        },
    })
}

/// What [`call_and_contact`] makes of a made-up call, for checking templates when a
/// document is saved and for the README. Not personal data.
pub fn sample() -> Value {
    json!({
        "call": {
            "id": "cdr-2026-11-03-000123",
            "local_date": "2026-11-03",
            "started_at": "2026-11-03T18:04:05Z",
            "ended_at": "2026-11-03T18:06:41Z",
            "agent": "jsmith",
            "result_key": "agent cust 1",
            "result": "Agent Cust 1 (167)",
            "display_name": "Strong support",
            "success": true,
            "source": "cdr",
            "service": "phones-tx",
            "campaign": "gotv-2026",
        },
        "contact": {
            "van_id": 100_234_567,
            "database_mode": "voter_file",
            "account": "100234567",
            "first_name": "Ana",
            "last_name": "Núñez",
            "phone": "5125550123",
        },
    })
}

#[cfg(test)]
pub(crate) mod fixtures {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::call::{CallId, CallText};
    use crate::values::{PhoneNumber, ResultKey, VanId};

    /// A candidate with two result rows and the given `destinations`.
    pub fn candidate(destinations: Value) -> crate::destinations::Compiled {
        let doc: crate::candidate::CandidateDoc = serde_json::from_value(json!({
            "slug": "ny14-smith", "display_name": "Smith", "time_zone": "America/New_York",
            "sync_hour": 2, "source": {"cdr": {}}, "strategy": "full",
            "van": {"secret_name": "callsync/ny14-smith/van", "database_mode": "voter_file"},
            "results": [
                {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
                 "survey_responses": [{"question_id": 2301, "response_id": 9120}], "sync": true},
                {"result": "Wrong Number", "display_name": "Wrong number", "success": false,
                 "result_code_id": 20, "sync": true}
            ],
            "destinations": destinations,
        }))
        .unwrap();
        crate::destinations::Compiled::from_doc(doc, crate::egress::Egress::STRICT).unwrap()
    }

    pub fn call(result: &str, first_name: &str) -> Call {
        Call {
            call_id: CallId("101312525040".into()),
            text: CallText::new("18372073", first_name, "Núñez", "agent7"),
            van_id: Some(VanId::new(18372073).unwrap()),
            phone: Some(PhoneNumber::parse("2125550143").unwrap()),
            started_at: "2026-11-21T23:04:11Z".parse().unwrap(),
            ended_at: Some("2026-11-21T23:06:41Z".parse().unwrap()),
            result: ResultKey::normalise(result).unwrap(),
            result_text: result.into(),
            service: Some("phones-tx".into()),
            campaign: None,
            local_date: jiff::civil::date(2026, 11, 21),
            origin: None,
            database_mode: None,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// Every path of a value, `call.id`-style.
    fn paths(value: &Value, at: &str, out: &mut Vec<String>) {
        if let Value::Object(map) = value {
            for (k, v) in map {
                let path = if at.is_empty() {
                    k.clone()
                } else {
                    format!("{at}.{k}")
                };
                paths(v, &path, out);
                out.push(path);
            }
        }
    }

    #[test]
    fn the_sample_has_exactly_the_fields_a_call_gives_templates() {
        let candidate = fixtures::candidate(json!([]));
        let call = fixtures::call("Agent Cust 1", "Ana");
        let real = call_and_contact(&call, candidate.mapping.get(&call.result), &candidate);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        paths(&real, "", &mut want);
        paths(&sample(), "", &mut got);
        want.sort();
        got.sort();
        assert_eq!(got, want);
        assert_eq!(real["contact"]["database_mode"], "voter_file");
    }
}
