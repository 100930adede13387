//! `POST /retry`: plan a day's errors again, for the calls or one destination.

use super::*;

/// What `/retry` did.
#[derive(Debug, Clone, Serialize)]
pub struct RetrySummary {
    pub candidate: CandidateSlug,
    pub date: Date,
    /// Calls re-planned, by their new state.
    pub replanned: BTreeMap<CallState, u64>,
    /// Calls in the asked states that could not be re-planned (bad rows: fix the file
    /// and drop it in the inbox again).
    pub unreadable: u64,
    /// What was re-planned per configured destination.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub destinations: BTreeMap<String, DestinationRetry>,
    pub settled: SettleSummary,
}

/// Which deliveries `/retry` re-plans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetryScope {
    /// The calls' own delivery (VAN or the CSV) and every configured destination.
    Everything,
    /// VAN and the CSV only (`"destination": "van"` or `"csv"`).
    Calls,
    /// One configured destination only.
    Destination(String),
}

/// Re-plan a day's calls in `states` (error states only) with the current mapping, and
/// settle the day so the fixed calls are posted or exported. Never touches a finished call
/// of VAN or the CSV; a call delivered to a destination that takes updates is sent again,
/// as `updated`, when what it would be sent has changed.
pub async fn retry(
    svc: &Services,
    slug: &CandidateSlug,
    date: Date,
    states: &[CallState],
    scope: &RetryScope,
) -> Result<RetrySummary, RunError> {
    let candidate = svc.candidate(slug).await?;
    let day = DayKey {
        candidate: slug.clone(),
        date,
    };
    let wanted: Vec<CallState> = states
        .iter()
        .copied()
        .filter(|s| s.is_retryable())
        .collect();
    let now = svc.clock.now();
    let mut replanned: BTreeMap<CallState, u64> = BTreeMap::new();
    let mut fresh = HashSet::new();
    let mut unreadable = 0;
    let records = svc.ledger.day(&day).await?;
    if !matches!(scope, RetryScope::Destination(_)) {
        let (targets, unreadable_records): (Vec<&CallRecord>, Vec<&CallRecord>) = records
            .iter()
            .filter(|r| wanted.contains(&r.delivery.state))
            .partition(|r| r.call.is_some());
        unreadable = unreadable_records.len() as u64;
        let (plans, _) = plan_day(
            svc,
            &candidate,
            date,
            targets.iter().filter_map(|r| r.call.as_ref()),
        )
        .await?;
        for (record, (plan, notes)) in targets.into_iter().zip(plans) {
            let mut record = record.clone();
            record.display_name = record
                .call
                .as_ref()
                .and_then(|c| display_name(&candidate, c));
            record.apply_plan(&plan, now);
            record.notes = notes;
            if svc.ledger.replace(&mut record).await? {
                *replanned.entry(record.delivery.state).or_default() += 1;
                fresh.insert((date, record.key.call_id.clone()));
            }
        }
    }
    // Destinations plan from the calls as they are now: a re-plan may have changed what an
    // extension said of them.
    let records = if replanned.is_empty() {
        records
    } else {
        svc.ledger.day(&day).await?
    };
    let mut destinations = BTreeMap::new();
    for d in &candidate.destinations {
        let included = match scope {
            RetryScope::Everything => true,
            RetryScope::Calls => false,
            RetryScope::Destination(name) => *name == d.name,
        };
        if included {
            let done = fanout::retry(svc, &candidate, &day, d, &records, &wanted).await?;
            destinations.insert(d.name.clone(), done);
        }
    }
    // A destination that mirrors each call's whole story (`sql`) writes again the calls
    // whose other deliveries this retry changed, once those are final again.
    let mut touched: HashSet<CallId> = fresh.iter().map(|(_, id)| id.clone()).collect();
    for d in &candidate.destinations {
        if !d.adapter.metadata().waits_for_call
            && let Some(done) = destinations.get(&d.name)
        {
            touched.extend(done.calls.iter().cloned());
        }
    }
    if !touched.is_empty() {
        for d in &candidate.destinations {
            if d.adapter.metadata().waits_for_call {
                let again = fanout::mirror_again(svc, &candidate, d, &records, &touched).await?;
                let entry: &mut DestinationRetry = destinations.entry(d.name.clone()).or_default();
                entry.updated += again;
            }
        }
    }
    drop(records);
    // The day has work again: ticks settle it until it is done. The report, if it was
    // sent, is not sent twice.
    update_day(svc, &day, |d| {
        let was = d.complete;
        d.complete = false;
        was
    })
    .await?;
    let settled = settle_day(svc, &candidate, date, &fresh).await?;
    Ok(RetrySummary {
        candidate: slug.clone(),
        date,
        replanned,
        unreadable,
        destinations,
        settled,
    })
}
