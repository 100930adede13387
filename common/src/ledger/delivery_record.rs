//! One call's delivery to one configured destination.

use super::*;

/// One call's delivery to one destination.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DeliveryKey {
    pub call: CallKey,
    /// The destination's name in the candidate document.
    pub destination: String,
}

impl fmt::Display for DeliveryKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} → {}", self.call, self.destination)
    }
}

/// A call's delivery to a configured destination: what is to be sent, and what became of
/// it. States mean what they mean for a call record (`queued_for_csv` aside).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryRecord {
    pub key: DeliveryKey,
    /// The destination's kind when the delivery was planned (`webhook`, …).
    pub kind: String,
    /// As [`CallRecord::version`].
    pub version: u64,
    /// What the destination is sent, as planned from the call.
    #[serde(default)]
    pub payload: Option<Value>,
    /// SHA-256 of the planned payload, hex: the content a receipt is for.
    #[serde(default)]
    pub payload_hash: Option<String>,
    /// The payload hash the destination last accepted. A delivery planned again with other
    /// content is sent as an update; with the same content, not at all.
    #[serde(default)]
    pub delivered_hash: Option<String>,
    /// Why an `ignored` delivery is not sent.
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(flatten)]
    pub delivery: Delivery,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

pub use crate::planning::DeliveryPlan;

/// SHA-256 of a payload as serialised, hex.
pub fn payload_hash(payload: &Value) -> String {
    crate::values::sha256_hex(&serde_json::to_vec(payload).unwrap_or_default())
}

impl DeliveryRecord {
    pub fn planned(key: DeliveryKey, kind: &str, plan: &DeliveryPlan, now: Timestamp) -> Self {
        let mut record = Self {
            key,
            kind: kind.to_owned(),
            version: 0,
            payload: None,
            payload_hash: None,
            delivered_hash: None,
            reason: None,
            delivery: Delivery::new(CallState::Unsynced),
            created_at: now,
            updated_at: now,
        };
        record.apply_plan(plan, now);
        record
    }

    /// Set state and payload from a plan (a new delivery, or a re-plan after `/retry`).
    /// What the destination last accepted (`delivered_hash`) is kept: it decides whether
    /// the next send is new or an update. A re-plan starts the tries afresh.
    pub fn apply_plan(&mut self, plan: &DeliveryPlan, now: Timestamp) {
        self.payload = None;
        self.payload_hash = None;
        self.reason = None;
        self.updated_at = now;
        let state = match plan {
            DeliveryPlan::Send(payload) => {
                self.payload_hash = Some(payload_hash(payload));
                self.payload = Some(payload.clone());
                CallState::Unsynced
            }
            DeliveryPlan::Skip(reason) => {
                self.reason = Some(reason.clone());
                CallState::Ignored
            }
            DeliveryPlan::Error(_) => CallState::UnattemptedError,
        };
        self.delivery = Delivery::new(state);
        if let DeliveryPlan::Error(e) = plan {
            self.delivery.error = Some(ErrorNote::new(e.code(), e.to_string(), now));
        }
    }

    /// Whether the destination last accepted other content than what is planned now: the
    /// next send is an update.
    pub fn is_update(&self) -> bool {
        self.delivered_hash
            .as_ref()
            .is_some_and(|d| Some(d) != self.payload_hash.as_ref())
    }
}
