//! The hourly tick: which candidates have a day due, run each.

use super::*;

/// What one tick did for one candidate.
#[derive(Debug, Clone, Serialize)]
pub struct TickEntry {
    pub candidate: CandidateSlug,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run: Option<RunSummary>,
    pub settled: Vec<SettleSummary>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What the tick left alone, and why (a night another invocation is reading).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The hourly tick: every active candidate whose sync hour has come in its own zone gets
/// its previous local day run (until that day is complete), and every recent day with
/// work left is settled. One candidate's failure never stops another's.
///
/// Candidates go in slug order, those after `after` only when given (a tick handed on).
/// Out of time (`deadline`), the tick hands the candidates it did not reach to another
/// invocation (`RunLauncher::continue_tick`); the next hourly tick takes up what that
/// cannot.
pub async fn tick(
    svc: &Services,
    deadline: Option<Timestamp>,
    after: Option<&CandidateSlug>,
) -> Result<Vec<TickEntry>, StoreError> {
    let mut slugs = svc.config.list().await?;
    slugs.sort();
    slugs.retain(|s| after.is_none_or(|a| s > a));
    let mut entries = Vec::new();
    // The last candidate this invocation took: the next goes on after it.
    let mut reached: Option<CandidateSlug> = None;
    for slug in slugs {
        if deadline.is_some_and(|d| svc.clock.now() >= d) {
            let note = match reached {
                Some(last) => {
                    let rest = crate::ports::TickAfter { tick_after: last };
                    match svc.launcher.continue_tick(&rest).await {
                        Ok(()) => "this tick ran out of time here; another invocation goes on from this candidate".to_owned(),
                        Err(e) => {
                            tracing::warn!(error = %e, "could not hand the rest of the tick on");
                            format!("this tick ran out of time here and could not hand the rest on ({e}); the next hourly tick takes it up")
                        }
                    }
                }
                None => {
                    "this tick had no time for any candidate; the next hourly tick takes them up"
                        .to_owned()
                }
            };
            entries.push(TickEntry {
                candidate: slug,
                run: None,
                settled: Vec::new(),
                error: Some(note),
                note: None,
            });
            break;
        }
        reached = Some(slug.clone());
        let entry = match tick_candidate(svc, &slug, deadline).await {
            Ok(entry) => entry,
            Err(e) => {
                tracing::warn!(candidate = %slug, error = %e, "tick failed for this candidate");
                TickEntry {
                    candidate: slug.clone(),
                    run: None,
                    settled: Vec::new(),
                    error: Some(e.to_string()),
                    note: None,
                }
            }
        };
        entries.push(entry);
    }
    Ok(entries)
}

/// Until when a run of `day` with a deadline is reading it, if it still is.
fn reading(svc: &Services, day: &DayRecord) -> Option<Timestamp> {
    day.reading_until.filter(|t| *t > svc.clock.now())
}

pub(super) async fn tick_candidate(
    svc: &Services,
    slug: &CandidateSlug,
    deadline: Option<Timestamp>,
) -> Result<TickEntry, RunError> {
    let opts = RunOptions {
        deadline,
        ..RunOptions::default()
    };
    let settle_opts = SettleOptions {
        deadline,
        ..SettleOptions::default()
    };
    let candidate = svc.candidate(slug).await?;
    let mut entry = TickEntry {
        candidate: slug.clone(),
        run: None,
        settled: Vec::new(),
        error: None,
        note: None,
    };
    if !candidate.doc().active {
        return Ok(entry);
    }
    let local = svc.clock.now().to_zoned_datetime(candidate.zone.clone());
    let today = local.date();
    let yesterday = today.yesterday().unwrap_or(today);
    let mut done: BTreeSet<Date> = BTreeSet::new();
    if local.hour() >= i8::try_from(candidate.doc().sync_hour).unwrap_or(0) {
        let record = svc
            .days
            .get(&DayKey {
                candidate: slug.clone(),
                date: yesterday,
            })
            .await?;
        if let Some(until) = record.as_ref().and_then(|d| reading(svc, d)) {
            entry.note = Some(format!(
                "{yesterday}: a part of its night is reading it until {until}; left to it"
            ));
            done.insert(yesterday);
        } else if !record.is_some_and(|d| d.complete) {
            let summary = run(svc, slug, yesterday, opts).await?;
            done.extend(summary.days.iter().map(|d| d.date));
            entry.run = Some(summary);
        }
    }
    let oldest = today
        .checked_sub(jiff::Span::new().days(svc.settings.lookback_days))
        .unwrap_or(today);
    for open in svc.days.open_days(slug).await? {
        if deadline.is_some_and(|d| svc.clock.now() >= d) {
            break;
        }
        let date = open.key.date;
        if done.contains(&date) || date < oldest || date >= today || reading(svc, &open).is_some() {
            continue;
        }
        if candidate.doc().source.livevox.is_some() && open.livevox_read_at.is_none() {
            // Its LiveVox calls were never read (the API refused, or the day only came
            // from a file): a whole run, which reads them and settles the day.
            let summary = run(svc, slug, date, opts).await?;
            entry
                .settled
                .extend(summary.days.into_iter().filter(|d| d.date == date));
            continue;
        }
        entry
            .settled
            .push(settle_day(svc, &candidate, date, settle_opts).await?);
    }
    Ok(entry)
}
