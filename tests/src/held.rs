//! Memory a run holds, told apart from what the stores hold: a counting allocator that
//! tags every allocation with who made it (the stores, or anyone else), and wrappers of the
//! in-memory stores under which every allocation a store keeps is tagged as the store's.
//! In production DynamoDB, S3 and SQS keep those copies; a bench of the run's own memory
//! must not count them.
//!
//! A bench binary installs [`Counting`] as its global allocator and builds its services
//! with [`held_services`]; [`run_peak`] is then the most heap the run itself held at once.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicIsize, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};

use async_trait::async_trait;
use callsync::adapters::memory::{MemoryDays, MemoryLedger, MemoryObjects, MemoryRates};
use callsync::ledger::{CallKey, CallRecord, DayKey, DayRecord, DeliveryKey, DeliveryRecord};
use callsync::ports::{
    CallQueue, DayStore, Ledger, ObjectInfo, ObjectStore, RateState, RateStore, StoreError,
    SyncMessage, Upload,
};
use callsync::values::CandidateSlug;
use tracking_allocator::{
    AllocationGroupId, AllocationGroupToken, AllocationRegistry, AllocationTracker,
};

/// The global allocator of a memory bench (`#[global_allocator]`): the system's, with the
/// group that made each block kept beside it.
pub type Counting = tracking_allocator::Allocator<std::alloc::System>;

static RUN_LIVE: AtomicIsize = AtomicIsize::new(0);
static RUN_PEAK: AtomicIsize = AtomicIsize::new(0);
static STORE_LIVE: AtomicIsize = AtomicIsize::new(0);
/// The stores' allocation group (0 until [`start_counting`]).
static STORE_GROUP: AtomicUsize = AtomicUsize::new(0);

fn store_token() -> &'static Mutex<AllocationGroupToken> {
    static TOKEN: OnceLock<Mutex<AllocationGroupToken>> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let token = AllocationGroupToken::register().expect("an allocation group for the stores");
        STORE_GROUP.store(token.id().as_usize().get(), Ordering::Relaxed);
        Mutex::new(token)
    })
}

/// Adds each block to its owner's live bytes: the stores' group, or the run (everyone else).
struct Split;

impl Split {
    fn count(group: &AllocationGroupId, bytes: isize) {
        if group.as_usize().get() == STORE_GROUP.load(Ordering::Relaxed) {
            STORE_LIVE.fetch_add(bytes, Ordering::Relaxed);
        } else {
            let now = RUN_LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
            RUN_PEAK.fetch_max(now, Ordering::Relaxed);
        }
    }
}

impl AllocationTracker for Split {
    fn allocated(&self, _: usize, size: usize, _: usize, group: AllocationGroupId) {
        Self::count(&group, size as isize);
    }

    fn deallocated(
        &self,
        _: usize,
        size: usize,
        _: usize,
        source: AllocationGroupId,
        _: AllocationGroupId,
    ) {
        Self::count(&source, -(size as isize));
    }
}

/// Start counting (once per process; a bench binary with [`Counting`] installed). Blocks
/// made before are counted by no one.
pub fn start_counting() {
    store_token();
    // A second call finds the tracker set: counting goes on.
    let _ = AllocationRegistry::set_global_tracker(Split);
    AllocationRegistry::enable_tracking();
}

/// The most heap the run held at once (everything but the stores' blocks) since the last
/// [`reset_run_peak`], in bytes.
pub fn run_peak() -> usize {
    RUN_PEAK.load(Ordering::Relaxed).max(0) as usize
}

/// What the run holds now, in bytes.
pub fn run_live() -> usize {
    RUN_LIVE.load(Ordering::Relaxed).max(0) as usize
}

/// What the stores hold now, in bytes.
pub fn store_live() -> usize {
    STORE_LIVE.load(Ordering::Relaxed).max(0) as usize
}

/// Start measuring a peak from what the run holds now.
pub fn reset_run_peak() {
    RUN_PEAK.store(RUN_LIVE.load(Ordering::Relaxed), Ordering::Relaxed);
}

/// Everything `future` allocates while it is polled is the stores'.
struct Stored<'a, T>(Pin<Box<dyn Future<Output = T> + Send + 'a>>);

impl<T> Future for Stored<'_, T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        let mut token = store_token().lock().expect("the stores' group");
        let _in_store = token.enter();
        self.0.as_mut().poll(cx)
    }
}

/// Run a store's method with its allocations counted as the stores'.
async fn kept<'a, T>(future: impl Future<Output = T> + Send + 'a) -> T {
    Stored(Box::pin(future)).await
}

/// A copy made by the caller (the run) of what a store's method handed out: the store's
/// copy is dropped, and the run is counted for what it holds.
fn handed<T: Clone>(value: Result<T, StoreError>) -> Result<T, StoreError> {
    let stores = value?;
    let copy = stores.clone();
    drop(stores);
    Ok(copy)
}

/// An in-memory store whose kept copies are tagged as the store's.
#[derive(Debug, Default)]
pub struct Held<S>(pub S);

#[async_trait]
impl Ledger for Held<MemoryLedger> {
    async fn insert(&self, record: &CallRecord) -> Result<bool, StoreError> {
        kept(self.0.insert(record)).await
    }
    async fn get(&self, key: &CallKey) -> Result<Option<CallRecord>, StoreError> {
        handed(kept(self.0.get(key)).await)
    }
    async fn replace(&self, record: &mut CallRecord) -> Result<bool, StoreError> {
        kept(self.0.replace(record)).await
    }
    async fn day(&self, day: &DayKey) -> Result<Vec<CallRecord>, StoreError> {
        handed(kept(self.0.day(day)).await)
    }
    // A page read is the reader's, as an SDK's response is: not tagged.
    fn day_records<'a>(&'a self, day: &'a DayKey) -> callsync::ports::Records<'a, CallRecord> {
        self.0.day_records(day)
    }
    fn delivery_records<'a>(
        &'a self,
        day: &'a DayKey,
        destination: &'a str,
    ) -> callsync::ports::Records<'a, DeliveryRecord> {
        self.0.delivery_records(day, destination)
    }
    async fn insert_delivery(&self, record: &DeliveryRecord) -> Result<bool, StoreError> {
        kept(self.0.insert_delivery(record)).await
    }
    async fn get_delivery(&self, key: &DeliveryKey) -> Result<Option<DeliveryRecord>, StoreError> {
        handed(kept(self.0.get_delivery(key)).await)
    }
    async fn replace_delivery(&self, record: &mut DeliveryRecord) -> Result<bool, StoreError> {
        kept(self.0.replace_delivery(record)).await
    }
    async fn deliveries(
        &self,
        day: &DayKey,
        destination: &str,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        handed(kept(self.0.deliveries(day, destination)).await)
    }
}

#[async_trait]
impl DayStore for Held<MemoryDays> {
    async fn get(&self, day: &DayKey) -> Result<Option<DayRecord>, StoreError> {
        handed(kept(self.0.get(day)).await)
    }
    async fn replace(&self, record: &mut DayRecord) -> Result<bool, StoreError> {
        kept(self.0.replace(record)).await
    }
    async fn open_days(&self, candidate: &CandidateSlug) -> Result<Vec<DayRecord>, StoreError> {
        handed(kept(self.0.open_days(candidate)).await)
    }
    async fn add_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
        kept(self.0.add_van_requests(day, n)).await
    }
    async fn add_van_requests_within(
        &self,
        day: &DayKey,
        n: u64,
        cap: u64,
    ) -> Result<bool, StoreError> {
        kept(self.0.add_van_requests_within(day, n, cap)).await
    }
    async fn return_van_requests(&self, day: &DayKey, n: u64) -> Result<(), StoreError> {
        kept(self.0.return_van_requests(day, n)).await
    }
    async fn van_requests(&self, day: &DayKey) -> Result<u64, StoreError> {
        kept(self.0.van_requests(day)).await
    }
}

#[async_trait]
impl RateStore for Held<MemoryRates> {
    async fn rate(&self, key: &str) -> Result<Option<RateState>, StoreError> {
        kept(self.0.rate(key)).await
    }
    async fn put_rate(
        &self,
        key: &str,
        state: &RateState,
        read: Option<u64>,
    ) -> Result<bool, StoreError> {
        kept(self.0.put_rate(key, state, read)).await
    }
}

#[async_trait]
impl<Q: CallQueue> CallQueue for Held<Arc<Q>> {
    async fn send(&self, messages: &[SyncMessage]) -> Result<Vec<usize>, StoreError> {
        handed(kept(self.0.send(messages)).await)
    }
    async fn send_later(
        &self,
        messages: &[SyncMessage],
        delay: std::time::Duration,
    ) -> Result<Vec<usize>, StoreError> {
        handed(kept(self.0.send_later(messages, delay)).await)
    }
}

#[async_trait]
impl ObjectStore for Held<MemoryObjects> {
    fn bucket(&self) -> &str {
        self.0.bucket()
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        handed(kept(self.0.list(prefix)).await)
    }
    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        handed(kept(self.0.get(key)).await)
    }
    async fn open(&self, key: &str) -> Result<callsync::ports::Chunks, StoreError> {
        // The pieces share the store's copy; none is made.
        kept(self.0.open(key)).await
    }
    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        // The body the run made is the run's until the store has its own copy.
        let body: &[u8] = &body;
        kept(async move { self.0.put(key, body.to_vec(), content_type).await }).await
    }
    async fn upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<Box<dyn Upload + '_>, StoreError> {
        let inner = kept(self.0.upload(key, content_type)).await?;
        Ok(Box::new(HeldUpload(inner)))
    }
    async fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        kept(self.0.rename(from, to)).await
    }
    async fn presign(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
        handed(kept(self.0.presign(key, ttl)).await)
    }
}

/// An upload into a held bucket: each piece written is the store's once handed over (as
/// S3 holds an uploaded part), not the run's.
struct HeldUpload<'a>(Box<dyn Upload + 'a>);

#[async_trait]
impl Upload for HeldUpload<'_> {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        let piece: &[u8] = &bytes;
        let inner = &mut self.0;
        kept(async move { inner.write(piece.to_vec()).await }).await
    }
    async fn finish(self: Box<Self>) -> Result<(), StoreError> {
        kept(self.0.finish()).await
    }
    async fn abort(self: Box<Self>) {
        kept(self.0.abort()).await;
    }
}

/// [`crate::bench::memory_services`] with every store [`Held`]: what they keep is counted
/// as theirs, not the run's.
pub fn held_services(
    queue: Arc<callsync::adapters::memory::MemoryQueue>,
) -> callsync::services::Services {
    let mut svc = crate::bench::memory_services(
        queue.clone(),
        callsync::adapters::memory::MemorySecrets::default(),
        Default::default(),
    );
    svc.ledger = Arc::new(Held(MemoryLedger::default()));
    svc.days = Arc::new(Held(MemoryDays::default()));
    svc.rates = Arc::new(Held(MemoryRates::default()));
    svc.objects = Arc::new(Held(MemoryObjects::default()));
    svc.queue = Arc::new(Held(queue));
    svc
}
