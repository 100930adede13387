//! A call's own record: the call, its plan, and its delivery to VAN or the CSV.

use super::*;

/// The VAN post the planner decided on, as stored (the plan's [`VanPost`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPost {
    /// `None` until found for a call whose account carries none (`person_match`).
    #[serde(default)]
    pub van_id: Option<VanId>,
    /// The database to post to; absent in records from before calls could name theirs:
    /// the candidate's main database.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_mode: Option<crate::values::DatabaseMode>,
    #[serde(flatten)]
    pub action: StoredAction,
    pub date_canvassed: String,
    #[serde(default)]
    pub phone: Option<PhoneNumber>,
    #[serde(default)]
    pub priority: i32,
    /// VAN's id of the dialed phone, set at send time by the `phone_ids` extension.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_id: Option<u64>,
}

/// [`VanAction`] with a stable stored shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoredAction {
    ResultCode(u32),
    Contact {
        survey_responses: Vec<crate::mapping::SurveyAnswer>,
        activist_codes: Vec<u32>,
    },
}

impl From<&VanPost> for StoredPost {
    fn from(p: &VanPost) -> Self {
        Self {
            van_id: p.van_id,
            database_mode: Some(p.database_mode),
            action: match &p.action {
                VanAction::ResultCode(c) => StoredAction::ResultCode(*c),
                VanAction::Contact {
                    survey_responses,
                    activist_codes,
                } => StoredAction::Contact {
                    survey_responses: survey_responses.clone(),
                    activist_codes: activist_codes.clone(),
                },
            },
            date_canvassed: p.date_canvassed.clone(),
            phone: p.phone.clone(),
            priority: p.priority,
            phone_id: None,
        }
    }
}

impl StoredPost {
    pub fn action(&self) -> VanAction {
        match &self.action {
            StoredAction::ResultCode(c) => VanAction::ResultCode(*c),
            StoredAction::Contact {
                survey_responses,
                activist_codes,
            } => VanAction::Contact {
                survey_responses: survey_responses.clone(),
                activist_codes: activist_codes.clone(),
            },
        }
    }
}

/// What an extension's `after_read` hook said of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Note {
    pub extension: String,
    pub text: String,
    #[serde(default)]
    pub effect: NoteEffect,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteEffect {
    /// A note; the call goes on.
    #[default]
    Note,
    /// The extension dropped the call: it is delivered nowhere (`text` says why).
    Dropped,
    /// The extension failed on the call (`text` says how).
    Failed,
}

/// One call in the ledger, with its delivery to VAN or the CSV (the strategy gives each
/// call at most one of the two; see [`CallRecord::destination`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRecord {
    pub key: CallKey,
    /// Bumped by every write; a write succeeds only if nobody wrote in between.
    pub version: u64,
    /// The normalised call; `None` for a row that could not be read.
    #[serde(default)]
    pub call: Option<Call>,
    /// The mapping row's display name at planning time, for reports.
    #[serde(default)]
    pub display_name: Option<String>,
    /// What VAN is sent, when the plan is a post.
    #[serde(default)]
    pub post: Option<StoredPost>,
    /// Why the call goes to the CSV, when it does.
    #[serde(default)]
    pub csv_reason: Option<CsvReason>,
    /// What extensions said of the call when it was read, in their order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<Note>,
    /// The call's delivery to VAN or the CSV: state, receipt, error, lease, attempts.
    #[serde(flatten)]
    pub delivery: Delivery,
    /// A `/retry` changed the call's story after the destinations that mirror it wrote it,
    /// and they are not yet marked to write it again (`fanout::remirror`). Set in the same
    /// write as the change, cleared once they are: a run that dies in between leaves the
    /// marking to the next settle.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub remirror: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl CallRecord {
    /// A new record for a planned call.
    pub fn planned(
        candidate: &CandidateSlug,
        call: Call,
        display_name: Option<String>,
        plan: &Plan,
        now: Timestamp,
    ) -> Self {
        let key = CallKey {
            day: DayKey {
                candidate: candidate.clone(),
                date: call.local_date,
            },
            call_id: call.call_id.clone(),
        };
        let mut record = Self::empty(key, CallState::Unsynced, now);
        record.call = Some(call);
        record.display_name = display_name;
        record.apply_plan(plan, now);
        record
    }

    /// The call's VAN delivery seen as every other delivery is: its stored post as the
    /// payload, its state, lease and attempts. The delivery stays on the call's item (one
    /// item per call, fewer writes); this is how the deliver loop and VAN's adapter see it.
    pub fn as_delivery(&self) -> DeliveryRecord {
        DeliveryRecord {
            key: DeliveryKey {
                call: self.key.clone(),
                destination: VAN.to_owned(),
            },
            kind: VAN.to_owned(),
            version: self.version,
            payload: self
                .post
                .as_ref()
                .and_then(|p| serde_json::to_value(p).ok()),
            payload_hash: None,
            delivered_hash: None,
            reason: None,
            delivery: self.delivery.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }

    /// What every other destination is to receive of a call an extension held back: a
    /// skip when one dropped it, its error when one failed on it; `None` otherwise.
    pub fn held_by_extension(&self) -> Option<DeliveryPlan> {
        let note = self.notes.iter().find(|n| n.effect != NoteEffect::Note)?;
        Some(match note.effect {
            NoteEffect::Dropped => {
                DeliveryPlan::Skip(format!("extension {}: {}", note.extension, note.text))
            }
            _ => DeliveryPlan::Error(crate::planning::PlanError::Extension {
                extension: note.extension.clone(),
                message: note.text.clone(),
            }),
        })
    }

    /// A row that could not become a call: an `unattempted_error` keyed by where it was.
    pub fn bad_row(key: CallKey, message: String, now: Timestamp) -> Self {
        let mut record = Self::empty(key, CallState::UnattemptedError, now);
        record.delivery.error = Some(ErrorNote::new("bad_row", message, now));
        record
    }

    fn empty(key: CallKey, state: CallState, now: Timestamp) -> Self {
        Self {
            key,
            version: 0,
            call: None,
            display_name: None,
            post: None,
            csv_reason: None,
            notes: Vec::new(),
            delivery: Delivery::new(state),
            remirror: false,
            created_at: now,
            updated_at: now,
        }
    }

    /// Set state and plan fields from a plan (a new call, or a re-plan after `/retry`).
    pub fn apply_plan(&mut self, plan: &Plan, now: Timestamp) {
        self.post = None;
        self.csv_reason = None;
        self.updated_at = now;
        let state = match plan {
            Plan::Van(post) => {
                self.post = Some(StoredPost::from(post));
                CallState::Unsynced
            }
            Plan::Csv(reason) => {
                self.csv_reason = Some(*reason);
                CallState::QueuedForCsv
            }
            Plan::Ignore => CallState::Ignored,
            Plan::Error(_) => CallState::UnattemptedError,
        };
        self.delivery.reset(state);
        if let Plan::Error(e) = plan {
            self.delivery.error = Some(ErrorNote::new(e.code(), e.to_string(), now));
        }
    }

    /// The destination this record's delivery is for: [`VAN`] when the plan is a post,
    /// [`CSV`] when the strategy exports the call; `None` for a call neither receives
    /// (ignored by the mapping, or not plannable: a bad row, an unknown result).
    pub fn destination(&self) -> Option<&'static str> {
        if self.post.is_some() {
            Some(VAN)
        } else if self.csv_reason.is_some() {
            Some(CSV)
        } else {
            None
        }
    }
}

/// The name VAN's deliveries go by in status, retry and reports.
pub const VAN: &str = "van";
/// The name the CSV's deliveries go by.
pub const CSV: &str = "csv";
