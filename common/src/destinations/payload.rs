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
            "agent": call.agent,
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
            "van_id": call.van_id.get(),
            "database_mode": database_mode,
            "account": call.account,
            "first_name": call.first_name,
            "last_name": call.last_name,
            "phone": call.phone,
        },
    })
}
