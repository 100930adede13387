//! What the benches share.

/// The process's peak resident memory so far (VmHWM), in MiB; NaN where /proc says nothing.
pub fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

/// Drop a generated night of `calls` CDR rows on `date` in candidate `bench`'s inbox and
/// run it.
pub async fn bench_night(
    svc: &callsync::services::Services,
    date: jiff::civil::Date,
    calls: u64,
) -> callsync::nightly::RunSummary {
    svc.objects
        .put(
            "inbox/bench/cdr.csv",
            crate::demo_data::cdr_night(date, calls).into_bytes(),
            "text/csv",
        )
        .await
        .expect("put");
    let slug = callsync::values::CandidateSlug::parse("bench").expect("slug");
    callsync::nightly::run(svc, &slug, date, callsync::nightly::RunOptions::default())
        .await
        .expect("run")
}

/// Services on the in-memory stores, for benches: no network but what `connectors` names.
pub fn memory_services(
    queue: std::sync::Arc<callsync::adapters::memory::MemoryQueue>,
    secrets: callsync::adapters::memory::MemorySecrets,
    connectors: callsync::connect::Connectors,
) -> callsync::services::Services {
    use callsync::adapters::memory::{
        MemoryConfigStore, MemoryDays, MemoryLauncher, MemoryLedger, MemoryNotifier, MemoryObjects,
        MemoryRates,
    };
    use std::sync::Arc;
    callsync::services::Services {
        config: Arc::new(MemoryConfigStore::default()),
        secrets: Arc::new(secrets),
        ledger: Arc::new(MemoryLedger::default()),
        days: Arc::new(MemoryDays::default()),
        rates: Arc::new(MemoryRates::default()),
        queue,
        objects: Arc::new(MemoryObjects::default()),
        notifier: Arc::new(MemoryNotifier::default()),
        launcher: Arc::new(MemoryLauncher::default()),
        clock: crate::night::TestClock::new("2026-11-04T15:00:00Z"),
        connectors,
        settings: callsync::services::Settings::default(),
        compiled: Default::default(),
    }
}

/// Messages waiting for a `sync-call` worker, as a queue holds them.
#[derive(Debug, Default)]
pub struct Lane(std::sync::Mutex<std::collections::VecDeque<callsync::ports::SyncMessage>>);

impl Lane {
    pub fn new(messages: impl IntoIterator<Item = callsync::ports::SyncMessage>) -> Self {
        Self(std::sync::Mutex::new(messages.into_iter().collect()))
    }

    /// Up to `n` messages, oldest first.
    pub fn take(&self, n: usize) -> Vec<callsync::ports::SyncMessage> {
        let mut q = self.0.lock().expect("lock");
        let n = n.min(q.len());
        q.drain(..n).collect()
    }

    pub fn give_back(&self, messages: impl IntoIterator<Item = callsync::ports::SyncMessage>) {
        self.0.lock().expect("lock").extend(messages);
    }

    /// Hand `batch` to `sync-call` as one SQS event; the messages it asks to have delivered
    /// again go back on the lane at once, as after their visibility timeout.
    pub async fn deliver(
        &self,
        svc: &callsync::services::Services,
        batch: &[callsync::ports::SyncMessage],
    ) {
        use aws_lambda_events::sqs::{SqsEvent, SqsMessage};
        let mut event = SqsEvent::default();
        for (i, m) in batch.iter().enumerate() {
            let mut record = SqsMessage::default();
            record.message_id = Some(i.to_string());
            record.body = Some(serde_json::to_string(m).expect("json"));
            event.records.push(record);
        }
        let answer = callsync::entrypoints::sync_call::handle(svc, event).await;
        self.give_back(
            answer
                .batch_item_failures
                .iter()
                .filter_map(|f| f.item_identifier.parse::<usize>().ok())
                .map(|i| batch[i].clone()),
        );
    }
}

/// The day's VAN-bound calls not yet done (`unsynced` or `in_progress`).
pub async fn van_pending(
    svc: &callsync::services::Services,
    day: &callsync::ledger::DayKey,
) -> usize {
    use callsync::ledger::CallState;
    let records = svc.ledger.day(day).await.expect("ledger");
    records
        .iter()
        .filter(|r| r.post.is_some())
        .filter(|r| {
            matches!(
                r.delivery.state,
                CallState::Unsynced | CallState::InProgress
            )
        })
        .count()
}
