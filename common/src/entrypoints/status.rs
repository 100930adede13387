//! The `status` function's routes: what became of a candidate's day
//! (`GET /status/{candidate}?date=YYYY-MM-DD&errors_from=N`), re-planning its errors
//! after a mapping fix (`POST /retry` with `{candidate, date, states, destination}`), and starting a
//! run (`POST /runs` with the `nightly` function's manual event: a dry run answers its plan
//! here, a real run is handed to `nightly`, since a big day outlasts API Gateway's 30 s).

use std::collections::BTreeMap;

use futures::StreamExt;
use jiff::civil::Date;
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use serde::Deserialize;
use serde_json::json;

use super::http::{self, ApiContext, ApiError, json_response};
use super::nightly::ManualRun;
use crate::fanout;
use crate::ledger::{CallState, DayKey};
use crate::nightly::{self, RetryScope, RunError, RunOptions};
use crate::report;
use crate::services::{CandidateError, Services};
use crate::values::CandidateSlug;

/// Errors listed per answer; `errors_from` pages through the rest.
pub const ERRORS_PER_PAGE: usize = 100;

/// The `status` Lambda's handler.
pub async fn handle(ctx: &ApiContext, svc: &Services, req: Request) -> Response<Body> {
    http::serve(ctx, req, |req| route(ctx, svc, req)).await
}

async fn route(ctx: &ApiContext, svc: &Services, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::segments(&req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["status", c]) => status(ctx, svc, &req, c).await,
        (&Method::POST, ["retry"]) => retry(ctx, svc, &req).await,
        (&Method::POST, ["runs"]) => runs(ctx, svc, &req).await,
        _ => Err(http::not_found_route(&req)),
    }
}

fn bad_request(code: &str, message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, code, message)
}

fn run_error(e: RunError) -> ApiError {
    match e {
        RunError::Candidate(CandidateError::Store(e)) | RunError::Store(e) => e.into(),
        RunError::Candidate(e) => {
            ApiError::new(StatusCode::CONFLICT, "candidate_unusable", e.to_string())
        }
        RunError::Busy(..) => ApiError::new(StatusCode::CONFLICT, "busy", e.to_string()),
        RunError::Future(_) => bad_request("future_date", e.to_string()),
        RunError::NotConfigured(..) => {
            ApiError::new(StatusCode::CONFLICT, "not_configured", e.to_string())
        }
    }
}

async fn status(
    ctx: &ApiContext,
    svc: &Services,
    req: &Request,
    c: &str,
) -> Result<Response<Body>, ApiError> {
    let slug = http::slug(c)?;
    http::stored(ctx, &slug).await?;
    let date: Date = match http::query(req, "date") {
        Some(d) => d.parse().map_err(|_| {
            bad_request(
                "bad_date",
                format!("date={d:?} is not a date: use YYYY-MM-DD (the candidate's local day)"),
            )
        })?,
        None => {
            let candidate = svc
                .candidate(&slug)
                .await
                .map_err(|e| run_error(e.into()))?;
            nightly::default_date(svc, &candidate)
        }
    };
    // A page past the end is an empty page; nothing here can overflow.
    let from = http::query_number(req, "errors_from")?.unwrap_or(0);
    let day = DayKey {
        candidate: slug,
        date,
    };
    // The day is counted a page at a time: a big day is never held to answer.
    let mut tally = report::Tally::default();
    let mut own = fanout::no_own_counts();
    let mut page = Vec::new();
    let mut errors_total = 0;
    let mut calls = svc.ledger.day_records(&day);
    while let Some(record) = calls.next().await {
        let record = record?;
        tally.add(&record);
        fanout::add_own(&mut own, &record);
        if let Some(line) = report::error_line(&record) {
            if errors_total >= from && page.len() < ERRORS_PER_PAGE {
                page.push(serde_json::to_value(line).unwrap_or_default());
            }
            errors_total += 1;
        }
    }
    drop(calls);
    let next = from
        .checked_add(ERRORS_PER_PAGE)
        .filter(|next| *next < errors_total);
    // The candidate may have become unusable since (its document edited by hand): the
    // calls' own status still answers, without the destinations.
    let destinations = match svc.candidate(&day.candidate).await {
        Ok(candidate) => fanout::counts(svc, &candidate, &day, own).await?,
        Err(CandidateError::Store(e)) => return Err(e.into()),
        Err(_) => own,
    };
    let record = svc.days.get(&day).await?;
    let mut csv = Vec::new();
    for e in record.iter().flat_map(|d| &d.exports) {
        csv.push(json!({
            "key": e.key,
            "rows": e.rows,
            "url": svc.objects.presign(&e.key, svc.settings.link_ttl).await?,
        }));
    }
    let mut body = json!({
        "candidate": day.candidate,
        "date": date,
        "total": tally.total,
        "by_state": tally.by_state,
        "by_display_name": tally.by_display_name,
        "synced": tally.synced,
        "exported": tally.exported,
        "van_requests": svc.days.van_requests(&day).await?,
        "complete": record.as_ref().is_some_and(|d| d.complete),
        "report": record.as_ref().map(|d| &d.report),
        "blocked": record.as_ref().and_then(|d| d.blocked.as_ref()),
        "csv": csv,
        "errors": page,
        "errors_total": errors_total,
        "errors_next": next,
        "destinations": destinations,
    });
    // A night going on in parts: how far its runs have read (rows of each inbox file,
    // and into the LiveVox API's day), every row before it recorded.
    if let Some(d) = record
        .as_ref()
        .filter(|d| !d.progress.is_empty() || d.livevox_progress.is_some())
    {
        let files: BTreeMap<&str, u64> = d
            .progress
            .iter()
            .map(|(key, p)| (key.as_str(), p.rows))
            .collect();
        body["reading"] = json!({"files": files, "livevox": d.livevox_progress});
    }
    Ok(json_response(StatusCode::OK, &body))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RetryBody {
    candidate: CandidateSlug,
    date: Date,
    #[serde(default = "error_states")]
    states: Vec<CallState>,
    /// Only this destination's deliveries (`van` or `csv`: only the calls' own).
    #[serde(default)]
    destination: Option<String>,
}

fn error_states() -> Vec<CallState> {
    vec![CallState::AttemptedError, CallState::UnattemptedError]
}

async fn retry(
    ctx: &ApiContext,
    svc: &Services,
    req: &Request,
) -> Result<Response<Body>, ApiError> {
    let body: RetryBody = http::json_body(req)?;
    http::stored(ctx, &body.candidate).await?;
    if let Some(s) = body.states.iter().find(|s| !s.is_retryable()) {
        return Err(bad_request(
            "state_not_retryable",
            format!(
                "{s} calls are never re-planned: only attempted_error and unattempted_error are"
            ),
        ));
    }
    let scope = match body.destination.as_deref() {
        None => RetryScope::Everything,
        Some("van" | "csv") => RetryScope::Calls,
        Some(name) => {
            let candidate = svc
                .candidate(&body.candidate)
                .await
                .map_err(|e| run_error(e.into()))?;
            if candidate.destination(name).is_none() {
                let known: Vec<&str> = ["van", "csv"]
                    .into_iter()
                    .chain(candidate.destinations.iter().map(|d| d.name.as_str()))
                    .collect();
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "no_such_destination",
                    format!(
                        "candidate {} has no destination named {name:?}; it has {known:?}",
                        body.candidate
                    ),
                ));
            }
            RetryScope::Destination(name.to_owned())
        }
    };
    let summary = nightly::retry(svc, &body.candidate, body.date, &body.states, &scope)
        .await
        .map_err(run_error)?;
    Ok(json_response(StatusCode::OK, &summary))
}

async fn runs(ctx: &ApiContext, svc: &Services, req: &Request) -> Result<Response<Body>, ApiError> {
    let mut run: ManualRun = http::json_body(req)?;
    http::stored(ctx, &run.candidate).await?;
    let candidate = svc
        .candidate(&run.candidate)
        .await
        .map_err(|e| run_error(e.into()))?;
    let date = run
        .date
        .unwrap_or_else(|| nightly::default_date(svc, &candidate));
    if run.dry_run {
        let summary = nightly::run(
            svc,
            &run.candidate,
            date,
            RunOptions {
                dry_run: true,
                force_livevox: true,
                ..RunOptions::default()
            },
        )
        .await
        .map_err(run_error)?;
        return Ok(json_response(StatusCode::OK, &summary));
    }
    // Refused here, not only in `nightly`: an asynchronous run's refusal reaches nobody.
    if date > nightly::local_today(svc, &candidate) {
        return Err(run_error(RunError::Future(DayKey {
            candidate: run.candidate,
            date,
        })));
    }
    run.date = Some(date);
    svc.launcher.start(&run).await?;
    let body = json!({
        "accepted": true,
        "candidate": run.candidate,
        "date": date,
        "status": format!("/status/{}?date={date}", run.candidate),
    });
    Ok(json_response(StatusCode::ACCEPTED, &body))
}
