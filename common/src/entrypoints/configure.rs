//! The `configure` function's routes: what VAN offers a candidate's mapping
//! (`GET /configure/{candidate}`), and storing candidate documents
//! (`GET`/`PUT /candidates/{candidate}`, `PUT /candidates/{candidate}/results` from an
//! Airtable-export CSV). Documents are validated before anything is stored.

use lambda_http::http::{Method, StatusCode, header};
use lambda_http::{Body, Request, Response};
use serde_json::json;

use super::http::{self, ApiContext, ApiError, json_response, text_response};
use crate::candidate::CandidateDoc;
use crate::catalogue::Catalogue;
use crate::destinations::Compiled;
use crate::mapping::airtable::import_results;

/// The `configure` Lambda's handler.
pub async fn handle(ctx: &ApiContext, req: Request) -> Response<Body> {
    http::serve(ctx, req, |req| route(ctx, req)).await
}

/// `GET /extensions`: every extension with its metadata, and which the deployment enables
/// for candidates without their own list.
fn extensions(defaults: &[String]) -> serde_json::Value {
    let list: Vec<serde_json::Value> = crate::extensions::REGISTRY
        .iter()
        .map(|(metadata, _)| {
            let mut entry = serde_json::to_value(metadata).unwrap_or_default();
            entry["enabled_by_default"] = defaults.iter().any(|d| d == metadata.name).into();
            entry
        })
        .collect();
    json!({ "extensions": list, "deployment_default": defaults })
}

async fn route(ctx: &ApiContext, req: Request) -> Result<Response<Body>, ApiError> {
    let segments = http::segments(&req);
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    match (req.method(), segments.as_slice()) {
        (&Method::GET, ["configure", c]) => configure(ctx, &req, c).await,
        (&Method::GET, ["candidates"]) => {
            let known: Vec<String> = ctx
                .config
                .list()
                .await?
                .iter()
                .map(ToString::to_string)
                .collect();
            Ok(json_response(
                StatusCode::OK,
                &json!({ "candidates": known }),
            ))
        }
        (&Method::GET, ["candidates", c]) => {
            let doc = http::stored(ctx, &http::slug(c)?).await?;
            Ok(json_response(StatusCode::OK, &doc))
        }
        (&Method::GET, ["extensions"]) => Ok(json_response(
            StatusCode::OK,
            &extensions(&ctx.connectors.default_extensions),
        )),
        (&Method::PUT, ["candidates", c]) => put_candidate(ctx, &req, c).await,
        (&Method::PUT, ["candidates", c, "results"]) => put_results(ctx, &req, c).await,
        _ => Err(http::not_found_route(&req)),
    }
}

async fn configure(ctx: &ApiContext, req: &Request, c: &str) -> Result<Response<Body>, ApiError> {
    let slug = http::slug(c)?;
    // A stored document is checked again before anything connects: one saved before a
    // rule existed must not send credentials where the rule now forbids.
    let candidate = Compiled::for_deployment(http::stored(ctx, &slug).await?, &ctx.connectors)
        .map_err(|e| ApiError::invalid_document(&e))?;
    let doc = candidate.doc();
    if doc.van.is_none() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "no_van_settings",
            format!(
                "candidate {slug} has no `van` settings, so there is no VAN database to list: add them first"
            ),
        ));
    }
    let (client, fetched) = ctx
        .connectors
        .with_van(ctx.secrets.as_ref(), &candidate, |client| async move {
            Catalogue::fetch(&client).await
        })
        .await?;
    let mut catalogue = fetched.map_err(ApiError::van)?;
    if let Some(lv) = &doc.source.livevox {
        let client = ctx
            .connectors
            .livevox(ctx.secrets.as_ref(), &candidate)
            .await?;
        catalogue.livevox = Some(
            Catalogue::fetch_dialer(&client, &lv.services)
                .await
                .map_err(ApiError::livevox)?,
        );
    }
    tracing::info!(candidate = %slug, van_requests = client.requests_made(), "configure");
    // What each destination's live system offers the document (Action Network's tags); a
    // destination that cannot be listed says why, in its place.
    let mut destinations = serde_json::Map::new();
    for d in &candidate.destinations {
        let dctx = ctx.destination_context(&candidate);
        if let Some(listed) = d.adapter.catalogue(dctx).await {
            let mut entry = json!({ "kind": d.kind() });
            match listed {
                Ok(serde_json::Value::Object(offer)) => {
                    entry
                        .as_object_mut()
                        .into_iter()
                        .for_each(|e| e.extend(offer.clone()));
                }
                Ok(other) => entry["offers"] = other,
                Err(e) => entry["error"] = e.into(),
            }
            destinations.insert(d.name.clone(), entry);
        }
    }
    if http::query(req, "format").as_deref() == Some("text") {
        let mut text = catalogue.to_text();
        for (name, entry) in &destinations {
            text.push_str(&format!(
                "\nDestination {name} ({}):\n",
                entry["kind"].as_str().unwrap_or("?")
            ));
            if let Some(e) = entry["error"].as_str() {
                text.push_str(&format!("  could not be listed: {e}\n"));
            }
            for tag in entry["tags"].as_array().into_iter().flatten() {
                text.push_str(&format!("  tag {}\n", tag.as_str().unwrap_or_default()));
            }
        }
        return Ok(text_response(StatusCode::OK, text));
    }
    let mut answer = json!({ "candidate": slug.as_str(), "van": catalogue });
    if !destinations.is_empty() {
        answer["destinations"] = serde_json::Value::Object(destinations);
    }
    Ok(json_response(StatusCode::OK, &answer))
}

/// Check `doc` and store it, answering with what was stored (defaults filled in).
async fn store(ctx: &ApiContext, doc: CandidateDoc) -> Result<Response<Body>, ApiError> {
    let candidate = Compiled::for_deployment(doc, &ctx.connectors)
        .map_err(|e| ApiError::invalid_document(&e))?;
    check_addresses(ctx, &candidate).await?;
    http::check_storable(candidate.doc())?;
    ctx.config.put(candidate.doc()).await?;
    tracing::info!(candidate = %candidate.slug, results = candidate.mapping.rows().len(), "stored candidate");
    Ok(json_response(StatusCode::OK, candidate.doc()))
}

/// The hosts of the report webhook and of every destination, resolved now: a name that
/// resolves to a private, loopback or otherwise reserved address is refused at once (each
/// is checked again, resolved again, at every send; a name that does not resolve yet is
/// left to that check).
async fn check_addresses(ctx: &ApiContext, candidate: &Compiled) -> Result<(), ApiError> {
    let mut urls: Vec<(String, &str)> = Vec::new();
    if let Some(notify) = &candidate.doc().notify {
        urls.push(("notify.webhook_url".to_owned(), &notify.webhook_url));
    }
    for d in &candidate.destinations {
        let Some((url, field)) = d.adapter.endpoint() else {
            continue;
        };
        let i = candidate
            .doc()
            .destinations
            .iter()
            .position(|doc| doc.name == d.name)
            .unwrap_or_default();
        urls.push((format!("destinations[{i}].{field}"), url));
    }
    let egress = ctx.connectors.egress;
    let checks = urls.iter().map(|(field, raw)| async move {
        let url = egress
            .check_url(raw)
            .map_err(|e| url_error(field, raw, &e))?;
        match egress.resolve(&url).await {
            Err(e @ crate::egress::EgressError::PrivateAddress(_)) => {
                Err(url_error(field, raw, &e))
            }
            _ => Ok(()),
        }
    });
    let errors: Vec<crate::mapping::FieldError> = futures::future::join_all(checks)
        .await
        .into_iter()
        .filter_map(Result::err)
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::invalid_document(&errors))
    }
}

fn url_error(field: &str, url: &str, e: &crate::egress::EgressError) -> crate::mapping::FieldError {
    crate::mapping::FieldError::new(field, format!("{url:?} {e}"))
}

async fn put_candidate(
    ctx: &ApiContext,
    req: &Request,
    c: &str,
) -> Result<Response<Body>, ApiError> {
    let slug = http::slug(c)?;
    let doc: CandidateDoc = http::json_body(req)?;
    http::same_slug(&doc, &slug)?;
    http::check_result_rows(doc.results.len())?;
    store(ctx, doc).await
}

async fn put_results(ctx: &ApiContext, req: &Request, c: &str) -> Result<Response<Body>, ApiError> {
    let slug = http::slug(c)?;
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type
        .trim()
        .to_ascii_lowercase()
        .starts_with("text/csv")
    {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not_csv",
            "send the Airtable result table exported as CSV with `Content-Type: text/csv`",
        ));
    }
    http::check_body_size(req, http::MAX_CSV_BODY, "an Airtable export")?;
    let mut doc = http::stored(ctx, &slug).await?;
    let rows = import_results(http::body_bytes(req)).map_err(|errors| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_csv",
            format!(
                "the CSV has {} bad cell(s); nothing was stored",
                errors.len()
            ),
        )
        .with("errors", errors)
    })?;
    http::check_result_rows(rows.len())?;
    doc.results = rows;
    store(ctx, doc).await
}
