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
    // The day has work again: ticks settle it until it is done (the report, if it was
    // sent, is not sent twice). Marked first, so a retry that dies part-way leaves what
    // it re-planned to the ticks.
    update_day(svc, &day, |d| {
        let was = d.complete;
        d.complete = false;
        was
    })
    .await?;
    let mut replanned: BTreeMap<CallState, u64> = BTreeMap::new();
    let mut unreadable = 0;
    // Destinations that mirror each call's whole story (`sql`) write again the calls whose
    // other deliveries this retry changes, once those are final again: each such call is
    // marked as it changes, so nothing of the day is held.
    let mirrors = candidate.mirrors();
    let mut mirrored: BTreeMap<String, u64> = BTreeMap::new();
    if !matches!(scope, RetryScope::Destination(_)) {
        let target = |r: &CallRecord| wanted.contains(&r.delivery.state);
        // The budget's first pass: the posts among the calls to re-plan, ranked, the best
        // kept up to what is left of the day's allowance (never more are held).
        let cut = match candidate.strategy() {
            Strategy::Budget {
                daily_free_requests,
            } => {
                let used = budget_used(svc, &candidate, date).await?;
                let mut cut =
                    planning::BudgetCut::new(u64::from(daily_free_requests).saturating_sub(used));
                let mut records = svc.ledger.day_records(&day);
                while let Some(record) = records.next().await {
                    let record = record?;
                    if let (true, Some(call)) = (target(&record), record.call.as_ref()) {
                        let (plan, _) = plan_one(&candidate, call);
                        cut.offer(&DayPlan {
                            call_id: call.call_id.clone(),
                            started_at: call.started_at,
                            plan,
                        });
                    }
                }
                Some(cut)
            }
            _ => None,
        };
        // The day's calls a page at a time, each re-planned and written as it comes.
        let mut records = svc.ledger.day_records(&day);
        while let Some(record) = records.next().await {
            let mut record = record?;
            if !target(&record) {
                continue;
            }
            let Some(call) = record.call.as_ref() else {
                unreadable += 1;
                continue;
            };
            let (mut plan, notes) = plan_one(&candidate, call);
            let day_plan = DayPlan {
                call_id: call.call_id.clone(),
                started_at: call.started_at,
                plan,
            };
            plan = if cut.as_ref().is_some_and(|c| c.moves(&day_plan)) {
                Plan::Csv(planning::CsvReason::OverBudget)
            } else {
                day_plan.plan
            };
            record.display_name = display_name(&candidate, call);
            record.apply_plan(&plan, now);
            record.notes = notes;
            // The mirrors are marked in a second step; the intent rides on the re-plan.
            record.remirror |= !mirrors.is_empty();
            if svc.ledger.replace(&mut record).await? {
                *replanned.entry(record.delivery.state).or_default() += 1;
                for (name, again) in
                    fanout::remirror(svc, &candidate, &mirrors, &mut record).await?
                {
                    *mirrored.entry(name).or_default() += again;
                }
            }
        }
    }
    // Destinations plan from the calls as they are now: a re-plan may have changed what an
    // extension said of them.
    let mut destinations = BTreeMap::new();
    for d in &candidate.destinations {
        let included = match scope {
            RetryScope::Everything => true,
            RetryScope::Calls => false,
            RetryScope::Destination(name) => *name == d.name,
        };
        if included {
            let (done, again) = fanout::retry(svc, &candidate, &day, d, &wanted, &mirrors).await?;
            for (name, again) in again {
                *mirrored.entry(name).or_default() += again;
            }
            destinations.insert(d.name.clone(), done);
        }
    }
    for (name, again) in mirrored {
        let entry: &mut DestinationRetry = destinations.entry(name).or_default();
        entry.updated += again;
    }
    // The calls this retry re-planned carry its instant: the settle queues them now.
    let opts = SettleOptions {
        fresh: Some(now),
        ..SettleOptions::default()
    };
    let settled = settle_day(svc, &candidate, date, opts).await?;
    Ok(RetrySummary {
        candidate: slug.clone(),
        date,
        replanned,
        unreadable,
        destinations,
        settled,
    })
}
