//! What a day came to: counts per state and per display name, the errors with their
//! reasons, and the run report sent to the candidate's webhook (JSON with a `text` field
//! fit for Slack or an e-mail relay). Names and phone numbers never appear here.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use crate::candidate::Candidate;
use crate::ledger::{CallRecord, CallState, DayKey, ErrorNote};

/// Counts of a day's calls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Tally {
    pub total: u64,
    pub by_state: BTreeMap<CallState, u64>,
    /// Per display name (the mapping row's; `(unmapped)` for calls without one).
    pub by_display_name: BTreeMap<String, u64>,
    /// Calls posted to VAN (finished with a VAN receipt).
    pub synced: u64,
    /// Calls finished in a CSV.
    pub exported: u64,
    pub errors: u64,
}

pub fn tally(records: &[CallRecord]) -> Tally {
    let mut t = Tally::default();
    for r in records {
        t.add(r);
    }
    t
}

impl Tally {
    /// Count one more call.
    pub fn add(&mut self, r: &CallRecord) {
        self.total += 1;
        *self.by_state.entry(r.delivery.state).or_default() += 1;
        let name = r.display_name.as_deref().unwrap_or("(unmapped)");
        match self.by_display_name.get_mut(name) {
            Some(n) => *n += 1,
            None => {
                self.by_display_name.insert(name.to_owned(), 1);
            }
        }
        match (&r.delivery.state, &r.delivery.receipt) {
            (CallState::Finished, Some(crate::ledger::Receipt::Van { .. })) => self.synced += 1,
            (CallState::Finished, Some(crate::ledger::Receipt::Csv { .. })) => {
                self.exported += 1;
            }
            (CallState::AttemptedError | CallState::UnattemptedError, _) => self.errors += 1,
            _ => {}
        }
    }
}

/// One call in an error state, as the status endpoint lists it.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorLine<'a> {
    pub call_id: &'a str,
    pub state: CallState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub result: Option<&'a str>,
    pub error: Option<&'a ErrorNote>,
}

pub fn error_lines(records: &[CallRecord]) -> Vec<ErrorLine<'_>> {
    records.iter().filter_map(error_line).collect()
}

/// The call's line in the list of errors, when it is in an error state.
pub fn error_line(r: &CallRecord) -> Option<ErrorLine<'_>> {
    matches!(
        r.delivery.state,
        CallState::AttemptedError | CallState::UnattemptedError
    )
    .then(|| ErrorLine {
        call_id: &r.key.call_id.0,
        state: r.delivery.state,
        result: r.call.as_ref().map(|c| c.result.as_str()),
        error: r.delivery.error.as_ref(),
    })
}

/// The report posted once a day is settled.
pub fn run_report(
    candidate: &Candidate,
    day: &DayKey,
    t: &Tally,
    deliveries: &BTreeMap<String, BTreeMap<CallState, u64>>,
    csv_links: &[String],
) -> Value {
    let mut text = format!(
        "callsync: {} — calls of {}\n{} calls: {} posted to VAN, {} in the CSV, {} ignored, {} errors\n",
        candidate.doc().display_name,
        day.date,
        t.total,
        t.synced,
        t.exported,
        t.by_state.get(&CallState::Ignored).copied().unwrap_or(0),
        t.errors,
    );
    let mut names: Vec<(&String, &u64)> = t.by_display_name.iter().collect();
    names.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    for (name, n) in names {
        text.push_str(&format!("• {name}: {n}\n"));
    }
    let count = |c: &BTreeMap<CallState, u64>, s| c.get(&s).copied().unwrap_or(0);
    let mut destinations = serde_json::Map::new();
    let mut delivery_errors = 0;
    for (name, counts) in deliveries {
        let delivered = count(counts, CallState::Finished);
        let failed =
            count(counts, CallState::AttemptedError) + count(counts, CallState::UnattemptedError);
        let skipped = count(counts, CallState::Ignored);
        delivery_errors += failed;
        text.push_str(&format!(
            "→ {name}: {delivered} delivered, {failed} failed, {skipped} not for it\n"
        ));
        destinations.insert(
            name.clone(),
            json!({"delivered": delivered, "failed": failed, "ignored": skipped, "by_state": counts}),
        );
    }
    if t.errors + delivery_errors > 0 {
        text.push_str(&format!(
            "Errors are listed at GET /status/{}?date={}; after fixing the mapping, POST /retry.\n",
            day.candidate, day.date
        ));
    }
    for link in csv_links {
        text.push_str(&format!("CSV (link valid 7 days): {link}\n"));
    }
    json!({
        "text": text,
        "candidate": day.candidate,
        "date": day.date,
        "total": t.total,
        "synced": t.synced,
        "exported": t.exported,
        "errors": t.errors,
        "by_state": t.by_state,
        "by_display_name": t.by_display_name,
        "csv": csv_links,
        "destinations": destinations,
    })
}
