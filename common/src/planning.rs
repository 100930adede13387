//! How a call is planned: a pure function of the call and its candidate that says whether
//! the call is posted to VAN, written to the CSV, ignored, or cannot be handled — plus the
//! daily request budget, which moves the lowest-priority VAN posts of a day to the CSV.
//! Every rule about where a call goes lives here, including which calls each configured
//! destination receives ([`select`]; each destination then plans its own payload).

use std::cmp::Reverse;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::call::{Call, CallId};
use crate::candidate::{Candidate, Strategy};
use crate::mapping::VanAction;
use crate::values::DatabaseMode;
use crate::values::{PhoneNumber, VanId};

pub use crate::candidate::Select;

/// What happens to one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Van(VanPost),
    Csv(CsvReason),
    /// The mapping says this result is not worth keeping (e.g. dropped calls).
    Ignore,
    /// The call cannot be handled until someone fixes the data or the mapping.
    Error(PlanError),
}

/// A canvass post, ready but for the ids VAN resolves by name at send time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VanPost {
    /// `None` for a call whose account carries no VAN id: an extension (`person_match`)
    /// finds it before the post, or the post fails saying so.
    pub van_id: Option<VanId>,
    /// The database the call is posted to (the account's system, else the candidate's).
    pub database_mode: DatabaseMode,
    pub action: VanAction,
    /// The call's start in the candidate's zone, RFC 3339 with offset.
    pub date_canvassed: String,
    pub phone: Option<PhoneNumber>,
    /// The mapping row's priority, for the daily budget.
    pub priority: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CsvReason {
    /// The row is marked `csv` and not `sync`.
    CsvRow,
    /// Strategy `hybrid`: the row is marked `csv` (as well as `sync`).
    HybridCsvRow,
    /// Strategy `all_csv`.
    AllCsv,
    /// Strategy `budget`: the day's free VAN requests were used by higher-priority calls.
    OverBudget,
    /// Extension `cost_guard`: the day's cap on VAN requests was reached before its post.
    CostGuard,
}

impl CsvReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CsvRow => "csv_row",
            Self::HybridCsvRow => "hybrid_csv_row",
            Self::AllCsv => "all_csv",
            Self::OverBudget => "over_budget",
            Self::CostGuard => "cost_guard",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// `at` says where the call was read: `file line N, column "result"` for a CDR row,
    /// `LiveVox call <id> (service <id>)` for the API.
    #[error(
        "{at} = {text:?}: this result is not in the candidate's result mapping — add a row for {key:?} (it also matches every other spelling of it) with PUT /candidates/{candidate}/results or in the document's `results`, then POST /retry {{\"candidate\": \"{candidate}\", \"date\": \"{date}\"}} to plan these calls again"
    )]
    UnknownResult {
        key: String,
        text: String,
        at: String,
        candidate: String,
        date: jiff::civil::Date,
    },
    #[error(
        "the call has no usable dialed phone number, and VAN requires one for contact type {contact_type:?}"
    )]
    MissingPhone { contact_type: String },
    #[error(
        "the account names the {mode} database, and the candidate has no VAN key for it — add one under van.other_databases (or van.secret_name for its main database), then POST /retry"
    )]
    NoKeyForDatabase { mode: &'static str },
    /// A destination could not build what it sends for the call (a template that fails on
    /// this call's values). Names the template and line, never the values.
    #[error(
        "destination {destination:?} could not build its request: {message} — fix the destination's template, then POST /retry with this destination"
    )]
    Payload {
        destination: String,
        message: String,
    },
    /// An extension's `after_read` hook failed on the call.
    #[error("extension {extension}: {message} — then POST /retry to plan these calls again")]
    Extension { extension: String, message: String },
}

impl PlanError {
    /// A stable code for the ledger and reports.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnknownResult { .. } => "unknown_result",
            Self::MissingPhone { .. } => "missing_phone",
            Self::NoKeyForDatabase { .. } => "no_key_for_database",
            Self::Payload { .. } => "payload_failed",
            Self::Extension { .. } => "extension_failed",
        }
    }
}

/// Plan one call. The budget is applied afterwards, over the whole day ([`apply_budget`]).
pub fn plan(call: &Call, candidate: &Candidate) -> Plan {
    let Some(row) = candidate.mapping.get(&call.result) else {
        return Plan::Error(unknown_result(call, candidate));
    };
    if !row.sync && !row.csv {
        return Plan::Ignore;
    }
    let post_it = match candidate.strategy() {
        Strategy::AllCsv => return Plan::Csv(CsvReason::AllCsv),
        Strategy::Hybrid if row.csv && row.sync => return Plan::Csv(CsvReason::HybridCsvRow),
        Strategy::Full | Strategy::Hybrid | Strategy::Budget { .. } => row.sync,
    };
    // Validation guarantees every synced row carries an action and a candidate that posts
    // has VAN settings; a row without them can only go to the CSV.
    let (true, Some(action), Some(van)) = (post_it, row.van.clone(), candidate.van()) else {
        return Plan::Csv(CsvReason::CsvRow);
    };
    let database_mode = call.database_mode.unwrap_or(van.database_mode);
    if van.secret_for(database_mode).is_none() {
        return Plan::Error(PlanError::NoKeyForDatabase {
            mode: match database_mode {
                DatabaseMode::VoterFile => "VoterFile (voter_file)",
                DatabaseMode::MyCampaign => "MyCampaign (my_campaign)",
            },
        });
    }
    if call.phone.is_none() && van.contact_type_needs_phone() {
        return Plan::Error(PlanError::MissingPhone {
            contact_type: van.contact_type.clone(),
        });
    }
    Plan::Van(VanPost {
        van_id: call.van_id,
        database_mode,
        action,
        date_canvassed: date_canvassed(call.started_at, &candidate.zone),
        phone: call.phone.clone(),
        priority: row.priority,
    })
}

pub(crate) fn unknown_result(call: &Call, candidate: &Candidate) -> PlanError {
    let at = match (&call.origin, &call.service) {
        (Some(p), _) => format!(
            "{} line {}, column {:?}",
            p.file.key, p.line, p.file.result_column
        ),
        (None, Some(service)) => {
            format!("LiveVox call {} (service {service}), result", call.call_id)
        }
        (None, None) => format!("LiveVox call {}, result", call.call_id),
    };
    PlanError::UnknownResult {
        key: call.result.as_str().to_owned(),
        text: call.result_text.to_string(),
        at,
        candidate: candidate.slug.to_string(),
        date: call.local_date,
    }
}

/// RFC 3339 with the zone's offset at that instant, as VAN's `dateCanvassed` wants.
pub fn date_canvassed(at: Timestamp, zone: &jiff::tz::TimeZone) -> String {
    // Written digit by digit: a night plans this for every call it posts, and the general
    // formatter reads its format string again each time.
    let offset = zone.to_offset(at);
    let local = offset.to_datetime(at);
    let mut out = String::with_capacity(25);
    let two = |out: &mut String, n: i32| {
        out.push(char::from(b'0' + (n / 10 % 10) as u8));
        out.push(char::from(b'0' + (n % 10) as u8));
    };
    let year = i32::from(local.year());
    two(&mut out, year / 100);
    two(&mut out, year % 100);
    out.push('-');
    two(&mut out, i32::from(local.month()));
    out.push('-');
    two(&mut out, i32::from(local.day()));
    out.push('T');
    two(&mut out, i32::from(local.hour()));
    out.push(':');
    two(&mut out, i32::from(local.minute()));
    out.push(':');
    two(&mut out, i32::from(local.second()));
    let seconds = offset.seconds();
    out.push(if seconds < 0 { '-' } else { '+' });
    let minutes = seconds.abs() / 60;
    two(&mut out, minutes / 60);
    out.push(':');
    two(&mut out, minutes % 60);
    out
}

/// One planned call of a day, as the budget sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayPlan {
    pub call_id: CallId,
    pub started_at: Timestamp,
    pub plan: Plan,
}

/// Strategy `budget`: keep at most `allowance - already_used` VAN posts in `plans`,
/// choosing by row priority (highest first), then by call start (earliest first), then by
/// call id; move the rest to the CSV. Any other strategy leaves `plans` as they are.
/// Returns how many posts were moved.
pub fn apply_budget(plans: &mut [DayPlan], strategy: Strategy, already_used: u64) -> usize {
    let Strategy::Budget {
        daily_free_requests,
    } = strategy
    else {
        return 0;
    };
    let left = u64::from(daily_free_requests).saturating_sub(already_used);
    let mut cut = BudgetCut::new(left);
    for p in plans.iter() {
        cut.offer(p);
    }
    plans
        .iter_mut()
        .filter(|p| cut.moves(p))
        .fold(0, |moved, p| {
            p.plan = Plan::Csv(CsvReason::OverBudget);
            moved + 1
        })
}

/// Where a post stands for the budget: smaller is kept first.
type Rank = (Reverse<i32>, Timestamp, CallId);

fn rank(p: &DayPlan) -> Option<Rank> {
    match &p.plan {
        Plan::Van(post) => Some((Reverse(post.priority), p.started_at, p.call_id.clone())),
        _ => None,
    }
}

/// A day's budget over posts offered one at a time (a night read in batches): the
/// `left` best ranked by [`apply_budget`]'s rule are kept, and only they are held (never
/// more than `left`, whatever the number of calls). Offer every post of the day first,
/// then ask which to move.
#[derive(Debug, Clone)]
pub struct BudgetCut {
    left: usize,
    /// The kept posts, the worst on top.
    kept: std::collections::BinaryHeap<Rank>,
    ids: std::collections::HashSet<CallId>,
}

impl BudgetCut {
    pub fn new(left: u64) -> Self {
        Self {
            left: usize::try_from(left).unwrap_or(usize::MAX),
            kept: std::collections::BinaryHeap::new(),
            ids: std::collections::HashSet::new(),
        }
    }

    /// Consider a plan; a post ranked among the best `left` so far is kept (a call
    /// offered twice counts once).
    pub fn offer(&mut self, p: &DayPlan) {
        let Some(rank) = rank(p) else { return };
        if self.left == 0 || self.ids.contains(&rank.2) {
            return;
        }
        if self.kept.len() == self.left {
            match self.kept.peek() {
                Some(worst) if rank < *worst => {
                    if let Some(out) = self.kept.pop() {
                        self.ids.remove(&out.2);
                    }
                }
                _ => return,
            }
        }
        self.ids.insert(rank.2.clone());
        self.kept.push(rank);
    }

    /// Whether `p` is a post the budget moves to the CSV.
    pub fn moves(&self, p: &DayPlan) -> bool {
        matches!(p.plan, Plan::Van(_)) && !self.ids.contains(&p.call_id)
    }
}

/// What a destination is to receive of one call: a payload, a reasoned skip, or why it
/// cannot be planned.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryPlan {
    Send(serde_json::Value),
    /// Not for this destination, and why.
    Skip(String),
    Error(PlanError),
}

/// Whether a configured destination receives a call, by its `select` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    Deliver,
    /// Not for this destination; the reason is kept on its `ignored` delivery.
    Skip(String),
    /// The result is not in the mapping, so the rule cannot be applied: an
    /// `unattempted_error` until the mapping has the row.
    UnknownResult,
}

/// The selection rules. `all`: every call, known result or not. `synced`: calls whose row
/// is marked `sync` (whatever the strategy does with them: the strategy chooses between VAN
/// and the CSV, not for other destinations). `rows`: calls whose row lists `destination`.
pub fn select(
    rule: Select,
    destination: &str,
    row: Option<&crate::mapping::ResultRow>,
) -> Selection {
    match (rule, row) {
        (Select::All, _) => Selection::Deliver,
        (_, None) => Selection::UnknownResult,
        (Select::Synced, Some(row)) if row.sync => Selection::Deliver,
        (Select::Synced, Some(row)) => Selection::Skip(format!(
            "result {:?} is not marked sync, and this destination takes synced calls",
            row.display_name
        )),
        (Select::Rows, Some(row)) if row.destinations.iter().any(|d| d == destination) => {
            Selection::Deliver
        }
        (Select::Rows, Some(row)) => Selection::Skip(format!(
            "result {:?} does not list this destination under `destinations`",
            row.display_name
        )),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::call::CallText;
    use crate::candidate::CandidateDoc;
    use crate::mapping::SurveyAnswer;
    use crate::values::ResultKey;

    /// One row of each kind a mapping can hold.
    fn candidate(strategy: &str, contact_type: &str) -> crate::destinations::Compiled {
        let strategy: serde_json::Value = serde_json::from_str(strategy).unwrap();
        let doc: CandidateDoc = serde_json::from_value(serde_json::json!({
            "slug": "ny14-smith", "display_name": "Smith", "time_zone": "America/New_York",
            "sync_hour": 2, "source": {"cdr": {}}, "strategy": strategy,
            "van": {"secret_name": "callsync/ny14-smith/van", "database_mode": "voter_file", "contact_type": contact_type},
            "results": [
                {"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
                 "survey_responses": [{"question_id": 2301, "response_id": 9120}],
                 "activist_codes": [4411], "sync": true, "priority": 10},
                {"result": "Wrong Number", "display_name": "Wrong number", "success": false,
                 "result_code_id": 20, "sync": true},
                {"result": "Agent Cust 2", "display_name": "Lean support", "success": true,
                 "survey_responses": [{"question_id": 2301, "response_id": 9121}],
                 "sync": true, "csv": true, "priority": 5},
                {"result": "No Answer", "display_name": "No answer", "success": false,
                 "result_code_id": 17, "csv": true},
                {"result": "Hung Up in Opening", "display_name": "Dropped", "success": false}
            ]
        }))
        .unwrap();
        crate::destinations::Compiled::from_doc(doc, crate::egress::Egress::STRICT).unwrap()
    }

    fn call(result: &str, phone: Option<&str>) -> Call {
        Call {
            call_id: CallId("101312525040".into()),
            text: CallText::new("ny14-van-18372073", "A", "B", "agent7"),
            van_id: Some(VanId::new(18372073).unwrap()),
            phone: phone.map(|p| PhoneNumber::parse(p).unwrap()),
            started_at: "2026-11-21T23:04:11Z".parse().unwrap(),
            ended_at: None,
            result: ResultKey::normalise(result).unwrap(),
            result_text: result.into(),
            service: None,
            campaign: None,
            local_date: jiff::civil::date(2026, 11, 21),
            origin: None,
            database_mode: None,
        }
    }

    fn strong_support() -> VanAction {
        VanAction::Contact {
            survey_responses: vec![SurveyAnswer {
                question_id: 2301,
                response_id: 9120,
            }],
            activist_codes: vec![4411],
        }
    }

    fn lean_support() -> VanAction {
        VanAction::Contact {
            survey_responses: vec![SurveyAnswer {
                question_id: 2301,
                response_id: 9121,
            }],
            activist_codes: vec![],
        }
    }

    #[derive(Debug, PartialEq)]
    enum Want {
        Van(VanAction),
        Csv(CsvReason),
        Ignore,
        Unknown,
        NoPhone,
        NoKey,
    }

    fn outcome(plan: Plan) -> Want {
        match plan {
            Plan::Van(post) => Want::Van(post.action),
            Plan::Csv(reason) => Want::Csv(reason),
            Plan::Ignore => Want::Ignore,
            Plan::Error(PlanError::UnknownResult { .. }) => Want::Unknown,
            Plan::Error(PlanError::MissingPhone { .. }) => Want::NoPhone,
            Plan::Error(PlanError::NoKeyForDatabase { .. }) => Want::NoKey,
            Plan::Error(e @ (PlanError::Payload { .. } | PlanError::Extension { .. })) => {
                panic!("the call plan builds no payload and runs no extension: {e}")
            }
        }
    }

    #[test]
    fn a_call_goes_to_the_database_its_account_names_or_is_an_error_without_a_key() {
        let voter_file_only = candidate(r#""full""#, "Phone");
        let mut call = call("Wrong Number", Some("212-555-0143"));
        // No system in the account: the candidate's own database.
        let Plan::Van(post) = plan(&call, &voter_file_only) else {
            panic!("posted")
        };
        assert_eq!(post.database_mode, DatabaseMode::VoterFile);
        call.database_mode = Some(DatabaseMode::MyCampaign);
        assert_eq!(outcome(plan(&call, &voter_file_only)), Want::NoKey);
        let err = match plan(&call, &voter_file_only) {
            Plan::Error(e) => e.to_string(),
            other => panic!("{other:?}"),
        };
        assert!(
            err.contains("MyCampaign") && err.contains("van.other_databases"),
            "{err}"
        );

        let mut doc = voter_file_only.doc().clone();
        doc.van.as_mut().unwrap().other_databases = vec![crate::candidate::DatabaseKey {
            database_mode: DatabaseMode::MyCampaign,
            secret_name: "callsync/ny14-smith/van-myc".into(),
        }];
        let both =
            crate::destinations::Compiled::from_doc(doc, crate::egress::Egress::STRICT).unwrap();
        let Plan::Van(post) = plan(&call, &both) else {
            panic!("posted")
        };
        assert_eq!(post.database_mode, DatabaseMode::MyCampaign);
        assert_eq!(
            crate::ledger::StoredPost::from(&post).database_mode,
            Some(DatabaseMode::MyCampaign)
        );
    }

    #[test]
    fn planner_table() {
        use Want::*;
        let full = r#""full""#;
        let hybrid = r#""hybrid""#;
        let all_csv = r#""all_csv""#;
        let budget = r#"{"budget":{"daily_free_requests":1000}}"#;
        let phone = Some("212-555-0143");
        let cases: Vec<(&str, &str, &str, Option<&str>, Want)> = vec![
            // strategy, contact type, result, phone, expected
            (
                full,
                "Phone",
                "Agent Cust 1 (167)",
                phone,
                Van(strong_support()),
            ),
            (
                full,
                "Phone",
                "WRONG NUMBER",
                phone,
                Van(VanAction::ResultCode(20)),
            ),
            (full, "Phone", "Agent Cust 2", phone, Van(lean_support())),
            (full, "Phone", "No Answer", phone, Csv(CsvReason::CsvRow)),
            (full, "Phone", "Hung Up in Opening", phone, Ignore),
            (full, "Phone", "Agent Cust 9", phone, Unknown),
            (full, "Phone", "Agent Cust 1", None, NoPhone),
            (full, "SMS Text", "Agent Cust 1", None, NoPhone),
            (full, "Walk", "Agent Cust 1", None, Van(strong_support())),
            (
                hybrid,
                "Phone",
                "Agent Cust 1",
                phone,
                Van(strong_support()),
            ),
            (
                hybrid,
                "Phone",
                "Wrong Number",
                phone,
                Van(VanAction::ResultCode(20)),
            ),
            (
                hybrid,
                "Phone",
                "Agent Cust 2",
                phone,
                Csv(CsvReason::HybridCsvRow),
            ),
            (hybrid, "Phone", "No Answer", phone, Csv(CsvReason::CsvRow)),
            (hybrid, "Phone", "Hung Up in Opening", phone, Ignore),
            (hybrid, "Phone", "Agent Cust 9", phone, Unknown),
            (
                all_csv,
                "Phone",
                "Agent Cust 1",
                phone,
                Csv(CsvReason::AllCsv),
            ),
            (
                all_csv,
                "Phone",
                "Wrong Number",
                None,
                Csv(CsvReason::AllCsv),
            ),
            (all_csv, "Phone", "No Answer", phone, Csv(CsvReason::AllCsv)),
            (all_csv, "Phone", "Hung Up in Opening", phone, Ignore),
            (all_csv, "Phone", "Agent Cust 9", phone, Unknown),
            (
                budget,
                "Phone",
                "Agent Cust 1",
                phone,
                Van(strong_support()),
            ),
            (budget, "Phone", "Agent Cust 2", phone, Van(lean_support())),
            (budget, "Phone", "No Answer", phone, Csv(CsvReason::CsvRow)),
            (budget, "Phone", "Hung Up in Opening", phone, Ignore),
        ];
        for (strategy, contact_type, result, phone, want) in cases {
            let c = candidate(strategy, contact_type);
            let got = outcome(plan(&call(result, phone), &c));
            assert_eq!(
                got, want,
                "{strategy} / {contact_type} / {result:?} / phone {phone:?}"
            );
        }
    }

    #[test]
    fn an_unknown_result_from_a_cdr_file_names_file_line_column_and_the_fix() {
        let c = candidate(r#""full""#, "Phone");
        let mut call = call("Agent Cust 9 (345)", Some("212-555-0143"));
        call.origin = Some(crate::call::CdrPosition {
            file: std::sync::Arc::new(crate::call::CdrFile {
                key: "inbox/ny14-smith/calls-2026-11-21.csv".into(),
                result_column: "result".into(),
            }),
            line: 12,
        });
        let Plan::Error(err) = plan(&call, &c) else {
            panic!("expected an error")
        };
        assert_eq!(err.code(), "unknown_result");
        let text = err.to_string();
        for want in [
            r#"inbox/ny14-smith/calls-2026-11-21.csv line 12, column "result" = "Agent Cust 9 (345)""#,
            r#"add a row for "agent cust 9""#,
            "PUT /candidates/ny14-smith/results",
            r#"POST /retry {"candidate": "ny14-smith", "date": "2026-11-21"}"#,
        ] {
            assert!(text.contains(want), "missing {want}: {text}");
        }
        assert!(
            !text.contains("ResultKey") && !text.contains("555"),
            "{text}"
        );
    }

    #[test]
    fn an_unknown_result_from_the_api_names_the_livevox_call_and_service() {
        let c = candidate(r#""full""#, "Phone");
        let mut call = call("Agent Cust 9", None);
        call.service = Some("1094".into());
        let text = match plan(&call, &c) {
            Plan::Error(err) => err.to_string(),
            other => panic!("expected an error, got {other:?}"),
        };
        assert!(
            text.starts_with(
                r#"LiveVox call 101312525040 (service 1094), result = "Agent Cust 9": "#
            ),
            "{text}"
        );
    }

    #[test]
    fn a_van_post_carries_the_local_date_phone_and_voter() {
        let c = candidate(r#""full""#, "Phone");
        let Plan::Van(post) = plan(&call("Agent Cust 1", Some("(212) 555-0143")), &c) else {
            panic!("expected a VAN post");
        };
        // 23:04 UTC on 21 Nov is 18:04 in New York (EST, -05:00).
        assert_eq!(post.date_canvassed, "2026-11-21T18:04:11-05:00");
        assert_eq!(post.phone.unwrap().digits(), "2125550143");
        assert_eq!(post.van_id.unwrap().get(), 18372073);
        assert_eq!(post.priority, 10);
    }

    #[test]
    fn summer_calls_carry_the_daylight_offset() {
        let zone = jiff::tz::TimeZone::get("America/Los_Angeles").unwrap();
        let at: Timestamp = "2026-07-04T02:30:00Z".parse().unwrap();
        assert_eq!(date_canvassed(at, &zone), "2026-07-03T19:30:00-07:00");
    }

    #[test]
    fn date_canvassed_reads_as_the_general_formatter_writes_it_in_every_kind_of_zone() {
        // Half-hour and negative offsets, a zone east of UTC, UTC itself, both sides of DST.
        for name in [
            "America/New_York",
            "America/St_Johns",
            "Asia/Kolkata",
            "Pacific/Chatham",
            "UTC",
            "Pacific/Honolulu",
        ] {
            let zone = jiff::tz::TimeZone::get(name).unwrap();
            for step in 0..400i64 {
                let at =
                    Timestamp::from_second(1_700_000_000 + step * 86_413 + step * step).unwrap();
                let general = at
                    .to_zoned_datetime(zone.clone())
                    .strftime("%Y-%m-%dT%H:%M:%S%:z")
                    .to_string();
                assert_eq!(date_canvassed(at, &zone), general, "{name} {at}");
            }
        }
    }

    fn day(strategy: &str, results: &[(&str, &str)]) -> Vec<DayPlan> {
        let c = candidate(strategy, "Phone");
        results
            .iter()
            .map(|(id, result)| {
                let mut call = call(result, Some("212-555-0143"));
                call.call_id = CallId((*id).into());
                call.started_at =
                    Timestamp::from_second(1_800_000_000 + id.parse::<i64>().unwrap()).unwrap();
                DayPlan {
                    call_id: call.call_id.clone(),
                    started_at: call.started_at,
                    plan: plan(&call, &c),
                }
            })
            .collect()
    }

    fn kinds(plans: &[DayPlan]) -> Vec<(&str, &str)> {
        plans
            .iter()
            .map(|p| {
                let kind = match &p.plan {
                    Plan::Van(_) => "van",
                    Plan::Csv(CsvReason::OverBudget) => "over",
                    Plan::Csv(_) => "csv",
                    Plan::Ignore => "ignore",
                    Plan::Error(_) => "error",
                };
                (p.call_id.0.as_str(), kind)
            })
            .collect()
    }

    #[test]
    fn the_budget_fills_by_priority_then_start_time_and_overflows_to_csv() {
        let calls = [
            ("1", "Wrong Number"),       // priority 0
            ("2", "Agent Cust 2"),       // priority 5
            ("3", "Agent Cust 1"),       // priority 10
            ("4", "No Answer"),          // csv row: untouched
            ("5", "Agent Cust 1"),       // priority 10, later than 3
            ("6", "Hung Up in Opening"), // ignored: untouched
        ];
        let budget = |n: u32| format!(r#"{{"budget":{{"daily_free_requests":{n}}}}}"#);

        let mut plans = day(&budget(3), &calls);
        assert_eq!(
            apply_budget(&mut plans, candidate(&budget(3), "Phone").strategy(), 0),
            1
        );
        assert_eq!(
            kinds(&plans),
            vec![
                ("1", "over"),
                ("2", "van"),
                ("3", "van"),
                ("4", "csv"),
                ("5", "van"),
                ("6", "ignore")
            ]
        );

        // Two requests already spent today: one post left, and it goes to the earliest top-priority call.
        let mut plans = day(&budget(3), &calls);
        assert_eq!(
            apply_budget(&mut plans, candidate(&budget(3), "Phone").strategy(), 2),
            3
        );
        assert_eq!(
            kinds(&plans),
            vec![
                ("1", "over"),
                ("2", "over"),
                ("3", "van"),
                ("4", "csv"),
                ("5", "over"),
                ("6", "ignore")
            ]
        );

        // Spent beyond the allowance: nothing more is posted.
        let mut plans = day(&budget(3), &calls);
        assert_eq!(
            apply_budget(&mut plans, candidate(&budget(3), "Phone").strategy(), 7),
            4
        );

        // A roomy allowance moves nothing.
        let mut plans = day(&budget(1000), &calls);
        assert_eq!(
            apply_budget(&mut plans, candidate(&budget(1000), "Phone").strategy(), 0),
            0
        );
    }

    #[test]
    fn other_strategies_ignore_the_budget() {
        let calls = [("1", "Wrong Number"), ("2", "Agent Cust 1")];
        let mut plans = day(r#""full""#, &calls);
        assert_eq!(apply_budget(&mut plans, Strategy::Full, 1_000_000), 0);
        assert_eq!(kinds(&plans), vec![("1", "van"), ("2", "van")]);
    }

    #[test]
    fn each_destination_receives_the_calls_its_rule_selects() {
        use crate::destinations::Select;
        let row = |sync: bool, dests: &[&str]| crate::mapping::ResultRow {
            result: ResultKey::normalise("Agent Cust 1").unwrap(),
            display_name: "Strong support".into(),
            success: true,
            van: None,
            sync,
            csv: !sync,
            priority: 0,
            destinations: dests.iter().map(|d| (*d).to_owned()).collect(),
        };
        let synced = row(true, &[]);
        let csv_only = row(false, &[]);
        let names_hook = row(false, &["hook"]);
        let names_other = row(true, &["other"]);
        let deliver = Selection::Deliver;
        let skip = |s: &Selection| matches!(s, Selection::Skip(_));
        for (rule, row, want_deliver, want_unknown) in [
            (Select::All, Some(&synced), true, false),
            (Select::All, Some(&csv_only), true, false),
            (Select::All, None, true, false),
            (Select::Synced, Some(&synced), true, false),
            (Select::Synced, Some(&csv_only), false, false),
            (Select::Synced, Some(&names_hook), false, false),
            (Select::Synced, None, false, true),
            (Select::Rows, Some(&names_hook), true, false),
            (Select::Rows, Some(&names_other), false, false),
            (Select::Rows, Some(&synced), false, false),
            (Select::Rows, None, false, true),
        ] {
            let got = select(rule, "hook", row);
            let case = format!("{rule:?} {:?}", row.map(|r| (r.sync, &r.destinations)));
            match (want_deliver, want_unknown) {
                (true, _) => assert_eq!(got, deliver, "{case}"),
                (false, true) => assert_eq!(got, Selection::UnknownResult, "{case}"),
                (false, false) => assert!(skip(&got), "{case}: {got:?}"),
            }
        }
    }

    #[test]
    fn a_delivery_plan_carries_the_payload_or_the_reason() {
        use crate::ledger::DeliveryPlan;
        let mut doc = candidate(r#""full""#, "Phone").into_doc();
        doc.destinations = serde_json::from_value(serde_json::json!([
            {"name": "hook", "kind": "webhook", "url": "https://hooks.example.org/c",
             "secret_name": "callsync/ny14-smith/hook"}
        ]))
        .unwrap();
        let c =
            crate::destinations::Compiled::from_doc(doc, crate::egress::Egress::STRICT).unwrap();
        let hook = c.destination("hook").unwrap();
        match hook.plan(&call("Agent Cust 1", Some("2125550123")), &c) {
            DeliveryPlan::Send(p) => {
                assert_eq!(p["call"]["display_name"], "Strong support");
                assert_eq!(p["contact"]["van_id"], 18372073);
                assert_eq!(p["contact"]["phone"], "2125550123");
                assert_eq!(p["call"]["source"], "livevox");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            hook.plan(&call("No Answer", None), &c),
            DeliveryPlan::Skip(r) if r.contains("not marked sync")
        ));
        assert!(matches!(
            hook.plan(&call("Left a message", None), &c),
            DeliveryPlan::Error(PlanError::UnknownResult { .. })
        ));
    }
}
