//! The stores a run uses, each request seen before it reaches the store behind: counted (how
//! many reads and writes a posted call costs) or delayed (a store as far away as DynamoDB is
//! from a Lambda), the store itself unchanged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use callsync::ledger::{CallKey, CallRecord, DayKey, DayRecord, DeliveryKey, DeliveryRecord};
use callsync::ports::{DayStore, Ledger, RateState, RateStore, StoreError};
use callsync::services::Services;
use callsync::values::CandidateSlug;

/// What a store request does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Read,
    Write,
}

/// Told of every request before it is made.
#[async_trait]
pub trait Observer: Send + Sync {
    async fn see(&self, access: Access);
}

/// Counts reads and writes.
#[derive(Debug, Default)]
pub struct Counts {
    reads: AtomicU64,
    writes: AtomicU64,
}

impl Counts {
    /// (reads, writes) since the last take.
    pub fn take(&self) -> (u64, u64) {
        (
            self.reads.swap(0, Ordering::Relaxed),
            self.writes.swap(0, Ordering::Relaxed),
        )
    }
}

#[async_trait]
impl Observer for Counts {
    async fn see(&self, access: Access) {
        match access {
            Access::Read => self.reads.fetch_add(1, Ordering::Relaxed),
            Access::Write => self.writes.fetch_add(1, Ordering::Relaxed),
        };
    }
}

/// Answers every request after `.0`.
#[derive(Debug)]
pub struct Latency(pub Duration);

#[async_trait]
impl Observer for Latency {
    async fn see(&self, _: Access) {
        tokio::time::sleep(self.0).await;
    }
}

/// `svc` with its ledger, day store and rate store observed by `observer`.
pub fn observe(svc: Services, observer: Arc<dyn Observer>) -> Services {
    observe_each(
        svc,
        [Arc::clone(&observer), Arc::clone(&observer), observer],
    )
}

/// `svc` with its ledger, day store and rate store each observed by its own observer, in
/// that order.
pub fn observe_each(mut svc: Services, [ledger, days, rates]: [Arc<dyn Observer>; 3]) -> Services {
    svc.ledger = Arc::new(Observed(svc.ledger, ledger));
    svc.days = Arc::new(Observed(svc.days, days));
    svc.rates = Arc::new(Observed(svc.rates, rates));
    svc
}

/// A store whose every request `.1` sees first.
pub struct Observed<S: ?Sized>(pub Arc<S>, pub Arc<dyn Observer>);

impl<S: ?Sized> std::fmt::Debug for Observed<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observed")
    }
}

impl<S: ?Sized> Observed<S> {
    async fn read(&self) -> &S {
        self.1.see(Access::Read).await;
        &self.0
    }
    async fn write(&self) -> &S {
        self.1.see(Access::Write).await;
        &self.0
    }
}

#[async_trait]
impl Ledger for Observed<dyn Ledger> {
    async fn insert(&self, record: &CallRecord) -> Result<bool, StoreError> {
        self.write().await.insert(record).await
    }
    async fn get(&self, key: &CallKey) -> Result<Option<CallRecord>, StoreError> {
        self.read().await.get(key).await
    }
    async fn replace(&self, record: &mut CallRecord) -> Result<bool, StoreError> {
        self.write().await.replace(record).await
    }
    async fn day(&self, day: &DayKey) -> Result<Vec<CallRecord>, StoreError> {
        self.read().await.day(day).await
    }
    fn day_records<'a>(&'a self, day: &'a DayKey) -> callsync::ports::Records<'a, CallRecord> {
        use futures::StreamExt;
        Box::pin(futures::stream::once(async move { self.read().await.day_records(day) }).flatten())
    }
    fn delivery_records<'a>(
        &'a self,
        day: &'a DayKey,
        destination: &'a str,
    ) -> callsync::ports::Records<'a, DeliveryRecord> {
        use futures::StreamExt;
        Box::pin(
            futures::stream::once(
                async move { self.read().await.delivery_records(day, destination) },
            )
            .flatten(),
        )
    }
    async fn insert_delivery(&self, record: &DeliveryRecord) -> Result<bool, StoreError> {
        self.write().await.insert_delivery(record).await
    }
    async fn get_delivery(&self, key: &DeliveryKey) -> Result<Option<DeliveryRecord>, StoreError> {
        self.read().await.get_delivery(key).await
    }
    async fn replace_delivery(&self, record: &mut DeliveryRecord) -> Result<bool, StoreError> {
        self.write().await.replace_delivery(record).await
    }
    async fn deliveries(
        &self,
        day: &DayKey,
        destination: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        self.read().await.deliveries(day, destination).await
    }
}

#[async_trait]
impl DayStore for Observed<dyn DayStore> {
    async fn get(&self, day: &DayKey) -> Result<Option<DayRecord>, StoreError> {
        self.read().await.get(day).await
    }
    async fn replace(&self, record: &mut DayRecord) -> Result<bool, StoreError> {
        self.write().await.replace(record).await
    }
    async fn open_days(&self, c: &CandidateSlug) -> Result<Vec<DayRecord>, StoreError> {
        self.read().await.open_days(c).await
    }
    async fn add_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
        self.write().await.add_van_requests(day, n).await
    }
    async fn add_van_requests_within(
        &self,
        day: &DayKey,
        n: u64,
        cap: u64,
    ) -> Result<bool, StoreError> {
        self.write()
            .await
            .add_van_requests_within(day, n, cap)
            .await
    }
    async fn return_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
        self.write().await.return_van_requests(day, n).await
    }
    async fn van_requests(&self, day: &DayKey) -> Result<u64, StoreError> {
        self.read().await.van_requests(day).await
    }
}

#[async_trait]
impl RateStore for Observed<dyn RateStore> {
    async fn rate(&self, key: &str) -> Result<Option<RateState>, StoreError> {
        self.read().await.rate(key).await
    }
    async fn put_rate(
        &self,
        key: &str,
        state: &RateState,
        read: Option<u64>,
    ) -> Result<bool, StoreError> {
        self.write().await.put_rate(key, state, read).await
    }
}
