//! The call ledger: one record per call read, holding its state, what the planner decided,
//! and its receipt or error. Every change is a compare-and-set on the record's version, so
//! two workers can never both move the same call.
//!
//! States (the original app's, with fixed meanings):
//! `unsynced` → `in_progress` → `finished` | `attempted_error`;
//! `queued_for_csv` → `finished`; `ignored`; `unattempted_error`.
//!
//! A call record is also the call's delivery to its primary destination (VAN, or the CSV
//! where the strategy sends it). Every other destination a candidate configures gets a
//! [`DeliveryRecord`] per call: same states, same compare-and-set writes, its own receipt,
//! attempts and error. The call itself is stored once, in the call record.

use std::fmt;
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::call::{Call, CallId};
use crate::mapping::VanAction;
use crate::planning::{CsvReason, Plan, VanPost};
use crate::values::{CandidateSlug, PhoneNumber, VanId};

mod call_record;
mod day;
mod delivery_record;

pub use call_record::*;
pub use day::*;
pub use delivery_record::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallState {
    /// Planned for VAN, not yet taken by a worker.
    Unsynced,
    /// Leased by a worker that is posting it.
    InProgress,
    /// In VAN or in a CSV; keeps a receipt.
    Finished,
    /// VAN refused it; keeps VAN's answer.
    AttemptedError,
    /// Waiting to be written to the day's CSV.
    QueuedForCsv,
    /// The mapping says not to keep this result.
    Ignored,
    /// No request could be built: a bad row or a mapping gap.
    UnattemptedError,
}

impl CallState {
    pub const ALL: [CallState; 7] = [
        Self::Unsynced,
        Self::InProgress,
        Self::Finished,
        Self::AttemptedError,
        Self::QueuedForCsv,
        Self::Ignored,
        Self::UnattemptedError,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unsynced => "unsynced",
            Self::InProgress => "in_progress",
            Self::Finished => "finished",
            Self::AttemptedError => "attempted_error",
            Self::QueuedForCsv => "queued_for_csv",
            Self::Ignored => "ignored",
            Self::UnattemptedError => "unattempted_error",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == raw)
    }

    /// Nothing more happens to the call unless someone asks (`/retry`).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Self::Finished | Self::AttemptedError | Self::Ignored | Self::UnattemptedError
        )
    }

    /// States `/retry` may re-plan: errors only, never a call that finished.
    pub fn is_retryable(self) -> bool {
        matches!(self, Self::AttemptedError | Self::UnattemptedError)
    }
}

impl fmt::Display for CallState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A candidate's local day: the unit of a nightly run.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DayKey {
    pub candidate: CandidateSlug,
    pub date: Date,
}

impl fmt::Display for DayKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.candidate, self.date)
    }
}

/// One call of one day.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct CallKey {
    pub day: DayKey,
    pub call_id: CallId,
}

impl fmt::Display for CallKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.day, self.call_id)
    }
}

/// Proof that a call landed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Receipt {
    /// VAN answered 204 (it returns no id): what was sent, and when.
    Van {
        /// SHA-256 of the exact request body, hex.
        fingerprint: String,
        status: u16,
        at: Timestamp,
        attempts: u32,
    },
    /// The call is row `row` (1 = first data row) of this CSV object.
    Csv {
        bucket: String,
        key: String,
        row: u64,
        at: Timestamp,
    },
    /// An HTTP destination answered 2xx to this request.
    Http {
        status: u16,
        at: Timestamp,
        /// Sends it took (a lease each), this one included.
        attempts: u32,
        /// The `Idempotency-Key` the request carried.
        idempotency_key: String,
        /// SHA-256 of the exact request body, hex.
        fingerprint: String,
    },
    /// A system that keeps people (Action Network) took it: the person it is recorded on.
    Person {
        system: String,
        /// The person's id there (`None`: it answered 2xx without one).
        id: Option<String>,
        status: u16,
        at: Timestamp,
        /// Sends it took (a lease each), this one included.
        attempts: u32,
        /// SHA-256 of the exact request body, hex.
        fingerprint: String,
    },
    /// The call's row (and its deliveries') is in this table of the campaign's database.
    Sql {
        table: String,
        at: Timestamp,
        /// Sends it took (a lease each), this one included.
        attempts: u32,
    },
}

/// Why a call is in an error state, and what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorNote {
    /// A stable code: `bad_row`, `unknown_result`, `missing_phone`, `van_rejected`, …
    pub code: String,
    pub message: String,
    /// VAN's HTTP status, for attempted errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// VAN's error envelope verbatim (or its raw body when it answered HTML).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub van: Option<Value>,
    /// Another destination's answer (its body, cut to [`ANSWER_LIMIT`] bytes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    pub at: Timestamp,
}

/// How much of a destination's answer an error keeps.
pub const ANSWER_LIMIT: usize = 2048;

impl ErrorNote {
    pub fn new(code: &str, message: impl Into<String>, at: Timestamp) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            status: None,
            van: None,
            answer: None,
            at,
        }
    }
}

/// Where one delivery of a call stands: the part every delivery has, whatever its
/// destination — VAN's and the CSV's (kept in the call's own record) as much as any
/// configured destination's ([`DeliveryRecord`]). Stored flattened into its record, so
/// `state` is a top-level attribute of every item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    pub state: CallState,
    #[serde(default)]
    pub receipt: Option<Receipt>,
    /// The last failure: the final one in an error state, the latest try while retrying.
    #[serde(default)]
    pub error: Option<ErrorNote>,
    /// While `in_progress`: the worker's lease ends here; the sweep re-queues after it.
    #[serde(default)]
    pub lease_until: Option<Timestamp>,
    /// Identifies the lease holder, so only it can finish or release the delivery.
    #[serde(default)]
    pub lease_id: Option<String>,
    /// Sends so far (a lease each), across retries.
    #[serde(default)]
    pub attempts: u32,
    /// Not to be sent again before this (back-off after a failed try).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<Timestamp>,
    /// When the delivery was last handed to the queue.
    #[serde(default)]
    pub enqueued_at: Option<Timestamp>,
}

impl Delivery {
    pub fn new(state: CallState) -> Self {
        Self {
            state,
            receipt: None,
            error: None,
            lease_until: None,
            lease_id: None,
            attempts: 0,
            next_attempt_at: None,
            enqueued_at: None,
        }
    }

    /// Start over in `state` (a new plan): no receipt, error, lease, wait or message.
    /// Attempts are kept: they count sends, and a re-plan sends nothing.
    pub fn reset(&mut self, state: CallState) {
        *self = Self {
            attempts: self.attempts,
            ..Self::new(state)
        };
    }

    /// Whether a worker may take the delivery now.
    pub fn can_lease(&self, now: Timestamp) -> bool {
        match self.state {
            CallState::Unsynced => self.next_attempt_at.is_none_or(|t| t <= now),
            CallState::InProgress => self.lease_until.is_none_or(|t| t <= now),
            _ => false,
        }
    }

    /// Take the delivery for one send until `until`; returns the lease's id.
    pub fn lease(&mut self, until: Timestamp) -> String {
        let id = format!("{:016x}", fastrand::u64(..));
        self.state = CallState::InProgress;
        self.lease_until = Some(until);
        self.lease_id = Some(id.clone());
        self.attempts += 1;
        id
    }

    /// Whether the delivery needs a queue message now: waiting and never handed to the
    /// queue (when `unsent_due`: the caller just planned it, or it waited long enough for
    /// the run that planned it to be gone), handed long ago without finishing, or held by
    /// a worker whose lease ran out.
    pub fn is_due(&self, now: Timestamp, unsent_due: bool, stale_after: Duration) -> bool {
        match self.state {
            CallState::Unsynced => {
                if self.next_attempt_at.is_some_and(|t| t > now) {
                    return false;
                }
                // A message handed to the queue with a delay is expected when the delay
                // ends; only long after that is it taken for lost.
                let expected = match (self.enqueued_at, self.next_attempt_at) {
                    (Some(sent), Some(next)) => Some(sent.max(next)),
                    (sent, _) => sent,
                };
                match expected {
                    None => unsent_due,
                    Some(at) => at + stale_after <= now,
                }
            }
            CallState::InProgress => self.lease_until.is_none_or(|t| t <= now),
            _ => false,
        }
    }
}

/// A record written only if nobody wrote it since it was read: the stores compare and
/// bump this number on every replace.
pub trait Versioned {
    fn version(&self) -> u64;
    fn set_version(&mut self, version: u64);
}

impl Versioned for CallRecord {
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
}

impl Versioned for DeliveryRecord {
    fn version(&self) -> u64 {
        self.version
    }
    fn set_version(&mut self, version: u64) {
        self.version = version;
    }
}

/// A record that holds one delivery: a call record (VAN's or the CSV's delivery) or a
/// [`DeliveryRecord`]. Leasing, settling, sweeping and counting are written once, over this.
pub trait Tracked: Versioned + Clone + Send + Sync {
    fn delivery(&self) -> &Delivery;
    fn delivery_mut(&mut self) -> &mut Delivery;
    fn call_key(&self) -> &CallKey;
    /// The destination's name: `van` or `csv` for a call record, none when it has neither.
    fn destination_name(&self) -> Option<&str>;
    fn touch(&mut self, now: Timestamp);
}

impl Tracked for CallRecord {
    fn delivery(&self) -> &Delivery {
        &self.delivery
    }
    fn delivery_mut(&mut self) -> &mut Delivery {
        &mut self.delivery
    }
    fn call_key(&self) -> &CallKey {
        &self.key
    }
    fn destination_name(&self) -> Option<&str> {
        self.destination()
    }
    fn touch(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

impl Tracked for DeliveryRecord {
    fn delivery(&self) -> &Delivery {
        &self.delivery
    }
    fn delivery_mut(&mut self) -> &mut Delivery {
        &mut self.delivery
    }
    fn call_key(&self) -> &CallKey {
        &self.key.call
    }
    fn destination_name(&self) -> Option<&str> {
        Some(&self.key.destination)
    }
    fn touch(&mut self, now: Timestamp) {
        self.updated_at = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_read_back_from_their_names() {
        for s in CallState::ALL {
            assert_eq!(CallState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_value(s).unwrap(),
                Value::String(s.as_str().into())
            );
        }
        assert_eq!(CallState::parse("done"), None);
    }

    #[test]
    fn only_errors_are_retryable_and_finished_is_terminal() {
        let retryable: Vec<_> = CallState::ALL
            .into_iter()
            .filter(|s| s.is_retryable())
            .collect();
        assert_eq!(
            retryable,
            vec![CallState::AttemptedError, CallState::UnattemptedError]
        );
        assert!(CallState::Finished.is_terminal());
        assert!(!CallState::Unsynced.is_terminal());
        assert!(!CallState::QueuedForCsv.is_terminal());
    }

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn a_delivery_is_leased_when_waiting_and_past_its_back_off_or_when_its_lease_ran_out() {
        let now = at("2026-11-22T10:00:00Z");
        let mut d = Delivery::new(CallState::Unsynced);
        assert!(d.can_lease(now));
        d.next_attempt_at = Some(at("2026-11-22T10:05:00Z"));
        assert!(!d.can_lease(now), "backing off");
        assert!(d.can_lease(at("2026-11-22T10:05:00Z")));

        let id = d.lease(at("2026-11-22T10:15:00Z"));
        assert_eq!(d.state, CallState::InProgress);
        assert_eq!(d.lease_id.as_deref(), Some(id.as_str()));
        assert_eq!(d.attempts, 1);
        assert!(!d.can_lease(at("2026-11-22T10:14:59Z")), "another holds it");
        let again = d.lease(at("2026-11-22T10:30:00Z"));
        assert_ne!(again, id, "every lease has its own id");
        assert_eq!(d.attempts, 2, "every lease is a send");

        for state in [
            CallState::Finished,
            CallState::AttemptedError,
            CallState::UnattemptedError,
            CallState::QueuedForCsv,
            CallState::Ignored,
        ] {
            assert!(!Delivery::new(state).can_lease(now), "{state}");
        }
    }

    #[test]
    fn a_delivery_needs_a_message_when_never_sent_lost_long_ago_or_its_worker_died() {
        let now = at("2026-11-22T10:00:00Z");
        let stale = 30 * MINUTE;
        let mut d = Delivery::new(CallState::Unsynced);
        assert!(d.is_due(now, true, stale), "planned by this run");
        assert!(
            !d.is_due(now, false, stale),
            "another run's, still sending it"
        );

        d.enqueued_at = Some(at("2026-11-22T09:45:00Z"));
        assert!(
            !d.is_due(now, true, stale),
            "handed to the queue a while ago"
        );
        d.enqueued_at = Some(at("2026-11-22T09:30:00Z"));
        assert!(
            d.is_due(now, false, stale),
            "handed long ago and not taken: lost"
        );

        // A message sent with a delay is expected when the delay ends, not before.
        d.next_attempt_at = Some(at("2026-11-22T09:50:00Z"));
        assert!(!d.is_due(now, false, stale));
        assert!(d.is_due(at("2026-11-22T10:20:00Z"), false, stale));
        d.next_attempt_at = Some(at("2026-11-22T10:10:00Z"));
        assert!(!d.is_due(now, true, stale), "backing off");

        let mut held = Delivery::new(CallState::Unsynced);
        held.lease(at("2026-11-22T10:05:00Z"));
        assert!(!held.is_due(now, true, stale), "its worker is on it");
        assert!(
            held.is_due(at("2026-11-22T10:05:00Z"), false, stale),
            "lease ran out"
        );
        assert!(!Delivery::new(CallState::Finished).is_due(now, true, stale));
    }

    #[test]
    fn a_new_plan_starts_the_delivery_over_but_keeps_its_count_of_sends() {
        let now = at("2026-11-22T10:00:00Z");
        let mut d = Delivery::new(CallState::Unsynced);
        d.lease(now);
        d.state = CallState::AttemptedError;
        d.error = Some(ErrorNote::new("http_500", "down", now));
        d.enqueued_at = Some(now);
        d.next_attempt_at = Some(now);
        d.reset(CallState::Unsynced);
        assert_eq!(
            d,
            Delivery {
                attempts: 1,
                ..Delivery::new(CallState::Unsynced)
            }
        );
    }

    fn call_key() -> CallKey {
        CallKey {
            day: DayKey {
                candidate: CandidateSlug::parse("ny14").unwrap(),
                date: jiff::civil::date(2026, 11, 21),
            },
            call_id: CallId("1001".into()),
        }
    }

    #[test]
    fn a_call_records_delivery_is_stored_as_top_level_attributes_and_reads_back() {
        use aws_sdk_dynamodb::types::AttributeValue;
        use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
        let now = at("2026-11-22T10:00:00Z");
        let mut record = CallRecord::bad_row(call_key(), "line 2: no phone".into(), now);
        record.delivery.attempts = 3;
        record.delivery.lease_until = Some(now);
        let item: std::collections::HashMap<String, AttributeValue> = to_item(&record).unwrap();
        assert_eq!(
            item.get("state"),
            Some(&AttributeValue::S("unattempted_error".into()))
        );
        assert_eq!(item.get("attempts"), Some(&AttributeValue::N("3".into())));
        assert!(!item.contains_key("delivery"), "{item:?}");
        assert!(!item.contains_key("next_attempt_at"), "{item:?}");
        let back: CallRecord = from_item(item).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn a_call_record_written_before_deliveries_were_shared_still_reads() {
        use aws_sdk_dynamodb::types::AttributeValue;
        use serde_dynamo::aws_sdk_dynamodb_1::{from_item, to_item};
        let now = at("2026-11-22T10:00:00Z");
        let mut expected = CallRecord::bad_row(call_key(), "line 2: no phone".into(), now);
        expected.version = 4;
        expected.delivery.attempts = 2;
        expected.delivery.lease_id = Some("00000000000000ab".into());
        // The stored shape of such a record, with the fields it had then and no others.
        let old = serde_json::json!({
            "key": serde_json::to_value(&expected.key).unwrap(),
            "state": "unattempted_error",
            "version": 4,
            "call": null,
            "display_name": null,
            "post": null,
            "csv_reason": null,
            "receipt": null,
            "error": serde_json::to_value(&expected.delivery.error).unwrap(),
            "lease_until": null,
            "lease_id": "00000000000000ab",
            "attempts": 2,
            "enqueued_at": null,
            "created_at": now,
            "updated_at": now,
        });
        let item: std::collections::HashMap<String, AttributeValue> = to_item(old).unwrap();
        let read: CallRecord = from_item(item).unwrap();
        assert_eq!(read, expected);
    }
}
