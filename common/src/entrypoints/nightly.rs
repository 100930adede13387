//! The `nightly` function's events: EventBridge's hourly tick, or a manual run
//! `{"candidate": "…", "date": "YYYY-MM-DD"?, "dry_run": bool?}` (a backfill, a re-run, a
//! preview) — and those it sends itself: a run's next part (`"continuation": n`) and the
//! rest of a tick that ran out of time (`{"tick_after": "<slug>"}`). A malformed event is
//! refused with what is wrong and where.

use serde_json::{Value, json};

use crate::nightly::{self, RunOptions};
use crate::services::Services;

pub use crate::ports::{ManualRun, TickAfter};

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error(
        "the event is neither EventBridge's scheduled event nor a manual run: {0} (send {{\"candidate\": \"<slug>\", \"date\": \"YYYY-MM-DD\", \"dry_run\": false}})"
    )]
    Malformed(String),
    #[error("{0}")]
    Run(#[from] nightly::RunError),
    #[error("{0}")]
    Store(#[from] crate::ports::StoreError),
}

fn is_scheduled(event: &Value) -> bool {
    event.get("source").and_then(Value::as_str) == Some("aws.events")
        || event.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
}

fn malformed(e: serde_path_to_error::Error<serde_json::Error>) -> EventError {
    let path = e.path().to_string();
    EventError::Malformed(if path == "." {
        e.inner().to_string()
    } else {
        format!("field `{path}`: {}", e.inner())
    })
}

/// When the runs of an invocation that must end by `end_ms` (Lambda's deadline, in
/// milliseconds since the epoch) stop reading: the settings' wrap-up before it.
pub fn deadline(svc: &Services, end_ms: u64) -> Option<jiff::Timestamp> {
    let end = jiff::Timestamp::from_millisecond(i64::try_from(end_ms).ok()?).ok()?;
    end.checked_sub(jiff::SignedDuration::try_from(svc.settings.wrap_up).ok()?)
        .ok()
}

/// Handle one event; the answer is the run's summary as JSON.
pub async fn handle(svc: &Services, event: Value) -> Result<Value, EventError> {
    handle_until(svc, event, None).await
}

/// [`handle`], within the invocation's time: the runs stop reading at `deadline` (the
/// function's end less the time to wrap up), and a run stopped there starts its next part.
pub async fn handle_until(
    svc: &Services,
    event: Value,
    deadline: Option<jiff::Timestamp>,
) -> Result<Value, EventError> {
    if is_scheduled(&event) {
        let entries = nightly::tick(svc, deadline, None).await?;
        return Ok(json!({ "tick": entries }));
    }
    if event.get("tick_after").is_some() {
        // The rest of a tick that ran out of time.
        let rest: TickAfter = serde_path_to_error::deserialize(event).map_err(malformed)?;
        let entries = nightly::tick(svc, deadline, Some(&rest.tick_after)).await?;
        return Ok(json!({ "tick": entries }));
    }
    let run: ManualRun = serde_path_to_error::deserialize(event).map_err(malformed)?;
    let date = match run.date {
        Some(d) => d,
        None => {
            let candidate = svc
                .candidate(&run.candidate)
                .await
                .map_err(nightly::RunError::from)?;
            nightly::default_date(svc, &candidate)
        }
    };
    let summary = nightly::run(
        svc,
        &run.candidate,
        date,
        RunOptions {
            dry_run: run.dry_run,
            // A continuation reads on from where the part before stopped.
            force_livevox: run.continuation == 0,
            deadline,
            continuation: run.continuation,
        },
    )
    .await?;
    Ok(serde_json::to_value(summary).unwrap_or(Value::Null))
}
