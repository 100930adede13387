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
