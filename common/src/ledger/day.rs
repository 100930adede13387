//! A candidate's day: its exports, its report, its VAN request count and run lock.

use std::collections::BTreeMap;

use super::*;

/// A CSV written for a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExportRef {
    pub key: String,
    pub rows: u64,
    pub at: Timestamp,
}

/// What became of a day's run report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportState {
    #[serde(default)]
    pub sent_at: Option<Timestamp>,
    /// Delivery attempts so far (each with its own retries).
    #[serde(default)]
    pub attempts: u32,
    #[serde(default)]
    pub last_error: Option<String>,
}

/// The run record of one candidate's local day.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DayRecord {
    pub key: DayKey,
    /// See [`crate::ports::Ledger::replace`]; 0 = not stored yet.
    pub version: u64,
    /// Nothing pending, and the report is sent (or given up on): ticks leave the day alone.
    #[serde(default)]
    pub complete: bool,
    /// A run holds the day until then; another run of the same day waits its turn.
    #[serde(default)]
    pub lock_until: Option<Timestamp>,
    #[serde(default)]
    pub lock_id: Option<String>,
    /// The LiveVox API was read for this day (reading it again changes nothing, but costs).
    #[serde(default)]
    pub livevox_read_at: Option<Timestamp>,
    #[serde(default)]
    pub exports: Vec<ExportRef>,
    #[serde(default)]
    pub report: ReportState,
    #[serde(default)]
    pub runs: u32,
    #[serde(default)]
    pub last_run_at: Option<Timestamp>,
    /// The last run found the candidate not fully configured, and did not run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked: Option<Blocked>,
    /// How far runs got into the inbox files still there (by key): a run stopped at its
    /// deadline, or killed, is taken up after the rows it recorded.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub progress: BTreeMap<String, SourceProgress>,
    /// How far runs got into the day's LiveVox API read, every call before it recorded,
    /// while the day is not read to its end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub livevox_progress: Option<crate::livevox::CallDetailPosition>,
    /// A run of the day with a deadline (a `nightly` invocation) is reading it until then
    /// (its deadline and wrap-up): the hourly tick leaves the day to it meanwhile.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reading_until: Option<Timestamp>,
}

/// How far runs got into one inbox file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceProgress {
    /// The file's fingerprint when it was read (S3's ETag): a file replaced by other
    /// bytes since is read from its start.
    pub etag: String,
    /// Rows from its start, every one of them recorded in the ledger.
    pub rows: u64,
}

impl DayRecord {
    /// Rows of file `key` (with the fingerprint `etag`) runs have recorded from its start.
    pub fn recorded_rows(&self, key: &str, etag: &str) -> u64 {
        self.progress
            .get(key)
            .filter(|p| p.etag == etag)
            .map_or(0, |p| p.rows)
    }
}

/// Why a day's night did not run: what keeps the candidate from being fully configured.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blocked {
    pub at: Timestamp,
    pub problems: Vec<String>,
}

impl DayRecord {
    pub fn new(key: DayKey) -> Self {
        Self {
            key,
            version: 0,
            complete: false,
            lock_until: None,
            lock_id: None,
            livevox_read_at: None,
            exports: Vec::new(),
            report: ReportState::default(),
            runs: 0,
            last_run_at: None,
            blocked: None,
            progress: BTreeMap::new(),
            livevox_progress: None,
            reading_until: None,
        }
    }
}
