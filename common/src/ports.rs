//! The ports the core depends on: where candidate documents, secrets, the call ledger and
//! day records are kept, the queue, the bucket, the report webhook, who starts a nightly
//! run, and what time it is.
//! Adapters (DynamoDB, Secrets Manager, S3, SQS, HTTP, in-memory twins) implement them.

use std::fmt;

use async_trait::async_trait;

use serde::{Deserialize, Serialize};

use crate::call::CallId;
use crate::candidate::CandidateDoc;
use crate::ledger::{CallKey, CallRecord, DayKey, DayRecord, DeliveryKey, DeliveryRecord};
use crate::values::CandidateSlug;

/// A failure of a store, split by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The service did not answer or refused for now: try again later.
    #[error("{0} is unavailable: {1}")]
    Unavailable(&'static str, String),
    /// What is stored cannot be read back: someone must look at it.
    #[error("{what} is unreadable: {message}")]
    Corrupt { what: String, message: String },
    #[error("secret {0:?} does not exist (create it in Secrets Manager, or fix the name)")]
    SecretNotFound(String),
}

/// Candidate documents, one per slug. Written only after validation.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    async fn get(&self, slug: &CandidateSlug) -> Result<Option<CandidateDoc>, StoreError>;
    async fn put(&self, doc: &CandidateDoc) -> Result<(), StoreError>;
    async fn list(&self) -> Result<Vec<CandidateSlug>, StoreError>;
}

/// A secret's value. `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(String);

impl SecretValue {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Read a JSON secret into `T`, naming the secret (never its content) on failure.
    pub fn json<T: serde::de::DeserializeOwned>(&self, name: &str) -> Result<T, StoreError> {
        serde_json::from_str(&self.0).map_err(|e| StoreError::Corrupt {
            what: format!("secret {name:?}"),
            // Only the category and position: serde's message can quote the content.
            message: format!(
                "expected a JSON object with the documented keys ({:?} at line {} column {})",
                e.classify(),
                e.line(),
                e.column()
            ),
        })
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(***)")
    }
}

/// Named secrets (Secrets Manager).
#[async_trait]
pub trait SecretStore: Send + Sync {
    async fn get(&self, name: &str) -> Result<SecretValue, StoreError>;

    /// Drop what is kept of secret `name`, so the next [`SecretStore::get`] reads it
    /// afresh: the system it opens refused it, and it may have been replaced since.
    async fn forget(&self, _name: &str) {}
}

/// A day's records as they are read, a page at a time while the stream is taken: a day of
/// any size in bounded memory.
pub type Records<'a, T> = futures::stream::BoxStream<'a, Result<T, StoreError>>;

/// The call ledger (see [`crate::ledger`]). Every write is conditional.
#[async_trait]
pub trait Ledger: Send + Sync {
    /// Store a new record unless the call is already known. `Ok(false)`: it was, and
    /// nothing changed — a re-run is a no-op.
    async fn insert(&self, record: &CallRecord) -> Result<bool, StoreError>;
    /// One call, read consistently.
    async fn get(&self, key: &CallKey) -> Result<Option<CallRecord>, StoreError>;
    /// Write `record` if the stored version is still `record.version`; on success the
    /// stored (and `record`'s) version is one higher. `Ok(false)`: someone else wrote
    /// first; read again and decide again.
    async fn replace(&self, record: &mut CallRecord) -> Result<bool, StoreError>;
    /// Every call of a day, held whole: for tests and tools. The runs read
    /// [`Ledger::day_records`], which holds a page.
    async fn day(&self, day: &DayKey) -> Result<Vec<CallRecord>, StoreError>;
    /// Every call of a day in call-id order, read page by page as the stream is taken.
    fn day_records<'a>(&'a self, day: &'a DayKey) -> Records<'a, CallRecord>;
    /// As [`Ledger::insert`], for a call's delivery to a configured destination.
    async fn insert_delivery(&self, record: &DeliveryRecord) -> Result<bool, StoreError>;
    async fn get_delivery(&self, key: &DeliveryKey) -> Result<Option<DeliveryRecord>, StoreError>;
    /// As [`Ledger::replace`].
    async fn replace_delivery(&self, record: &mut DeliveryRecord) -> Result<bool, StoreError>;
    /// Every delivery of a day to one destination, held whole: for tests and tools. The
    /// runs read [`Ledger::delivery_records`].
    async fn deliveries(
        &self,
        day: &DayKey,
        destination: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError>;
    /// Every delivery of a day to one destination in call-id order, read page by page as
    /// the stream is taken.
    fn delivery_records<'a>(
        &'a self,
        day: &'a DayKey,
        destination: &'a str,
    ) -> Records<'a, DeliveryRecord>;
}

/// Per-candidate, per-day bookkeeping: the run record of a local day, and the count of
/// VAN requests made on a day.
#[async_trait]
pub trait DayStore: Send + Sync {
    async fn get(&self, day: &DayKey) -> Result<Option<DayRecord>, StoreError>;
    /// As [`Ledger::replace`], creating the record when `record.version` is 0.
    async fn replace(&self, record: &mut DayRecord) -> Result<bool, StoreError>;
    /// Days of a candidate that are not complete (report not yet sent), oldest first.
    async fn open_days(&self, candidate: &CandidateSlug) -> Result<Vec<DayRecord>, StoreError>;
    /// Add `n` to the VAN requests counted for `day` (the day the requests were made).
    async fn add_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError>;
    /// Add `n` only if the count stays within `cap`: `false` (nothing added) when it would
    /// not. One conditional write, so workers sharing a day never pass the cap together.
    async fn add_van_requests_within(
        &self,
        day: &DayKey,
        n: u64,
        cap: u64,
    ) -> Result<bool, StoreError>;
    /// Take back `n` requests counted ahead and never sent (a reservation a worker did not
    /// use up). One atomic add of `-n`.
    async fn return_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError>;
    async fn van_requests(&self, day: &DayKey) -> Result<u64, StoreError>;
}

/// The shared schedule of one rate limit (a destination key), as the governor keeps it
/// ([`crate::governor`]): times in milliseconds since the Unix epoch, shared by every
/// worker in every process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RateState {
    /// The next free slot: every slot before it is handed out.
    pub next_ms: i64,
    /// How much slower than the configured rate the key runs since its last 429 (1 = not
    /// at all); it wears off with time.
    pub slow: f64,
    /// When the destination last answered 429.
    pub hit_at_ms: i64,
    /// Bumped by every write; a write names the version it read.
    pub version: u64,
}

/// Where the rate governors keep their schedules: one item per destination key, written
/// only with a check of the version read, so workers in any number of processes share it.
#[async_trait]
pub trait RateStore: Send + Sync {
    /// The schedule of `key`, if it has one.
    async fn rate(&self, key: &str) -> Result<Option<RateState>, StoreError>;
    /// Write `state` if the stored version is still `read` (`None`: no schedule yet);
    /// `false`, writing nothing, when another writer came first.
    async fn put_rate(
        &self,
        key: &str,
        state: &RateState,
        read: Option<u64>,
    ) -> Result<bool, StoreError>;
}

/// A message asking `sync-call` to deliver one call: to VAN (the call record's own
/// delivery) or, when `destination` is set, to that configured destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncMessage {
    pub candidate: CandidateSlug,
    pub date: jiff::civil::Date,
    pub call_id: CallId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// The longest delay the queue can hold a message back (SQS `DelaySeconds`).
pub const MAX_QUEUE_DELAY: std::time::Duration = std::time::Duration::from_secs(900);

/// `delay` as the queue's whole seconds: rounded up, so a message never comes back before
/// it is due (and is then handed back again for the rest), and at most [`MAX_QUEUE_DELAY`].
pub fn queue_delay_secs(delay: std::time::Duration) -> u32 {
    let delay = delay.min(MAX_QUEUE_DELAY);
    let secs = delay.as_secs() + u64::from(delay.subsec_nanos() > 0);
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// The queue `sync-call` reads.
#[async_trait]
pub trait CallQueue: Send + Sync {
    /// Send messages (the adapter batches them by ten). Returns the indexes of the
    /// messages that could not be sent; they stay `unsynced` for the sweep.
    async fn send(&self, messages: &[SyncMessage]) -> Result<Vec<usize>, StoreError>;
    /// As `send`, each message hidden from workers for `delay` (at most
    /// [`MAX_QUEUE_DELAY`]): how back-off between tries is spread over time without a
    /// worker waiting.
    async fn send_later(
        &self,
        messages: &[SyncMessage],
        delay: std::time::Duration,
    ) -> Result<Vec<usize>, StoreError>;
}

/// An object in the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// A fingerprint of the object's bytes (S3's ETag): the same bytes, the same tag.
    pub etag: String,
}

/// An object's bytes, read as they are taken.
pub type Chunks = futures::stream::BoxStream<'static, Result<bytes::Bytes, StoreError>>;

/// Why a [`blocking_reader`] stopped, when the bucket failed (not the bytes).
pub type ReadFailure = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// `chunks` as a blocking [`std::io::Read`], for a parser on a blocking thread
/// (`tokio::task::spawn_blocking`; create it inside the runtime). A failure of the bucket
/// reaches the parser as an I/O error and is kept, with its message, in the
/// [`ReadFailure`]: a parser can tell a file cut off from a file at fault.
pub fn blocking_reader(chunks: Chunks) -> (impl std::io::Read + Send + 'static, ReadFailure) {
    use futures::StreamExt;
    let failed = ReadFailure::default();
    let seen = std::sync::Arc::clone(&failed);
    let body = chunks.map(move |piece| {
        piece.map_err(|e| {
            let message = e.to_string();
            *seen
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(message.clone());
            std::io::Error::other(message)
        })
    });
    let input = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(body));
    (input, failed)
}

/// What a [`ReadFailure`] holds, if anything.
pub fn read_failure(failed: &ReadFailure) -> Option<String> {
    failed.lock().ok().and_then(|f| f.clone())
}

/// An object written as it is made, never held whole (S3's multipart upload). Nothing is
/// visible under its key until [`Upload::finish`]; an upload dropped or aborted leaves no
/// object.
#[async_trait]
pub trait Upload: Send {
    /// Append `bytes` (any size: the adapter gathers parts as the store needs them).
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), StoreError>;
    /// Make the object, whole, visible under its key.
    async fn finish(self: Box<Self>) -> Result<(), StoreError>;
    /// Give up: nothing is left under the key (nor, in time, in the bucket).
    async fn abort(self: Box<Self>);
}

/// The bucket: CDR inboxes and CSV exports.
#[async_trait]
pub trait ObjectStore: Send + Sync {
    fn bucket(&self) -> &str;
    /// Objects under `prefix`, in key order.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError>;
    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError>;
    /// An object's bytes as they arrive, never the whole object at once: how a file of any
    /// size is read in bounded memory. A failure midway is an item of the stream.
    async fn open(&self, key: &str) -> Result<Chunks, StoreError>;
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError>;
    /// Start writing an object of any size in pieces (see [`Upload`]).
    async fn upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<Box<dyn Upload + '_>, StoreError>;
    /// Copy then delete.
    async fn rename(&self, from: &str, to: &str) -> Result<(), StoreError>;
    /// A link anyone holding it may GET until `ttl` passes.
    async fn presign(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError>;
}

/// Where run reports go (a webhook: Slack, an e-mail relay, …).
#[async_trait]
pub trait Notifier: Send + Sync {
    async fn send(&self, url: &str, body: &serde_json::Value) -> Result<(), String>;
}

/// A manual run: the body of `POST /runs`, and the event that hands a run to the `nightly`
/// function.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ManualRun {
    pub candidate: CandidateSlug,
    /// The candidate's local day; yesterday (in its zone) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub date: Option<jiff::civil::Date>,
    #[serde(default)]
    pub dry_run: bool,
    /// The part of a run that stopped at its deadline this event continues (0: a run of
    /// its own). A continuation reads the LiveVox API only if the day's was not read yet.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub continuation: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// Starts a nightly run elsewhere (the `nightly` function) and does not wait for it: a
/// big day outlasts an API request.
#[async_trait]
pub trait RunLauncher: Send + Sync {
    /// Hand `run` over (its `date` filled in); `Ok` once it is accepted, not done.
    async fn start(&self, run: &ManualRun) -> Result<(), StoreError>;
    /// Hand over the rest of a tick that ran out of time: the candidates after `after`.
    async fn continue_tick(&self, after: &TickAfter) -> Result<(), StoreError>;
}

/// The `nightly` event that goes on with a tick that ran out of time: the candidates
/// whose slugs sort after `tick_after`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TickAfter {
    pub tick_after: CandidateSlug,
}

/// The current time; a port so tests can fix it.
pub trait Clock: Send + Sync {
    fn now(&self) -> jiff::Timestamp;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_never_show_their_value() {
        let s = SecretValue::new(r#"{"api_key": "hunter2"#);
        assert_eq!(format!("{s:?}"), "SecretValue(***)");
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct K {
            api_key: String,
        }
        let err = s.json::<K>("van").unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(err.contains("\"van\""), "{err}");
    }

    #[test]
    fn queue_delays_round_up_so_a_message_never_comes_back_early() {
        use std::time::Duration;
        assert_eq!(queue_delay_secs(Duration::ZERO), 0);
        assert_eq!(queue_delay_secs(Duration::from_millis(1)), 1);
        assert_eq!(queue_delay_secs(Duration::from_millis(400)), 1);
        assert_eq!(queue_delay_secs(Duration::from_secs(9)), 9);
        assert_eq!(queue_delay_secs(Duration::from_millis(9_400)), 10);
        assert_eq!(queue_delay_secs(Duration::from_millis(899_001)), 900);
        assert_eq!(queue_delay_secs(Duration::from_secs(3_600)), 900);
        assert_eq!(queue_delay_secs(Duration::MAX), 900);
    }
}
