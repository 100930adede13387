//! In-memory twins of the stores, for unit tests of the core.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use futures::StreamExt;

use crate::candidate::CandidateDoc;
use crate::ledger::{
    CallKey, CallRecord, DayKey, DayRecord, DeliveryKey, DeliveryRecord, Versioned,
};
use crate::ports::{
    CallQueue, ConfigStore, DayStore, Ledger, Notifier, ObjectInfo, ObjectStore, RateState,
    RateStore, SecretStore, SecretValue, StoreError, SyncMessage,
};
use crate::values::CandidateSlug;

#[derive(Debug, Default)]
pub struct MemoryConfigStore {
    docs: Mutex<BTreeMap<String, CandidateDoc>>,
}

#[async_trait]
impl ConfigStore for MemoryConfigStore {
    async fn get(&self, slug: &CandidateSlug) -> Result<Option<CandidateDoc>, StoreError> {
        Ok(self.docs.lock().expect("lock").get(slug.as_str()).cloned())
    }

    async fn put(&self, doc: &CandidateDoc) -> Result<(), StoreError> {
        self.docs
            .lock()
            .expect("lock")
            .insert(doc.slug.clone(), doc.clone());
        Ok(())
    }

    async fn list(&self) -> Result<Vec<CandidateSlug>, StoreError> {
        Ok(self
            .docs
            .lock()
            .expect("lock")
            .keys()
            .filter_map(|k| CandidateSlug::parse(k).ok())
            .collect())
    }
}

#[derive(Debug, Default)]
pub struct MemorySecrets {
    values: Mutex<BTreeMap<String, SecretValue>>,
}

impl MemorySecrets {
    pub fn with(self, name: &str, value: &str) -> Self {
        self.values
            .lock()
            .expect("lock")
            .insert(name.to_owned(), SecretValue::new(value));
        self
    }
}

#[async_trait]
impl SecretStore for MemorySecrets {
    async fn get(&self, name: &str) -> Result<SecretValue, StoreError> {
        self.values
            .lock()
            .expect("lock")
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::SecretNotFound(name.to_owned()))
    }
}

#[derive(Debug, Default)]
pub struct MemoryLedger {
    records: Mutex<BTreeMap<(DayKey, String), CallRecord>>,
    deliveries: Mutex<BTreeMap<(DayKey, String, String), DeliveryRecord>>,
}

fn delivery_slot(key: &DeliveryKey) -> (DayKey, String, String) {
    (
        key.call.day.clone(),
        key.destination.clone(),
        key.call.call_id.0.to_string(),
    )
}

/// Insert unless the slot is taken (DynamoDB's `attribute_not_exists`).
fn insert_new<K: Ord, T: Clone>(map: &mut BTreeMap<K, T>, slot: K, record: &T) -> bool {
    if map.contains_key(&slot) {
        return false;
    }
    map.insert(slot, record.clone());
    true
}

/// Replace only over the version `record` was read at, bumping it (DynamoDB's condition).
fn replace_in<K: Ord, T: Clone + Versioned>(
    map: &mut BTreeMap<K, T>,
    slot: K,
    record: &mut T,
) -> bool {
    let current = record.version();
    match map.get_mut(&slot) {
        Some(stored) if stored.version() == current => {
            record.set_version(current + 1);
            *stored = record.clone();
            true
        }
        _ => false,
    }
}

fn call_slot(key: &CallKey) -> (DayKey, String) {
    (key.day.clone(), key.call_id.0.to_string())
}

#[async_trait]
impl Ledger for MemoryLedger {
    async fn insert(&self, record: &CallRecord) -> Result<bool, StoreError> {
        let slot = call_slot(&record.key);
        Ok(insert_new(
            &mut self.records.lock().expect("lock"),
            slot,
            record,
        ))
    }

    async fn get(&self, key: &CallKey) -> Result<Option<CallRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .expect("lock")
            .get(&call_slot(key))
            .cloned())
    }

    async fn replace(&self, record: &mut CallRecord) -> Result<bool, StoreError> {
        let slot = call_slot(&record.key);
        Ok(replace_in(
            &mut self.records.lock().expect("lock"),
            slot,
            record,
        ))
    }

    async fn day(&self, day: &DayKey) -> Result<Vec<CallRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .expect("lock")
            .iter()
            .filter(|((d, _), _)| d == day)
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn day_records<'a>(&'a self, day: &'a DayKey) -> crate::ports::Records<'a, CallRecord> {
        paged(
            &self.records,
            (day.clone(), String::new()),
            move |(d, _)| d == day,
        )
    }

    async fn insert_delivery(&self, record: &DeliveryRecord) -> Result<bool, StoreError> {
        let slot = delivery_slot(&record.key);
        Ok(insert_new(
            &mut self.deliveries.lock().expect("lock"),
            slot,
            record,
        ))
    }

    async fn get_delivery(&self, key: &DeliveryKey) -> Result<Option<DeliveryRecord>, StoreError> {
        Ok(self
            .deliveries
            .lock()
            .expect("lock")
            .get(&delivery_slot(key))
            .cloned())
    }

    async fn replace_delivery(&self, record: &mut DeliveryRecord) -> Result<bool, StoreError> {
        let slot = delivery_slot(&record.key);
        Ok(replace_in(
            &mut self.deliveries.lock().expect("lock"),
            slot,
            record,
        ))
    }

    async fn deliveries(
        &self,
        day: &DayKey,
        destination: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        Ok(self
            .deliveries
            .lock()
            .expect("lock")
            .iter()
            .filter(|((d, dest, _), _)| d == day && dest == destination)
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn delivery_records<'a>(
        &'a self,
        day: &'a DayKey,
        destination: &'a str,
    ) -> crate::ports::Records<'a, DeliveryRecord> {
        paged(
            &self.deliveries,
            (day.clone(), destination.to_owned(), String::new()),
            move |(d, dest, _)| d == day && dest == destination,
        )
    }
}

/// `map`'s records from `first` on while `within` holds, copied out a page at a time as
/// DynamoDB hands a query's pages over.
fn paged<'a, K, T>(
    map: &'a Mutex<BTreeMap<K, T>>,
    first: K,
    within: impl Fn(&K) -> bool + Send + Sync + 'a,
) -> crate::ports::Records<'a, T>
where
    K: Ord + Clone + Send + Sync + 'a,
    T: Clone + Send + 'a,
{
    use std::ops::Bound;
    const PAGE: usize = 500;
    let within = std::sync::Arc::new(within);
    let pages = futures::stream::unfold(Some(Bound::Included(first)), move |from| {
        let within = within.clone();
        async move {
            let from = from?;
            let page: Vec<(K, T)> = map
                .lock()
                .expect("lock")
                .range((from, Bound::Unbounded))
                .take_while(|(k, _)| within(k))
                .take(PAGE)
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            let next = (page.len() == PAGE)
                .then(|| page.last().map(|(k, _)| Bound::Excluded(k.clone())))
                .flatten();
            Some((page.into_iter().map(|(_, v)| Ok(v)), next))
        }
    });
    Box::pin(pages.map(futures::stream::iter).flatten())
}

/// The rate governors' schedules, in memory.
#[derive(Debug, Default)]
pub struct MemoryRates {
    rates: Mutex<BTreeMap<String, RateState>>,
}

#[async_trait]
impl RateStore for MemoryRates {
    async fn rate(&self, key: &str) -> Result<Option<RateState>, StoreError> {
        Ok(self.rates.lock().expect("lock").get(key).copied())
    }

    async fn put_rate(
        &self,
        key: &str,
        state: &RateState,
        read: Option<u64>,
    ) -> Result<bool, StoreError> {
        let mut rates = self.rates.lock().expect("lock");
        if rates.get(key).map(|s| s.version) != read {
            return Ok(false);
        }
        rates.insert(key.to_owned(), *state);
        Ok(true)
    }
}

#[derive(Debug, Default)]
pub struct MemoryDays {
    days: Mutex<BTreeMap<DayKey, DayRecord>>,
    usage: Mutex<BTreeMap<DayKey, u64>>,
}

#[async_trait]
impl DayStore for MemoryDays {
    async fn get(&self, day: &DayKey) -> Result<Option<DayRecord>, StoreError> {
        Ok(self.days.lock().expect("lock").get(day).cloned())
    }

    async fn replace(&self, record: &mut DayRecord) -> Result<bool, StoreError> {
        let mut days = self.days.lock().expect("lock");
        let stored = days.get(&record.key).map_or(0, |d| d.version);
        if stored != record.version {
            return Ok(false);
        }
        record.version += 1;
        days.insert(record.key.clone(), record.clone());
        Ok(true)
    }

    async fn open_days(&self, candidate: &CandidateSlug) -> Result<Vec<DayRecord>, StoreError> {
        Ok(self
            .days
            .lock()
            .expect("lock")
            .values()
            .filter(|d| &d.key.candidate == candidate && !d.complete)
            .cloned()
            .collect())
    }

    async fn add_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
        *self
            .usage
            .lock()
            .expect("lock")
            .entry(day.clone())
            .or_default() += n;
        Ok(())
    }

    async fn add_van_requests_within(
        &self,
        day: &DayKey,
        n: u64,
        cap: u64,
    ) -> Result<bool, StoreError> {
        let mut usage = self.usage.lock().expect("lock");
        let count = usage.entry(day.clone()).or_default();
        if count.saturating_add(n) > cap {
            return Ok(false);
        }
        *count += n;
        Ok(true)
    }

    async fn return_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
        let mut usage = self.usage.lock().expect("lock");
        let count = usage.entry(day.clone()).or_default();
        *count = count.saturating_sub(n);
        Ok(())
    }

    async fn van_requests(&self, day: &DayKey) -> Result<u64, StoreError> {
        Ok(self
            .usage
            .lock()
            .expect("lock")
            .get(day)
            .copied()
            .unwrap_or(0))
    }
}

/// A queue that keeps what was sent, for tests to drain.
#[derive(Debug, Default)]
pub struct MemoryQueue {
    pub sent: Mutex<Vec<SyncMessage>>,
    /// Messages sent with a delay, and the delay (kept apart: they are not due yet).
    pub delayed: Mutex<Vec<(SyncMessage, std::time::Duration)>>,
}

impl MemoryQueue {
    pub fn drain(&self) -> Vec<SyncMessage> {
        std::mem::take(&mut *self.sent.lock().expect("lock"))
    }
}

#[async_trait]
impl CallQueue for MemoryQueue {
    async fn send(&self, messages: &[SyncMessage]) -> Result<Vec<usize>, StoreError> {
        self.sent
            .lock()
            .expect("lock")
            .extend(messages.iter().cloned());
        Ok(Vec::new())
    }

    async fn send_later(
        &self,
        messages: &[SyncMessage],
        delay: std::time::Duration,
    ) -> Result<Vec<usize>, StoreError> {
        self.delayed
            .lock()
            .expect("lock")
            .extend(messages.iter().map(|m| (m.clone(), delay)));
        Ok(Vec::new())
    }
}

#[derive(Debug)]
pub struct MemoryObjects {
    bucket: String,
    objects: Mutex<BTreeMap<String, bytes::Bytes>>,
}

impl Default for MemoryObjects {
    fn default() -> Self {
        Self {
            bucket: "memory-bucket".into(),
            objects: Mutex::default(),
        }
    }
}

/// An upload into [`MemoryObjects`]: visible once finished.
struct MemoryUpload<'a> {
    objects: &'a MemoryObjects,
    key: String,
    body: Vec<u8>,
}

#[async_trait]
impl crate::ports::Upload for MemoryUpload<'_> {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.body.extend_from_slice(&bytes);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<(), StoreError> {
        let Self { objects, key, body } = *self;
        objects
            .objects
            .lock()
            .expect("lock")
            .insert(key, body.into());
        Ok(())
    }

    async fn abort(self: Box<Self>) {}
}

fn no_object(key: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("object {key:?}"),
        message: "does not exist".into(),
    }
}

#[async_trait]
impl ObjectStore for MemoryObjects {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        Ok(self
            .objects
            .lock()
            .expect("lock")
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ObjectInfo {
                key: k.clone(),
                size: v.len() as u64,
                etag: crate::values::sha256_hex(v),
            })
            .collect())
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        self.objects
            .lock()
            .expect("lock")
            .get(key)
            .map(|b| b.to_vec())
            .ok_or_else(|| no_object(key))
    }

    async fn open(&self, key: &str) -> Result<crate::ports::Chunks, StoreError> {
        /// As S3 hands a body over: in pieces.
        const PIECE: usize = 64 * 1024;
        let body = self
            .objects
            .lock()
            .expect("lock")
            .get(key)
            .cloned()
            .ok_or_else(|| no_object(key))?;
        let pieces = (0..body.len())
            .step_by(PIECE)
            .map(move |at| Ok(body.slice(at..(at + PIECE).min(body.len()))));
        Ok(Box::pin(futures::stream::iter(pieces)))
    }

    async fn put(&self, key: &str, body: Vec<u8>, _content_type: &str) -> Result<(), StoreError> {
        self.objects
            .lock()
            .expect("lock")
            .insert(key.to_owned(), body.into());
        Ok(())
    }

    async fn upload(
        &self,
        key: &str,
        _content_type: &str,
    ) -> Result<Box<dyn crate::ports::Upload + '_>, StoreError> {
        Ok(Box::new(MemoryUpload {
            objects: self,
            key: key.to_owned(),
            body: Vec::new(),
        }))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        let mut objects = self.objects.lock().expect("lock");
        let body = objects.remove(from).ok_or_else(|| no_object(from))?;
        objects.insert(to.to_owned(), body);
        Ok(())
    }

    async fn presign(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
        Ok(format!(
            "memory://{}/{key}?expires={}",
            self.bucket,
            ttl.as_secs()
        ))
    }
}

/// A webhook that keeps what it was sent; `fail` makes every delivery fail.
#[derive(Debug, Default)]
pub struct MemoryNotifier {
    pub sent: Mutex<Vec<(String, serde_json::Value)>>,
    pub fail: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Notifier for MemoryNotifier {
    async fn send(&self, url: &str, body: &serde_json::Value) -> Result<(), String> {
        if self.fail.load(std::sync::atomic::Ordering::Relaxed) {
            return Err("the webhook answered 500".into());
        }
        self.sent
            .lock()
            .expect("lock")
            .push((url.to_owned(), body.clone()));
        Ok(())
    }
}

/// A launcher that keeps the runs it was asked to start.
#[derive(Debug, Default)]
pub struct MemoryLauncher {
    pub started: Mutex<Vec<crate::ports::ManualRun>>,
    /// Ticks handed on, by the candidate they go on after.
    pub ticks: Mutex<Vec<crate::ports::TickAfter>>,
}

#[async_trait]
impl crate::ports::RunLauncher for MemoryLauncher {
    async fn start(&self, run: &crate::ports::ManualRun) -> Result<(), StoreError> {
        self.started.lock().expect("lock").push(run.clone());
        Ok(())
    }

    async fn continue_tick(&self, after: &crate::ports::TickAfter) -> Result<(), StoreError> {
        self.ticks.lock().expect("lock").push(after.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use futures::TryStreamExt;

    use super::*;
    use crate::call::CallId;
    use crate::values::CandidateSlug;

    #[tokio::test]
    async fn a_day_streams_page_after_page_in_call_id_order_and_only_that_day() {
        let ledger = MemoryLedger::default();
        let day = |d| DayKey {
            candidate: CandidateSlug::parse("unit").unwrap(),
            date: jiff::civil::date(2026, 11, d),
        };
        let now = jiff::Timestamp::UNIX_EPOCH;
        for d in [20, 21, 22] {
            for i in 0..1_234 {
                let key = CallKey {
                    day: day(d),
                    call_id: CallId(format!("{i}").into()),
                };
                ledger
                    .insert(&CallRecord::bad_row(key, "x".into(), now))
                    .await
                    .unwrap();
            }
        }
        let streamed: Vec<CallRecord> = ledger.day_records(&day(21)).try_collect().await.unwrap();
        let whole = ledger.day(&day(21)).await.unwrap();
        assert_eq!(streamed.len(), 1_234);
        assert!(streamed.iter().all(|r| r.key.day == day(21)));
        assert!(
            streamed
                .windows(2)
                .all(|w| w[0].key.call_id < w[1].key.call_id)
        );
        assert_eq!(
            streamed.iter().map(|r| &r.key).collect::<Vec<_>>(),
            whole.iter().map(|r| &r.key).collect::<Vec<_>>()
        );
    }
}
