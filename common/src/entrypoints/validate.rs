//! The `validate` function's routes: check the stored candidate (`GET /validate/{candidate}`)
//! or a draft (`POST /validate/{candidate}`) against live VAN. Always answers
//! `{ok, errors, warnings}`; `?format=text` gives the per-row verdict as lines.

use std::fmt::Write as _;

use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};

use super::http::{self, ApiContext, ApiError, json_response, text_response};
use crate::candidate::CandidateDoc;
use crate::catalogue::Catalogue;
use crate::connect::ConnectError;
use crate::destinations::Compiled;
use crate::ports::StoreError;
use crate::validation::{self, Finding, Report};
use crate::van::VanError;

/// The `validate` Lambda's handler.
pub async fn handle(ctx: &ApiContext, req: Request) -> Response<Body> {
    http::serve(ctx, req, |req| route(ctx, req)).await
}

async fn route(ctx: &ApiContext, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::segments(&req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let doc = match (req.method(), segments.as_slice()) {
        (&Method::GET, ["validate", c]) => http::stored(ctx, &http::slug(c)?).await?,
        (&Method::POST, ["validate", c]) => {
            let slug = http::slug(c)?;
            let mut draft: CandidateDoc = http::json_body(&req)?;
            http::check_result_rows(draft.results.len())?;
            if draft.slug.is_empty() {
                draft.slug = slug.to_string();
            }
            http::same_slug(&draft, &slug)?;
            draft
        }
        _ => return Err(http::not_found_route(&req)),
    };
    let mut report = check(ctx, &doc).await?;
    let (problems, notes) = inspect_destinations(ctx, &doc).await;
    report.ok &= problems.is_empty();
    report.errors.extend(problems);
    report.notes = notes;
    if http::query(&req, "format").as_deref() == Some("text") {
        return Ok(text_response(StatusCode::OK, to_text(&doc, &report)));
    }
    Ok(json_response(StatusCode::OK, &report))
}

/// What each destination of a document whose settings check out finds by asking its live
/// system ([`crate::destinations::Destination::inspect`]): problems and notes, by field.
async fn inspect_destinations(
    ctx: &ApiContext,
    doc: &CandidateDoc,
) -> (Vec<Finding>, Vec<Finding>) {
    let settings = CandidateDoc {
        results: Vec::new(),
        ..doc.clone()
    };
    let Ok(candidate) = Compiled::for_deployment(settings, &ctx.connectors) else {
        return (Vec::new(), Vec::new());
    };
    let (mut problems, mut notes) = (Vec::new(), Vec::new());
    for d in &candidate.destinations {
        let at = doc
            .destinations
            .iter()
            .position(|x| x.name == d.name)
            .unwrap_or_default();
        let dctx = ctx.destination_context(&candidate);
        let found = d.adapter.inspect(dctx).await;
        let finding = |message| Finding {
            result: None,
            field: format!("destinations[{at}]"),
            message,
        };
        problems.extend(found.problems.into_iter().map(finding));
        notes.extend(found.notes.into_iter().map(finding));
    }
    (problems, notes)
}

/// Check `doc` whole first, then fetch what VAN (and LiveVox) offer and check the mapping
/// against it. Nothing connects anywhere unless every setting but the mapping passed its
/// checks: a draft may name a host or a secret it has no right to. A VAN that refuses the
/// candidate's credentials is a finding about the document, not a failure of the request.
async fn check(ctx: &ApiContext, doc: &CandidateDoc) -> Result<Report, ApiError> {
    let static_errors = match Compiled::for_deployment(doc.clone(), &ctx.connectors) {
        Ok(_) => Vec::new(),
        Err(e) => validation::static_findings(doc, &e),
    };
    if !static_errors.is_empty() {
        let fields: Vec<&str> = static_errors.iter().map(|f| f.field.as_str()).collect();
        tracing::info!(candidate = %doc.slug, ?fields, "draft has field errors");
    }
    let settings = CandidateDoc {
        results: Vec::new(),
        ..doc.clone()
    };
    let mut static_errors = static_errors;
    if let Ok(candidate) = Compiled::for_deployment(settings.clone(), &ctx.connectors) {
        // Each destination checks its own settings against what it needs live (its secret
        // reads, its host resolves to an address the deployment may reach). Nothing is sent.
        for (i, d) in candidate.destinations.iter().enumerate() {
            let at = doc
                .destinations
                .iter()
                .position(|x| x.name == d.name)
                .unwrap_or(i);
            let dctx = ctx.destination_context(&candidate);
            for problem in d.adapter.check(dctx).await {
                static_errors.push(Finding {
                    result: None,
                    field: format!("destinations[{at}]"),
                    message: problem,
                });
            }
        }
        // Each extension says whether it is fully configured; one that is not keeps the
        // nightly from running.
        for e in &candidate.extensions {
            let setup = crate::extensions::SetupContext {
                secrets: ctx.secrets.as_ref(),
                connectors: &ctx.connectors,
                candidate: &candidate,
                settings: &e.settings,
            };
            for problem in e.extension.configured(setup).await {
                static_errors.push(Finding {
                    result: None,
                    field: format!("extension_settings.{}", e.name()),
                    message: format!("extension {}: {problem}", e.name()),
                });
            }
        }
    }
    let (Ok(candidate), Some(van)) = (
        Compiled::for_deployment(settings, &ctx.connectors),
        &doc.van,
    ) else {
        return Ok(Report {
            ok: static_errors.is_empty(),
            errors: static_errors,
            warnings: Vec::new(),
            notes: Vec::new(),
        });
    };
    let fetched = match ctx
        .connectors
        .with_van(ctx.secrets.as_ref(), &candidate, |client| async move {
            Catalogue::fetch(&client).await
        })
        .await
    {
        Ok((_, fetched)) => fetched,
        Err(ConnectError::Store(
            e @ (StoreError::Corrupt { .. } | StoreError::SecretNotFound(_)),
        )) => {
            return Ok(single_error(
                static_errors,
                "van.secret_name",
                &e.to_string(),
            ));
        }
        Err(e) => return Err(e.into()),
    };
    let mut catalogue = match fetched {
        Ok(c) => c,
        Err(
            e @ VanError::Api {
                status: 401 | 403, ..
            },
        ) => {
            return Ok(single_error(
                static_errors,
                "van.database_mode",
                &format!(
                    "VAN refused the credentials in secret {:?} for database mode \"{}\" ({e}): check the API key and that the key belongs to that mode",
                    van.secret_name, van.database_mode
                ),
            ));
        }
        Err(e) => return Err(ApiError::van(e)),
    };
    if let Some(lv) = &doc.source.livevox {
        let lv_client = ctx
            .connectors
            .livevox(ctx.secrets.as_ref(), &candidate)
            .await?;
        catalogue.livevox = Some(
            Catalogue::fetch_dialer(&lv_client, &lv.services)
                .await
                .map_err(ApiError::livevox)?,
        );
    }
    Ok(validation::check(doc, static_errors, &catalogue))
}

fn single_error(mut errors: Vec<Finding>, field: &str, message: &str) -> Report {
    errors.insert(
        0,
        Finding {
            result: None,
            field: field.into(),
            message: message.into(),
        },
    );
    Report {
        ok: false,
        errors,
        warnings: Vec::new(),
        notes: Vec::new(),
    }
}

/// The original app's listing: one line per result row, then the verdict.
fn to_text(doc: &CandidateDoc, report: &Report) -> String {
    let mut out = String::new();
    for f in report.errors.iter().filter(|f| f.result.is_none()) {
        let _ = writeln!(out, "ERROR  {}: {}", f.field, f.message);
    }
    for row in &doc.results {
        let problems: Vec<&Finding> = report
            .errors
            .iter()
            .filter(|f| f.result.as_deref() == Some(row.result.as_str()))
            .collect();
        if problems.is_empty() {
            let _ = writeln!(out, "OK     {} → {}", row.result, row.display_name);
        }
        for f in problems {
            let _ = writeln!(out, "ERROR  {} ({}): {}", row.result, f.field, f.message);
        }
    }
    for w in &report.warnings {
        let _ = writeln!(out, "WARN   {}", w.message);
    }
    for n in &report.notes {
        let _ = writeln!(out, "NOTE   {}: {}", n.field, n.message);
    }
    let _ = writeln!(
        out,
        "\n{}: {} error(s), {} warning(s)",
        if report.ok { "VALID" } else { "INVALID" },
        report.errors.len(),
        report.warnings.len()
    );
    out
}
