//! Stores that fail on demand: a run stopped between two of its steps, as a process
//! killed there would leave it (what it wrote stays written; nothing after is done).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use callsync::ledger::{CallKey, CallRecord, DayKey, DeliveryKey, DeliveryRecord};
use callsync::ports::{Ledger, Records, StoreError};

/// A ledger whose reads of single deliveries fail while `fail_delivery_reads` is set:
/// the run that asks for one stops there.
pub struct FailingLedger {
    inner: Arc<dyn Ledger>,
    fail_delivery_reads: AtomicBool,
    race_call_write: AtomicBool,
}

impl std::fmt::Debug for FailingLedger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FailingLedger")
            .field("fail_delivery_reads", &self.fail_delivery_reads)
            .finish_non_exhaustive()
    }
}

impl FailingLedger {
    pub fn new(inner: Arc<dyn Ledger>) -> Self {
        Self {
            inner,
            fail_delivery_reads: AtomicBool::new(false),
            race_call_write: AtomicBool::new(false),
        }
    }

    pub fn fail_delivery_reads(&self, fail: bool) {
        self.fail_delivery_reads.store(fail, Ordering::SeqCst);
    }

    /// The next write of a call record meets another writer's first (a worker's lease,
    /// say): the call is written once more just before it, so it is refused as stale.
    pub fn race_next_call_write(&self) {
        self.race_call_write.store(true, Ordering::SeqCst);
    }
}

#[async_trait]
impl Ledger for FailingLedger {
    async fn insert(&self, record: &CallRecord) -> Result<bool, StoreError> {
        self.inner.insert(record).await
    }
    async fn get(&self, key: &CallKey) -> Result<Option<CallRecord>, StoreError> {
        self.inner.get(key).await
    }
    async fn replace(&self, record: &mut CallRecord) -> Result<bool, StoreError> {
        if self.race_call_write.swap(false, Ordering::SeqCst)
            && let Some(mut now) = self.inner.get(&record.key).await?
        {
            self.inner.replace(&mut now).await?;
        }
        self.inner.replace(record).await
    }
    async fn day(&self, day: &DayKey) -> Result<Vec<CallRecord>, StoreError> {
        self.inner.day(day).await
    }
    fn day_records<'a>(&'a self, day: &'a DayKey) -> Records<'a, CallRecord> {
        self.inner.day_records(day)
    }
    async fn insert_delivery(&self, record: &DeliveryRecord) -> Result<bool, StoreError> {
        self.inner.insert_delivery(record).await
    }
    async fn get_delivery(&self, key: &DeliveryKey) -> Result<Option<DeliveryRecord>, StoreError> {
        if self.fail_delivery_reads.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the calls table",
                "stopped here by the test".into(),
            ));
        }
        self.inner.get_delivery(key).await
    }
    async fn replace_delivery(&self, record: &mut DeliveryRecord) -> Result<bool, StoreError> {
        self.inner.replace_delivery(record).await
    }
    async fn deliveries(
        &self,
        day: &DayKey,
        destination: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.inner.deliveries(day, destination).await
    }
    fn delivery_records<'a>(
        &'a self,
        day: &'a DayKey,
        destination: &'a str,
    ) -> Records<'a, DeliveryRecord> {
        self.inner.delivery_records(day, destination)
    }
}
