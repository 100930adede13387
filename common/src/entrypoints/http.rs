//! What every HTTP API function shares: the bearer-token check, JSON answers and errors
//! that say what to do, body decoding that names the line and column of bad JSON, and the
//! clients built for a candidate from its secrets.

use std::sync::Arc;

use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Request, RequestExt, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::adapters::dynamo_config::{DynamoConfigStore, MAX_ITEM_BYTES, stored_bytes};
use crate::adapters::env;
use crate::adapters::secrets_manager::SecretsManagerStore;
use crate::candidate::CandidateDoc;
use crate::connect::ConnectError;
pub use crate::connect::Connectors;
use crate::livevox::LiveVoxError;
use crate::mapping::FieldError;
use crate::ports::{ConfigStore, SecretStore, StoreError};
use crate::values::CandidateSlug;
use crate::van::VanError;

/// Everything an API handler needs, built once per Lambda instance.
#[derive(Clone)]
pub struct ApiContext {
    pub config: Arc<dyn ConfigStore>,
    pub secrets: Arc<dyn SecretStore>,
    /// Name of the secret holding the bearer token.
    pub token_secret: String,
    pub connectors: Connectors,
}

impl std::fmt::Debug for ApiContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiContext")
            .field("token_secret", &self.token_secret)
            .field("connectors", &self.connectors)
            .finish_non_exhaustive()
    }
}

impl ApiContext {
    /// What a destination of `candidate` may use when an API route asks it something (its
    /// secrets, the deployment's connections, the wall clock); nothing is metered.
    pub fn destination_context<'a>(
        &'a self,
        candidate: &'a crate::candidate::Candidate,
    ) -> crate::destinations::DeliverContext<'a> {
        crate::destinations::DeliverContext::unmetered(
            self.secrets.as_ref(),
            &self.connectors,
            candidate,
            &crate::ports::SystemClock,
        )
    }

    /// The production wiring: DynamoDB and Secrets Manager, named by the environment.
    pub async fn from_env() -> Result<Self, env::MissingVar> {
        Self::build(&env::aws().await, env::Vars::process())
    }

    /// The wiring from an SDK configuration and a set of variables (the process
    /// environment in Lambda; a local stack's variables in tests).
    pub fn build(aws: &aws_config::SdkConfig, vars: env::Vars) -> Result<Self, env::MissingVar> {
        Ok(Self {
            config: Arc::new(DynamoConfigStore::new(
                aws_sdk_dynamodb::Client::new(aws),
                vars.required(env::CONFIG_TABLE)?,
            )),
            secrets: Arc::new(SecretsManagerStore::new(
                aws_sdk_secretsmanager::Client::new(aws),
                SecretsManagerStore::DEFAULT_TTL,
            )),
            token_secret: vars.required(env::API_TOKEN_SECRET)?,
            connectors: crate::adapters::env::connectors(&vars),
        })
    }
}

/// An API failure: its status, a stable `error` code and a message saying what to do.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            body: json!({"error": code, "message": message.into()}),
        }
    }

    /// Add a field to the JSON body.
    pub fn with(mut self, key: &str, value: impl Serialize) -> Self {
        self.body[key] = serde_json::to_value(value).unwrap_or(Value::Null);
        self
    }

    pub fn invalid_document(errors: &[FieldError]) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_document",
            format!(
                "the candidate document has {} problem(s); nothing was stored",
                errors.len()
            ),
        )
        .with("errors", errors)
    }

    pub fn van(e: VanError) -> Self {
        let message = format!("VAN: {e}");
        Self::new(StatusCode::BAD_GATEWAY, "van_error", message).with("van", e.envelope_json())
    }

    pub fn livevox(e: LiveVoxError) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            "livevox_error",
            format!("LiveVox: {e}"),
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let mut resp = json_response(self.status, &self.body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
        }
        resp
    }
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        match e {
            ConnectError::Store(e) => e.into(),
            ConnectError::Van(e) => Self::van(e),
            ConnectError::LiveVox(e) => Self::livevox(e),
            ConnectError::Config(message) => {
                Self::new(StatusCode::CONFLICT, "candidate_unusable", message)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let status = match e {
            StoreError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
            StoreError::Corrupt { .. } | StoreError::SecretNotFound(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        };
        let code = match e {
            StoreError::Unavailable(..) => "unavailable",
            StoreError::Corrupt { .. } => "corrupt",
            StoreError::SecretNotFound(_) => "secret_not_found",
        };
        Self::new(status, code, e.to_string())
    }
}

pub fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    let text = serde_json::to_string_pretty(body).unwrap_or_else(|_| "{}".into());
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::Text(text))
        .unwrap_or_default()
}

pub fn text_response(status: StatusCode, text: String) -> Response<Body> {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .body(Body::Text(text))
        .unwrap_or_default()
}

/// Refuse the request unless it carries `Authorization: Bearer <token>` with the token
/// from Secrets Manager, compared in constant time.
pub async fn authorize(ctx: &ApiContext, req: &Request) -> Result<(), ApiError> {
    let unauthorized = || {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send the API token as `Authorization: Bearer <token>`",
        )
    };
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or_else(unauthorized)?;
    let token = ctx.secrets.get(&ctx.token_secret).await?;
    let expected = token.expose().trim().as_bytes();
    if expected.is_empty() {
        return Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no_token",
            "the API token secret is empty: put a long random token in it",
        ));
    }
    if bool::from(presented.as_bytes().ct_eq(expected)) {
        Ok(())
    } else {
        Err(unauthorized())
    }
}

/// The request path split into segments, without any stage prefix API Gateway adds.
pub fn segments(req: &Request) -> Vec<String> {
    let path = req.raw_http_path();
    let path = if path.is_empty() {
        req.uri().path().to_owned()
    } else {
        path.to_owned()
    };
    path.split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A query parameter's first value.
pub fn query(req: &Request, name: &str) -> Option<String> {
    req.query_string_parameters_ref()
        .and_then(|q| q.first(name))
        .map(str::to_owned)
}

/// The largest JSON document any route takes (a candidate document, a draft, a retry or a
/// run request): well under DynamoDB's 400 KB item, so a document that fits here normally
/// fits there too (what is stored is measured again before it is written).
pub const MAX_JSON_BODY: usize = 256 * 1024;

/// The largest Airtable export `PUT /candidates/{candidate}/results` takes.
pub const MAX_CSV_BODY: usize = 256 * 1024;

/// The most result rows a candidate's mapping may have: far more than any dialer's
/// dispositions, few enough that the document fits in one DynamoDB item.
pub const MAX_RESULT_ROWS: usize = 2_000;

/// Refuse a mapping of more than [`MAX_RESULT_ROWS`] rows.
pub fn check_result_rows(rows: usize) -> Result<(), ApiError> {
    if rows <= MAX_RESULT_ROWS {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "too_many_results",
        format!(
            "the mapping has {rows} result rows; a candidate may have at most {MAX_RESULT_ROWS}: \
             remove rows for results the dialer never gives; nothing was stored"
        ),
    )
    .with("rows", rows)
    .with("limit", MAX_RESULT_ROWS))
}

/// Refuse a document whose stored form would not fit in one DynamoDB item, saying by how
/// much, before anything is written.
pub fn check_storable(doc: &CandidateDoc) -> Result<(), ApiError> {
    let size = stored_bytes(doc)?;
    if size <= MAX_ITEM_BYTES {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "document_too_large",
        format!(
            "the document would be {} KB stored; DynamoDB holds at most {} KB per item: \
             use fewer result rows, fewer survey responses per row or shorter names; nothing was stored",
            size.div_ceil(1024),
            MAX_ITEM_BYTES / 1024
        ),
    )
    .with("stored_bytes", size)
    .with("limit", MAX_ITEM_BYTES))
}

/// A query parameter that must be a whole number: `None` when absent, a 400 naming the
/// parameter when it is not digits. A number too large for this machine saturates: it is
/// only ever a position or a count, and past the end is simply nothing.
pub fn query_number(req: &Request, name: &str) -> Result<Option<usize>, ApiError> {
    let Some(raw) = query(req, name) else {
        return Ok(None);
    };
    let digits = raw.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            &format!("bad_{name}"),
            format!("{name}={raw:?} is not a number: use a whole number such as 0 or 100"),
        )
        .with("parameter", name));
    }
    Ok(Some(digits.parse().unwrap_or(usize::MAX)))
}

/// The body's bytes as received (API Gateway's base64 already undone).
pub fn body_bytes(req: &Request) -> &[u8] {
    match req.body() {
        Body::Text(t) => t.as_bytes(),
        Body::Binary(b) => b,
        _ => &[],
    }
}

/// Refuse a body larger than `limit` bytes with 413, before anything reads it.
pub fn check_body_size(req: &Request, limit: usize, what: &str) -> Result<(), ApiError> {
    let size = body_bytes(req).len();
    if size <= limit {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "body_too_large",
        format!(
            "the body is {} bytes; {what} may be at most {limit} bytes ({} KiB): send a smaller one",
            size,
            limit / 1024
        ),
    )
    .with("size", size)
    .with("limit", limit))
}

/// The body as UTF-8 text (API Gateway may base64 it); `what` names what was expected.
pub fn body_text<'r>(req: &'r Request, what: &str) -> Result<&'r str, ApiError> {
    std::str::from_utf8(body_bytes(req)).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_encoding",
            format!(
                "the body is not UTF-8 (the bytes at offset {} are not): it must be {what}",
                e.valid_up_to()
            ),
        )
        .with("offset", e.valid_up_to())
    })
}

/// Parse a JSON body of at most [`MAX_JSON_BODY`] bytes, naming the line, column and field
/// of the first problem. The body must be one JSON value: anything after it is refused.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    check_body_size(req, MAX_JSON_BODY, "a JSON body")?;
    let text = body_text(req, "UTF-8 JSON")?;
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the request has no body: send the JSON document",
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    let value = serde_path_to_error::deserialize(&mut *de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.inner();
        let at = format!("line {} column {}", inner.line(), inner.column());
        let message = if path == "." || path.is_empty() {
            format!("malformed JSON at {at}: {inner}")
        } else {
            format!("malformed JSON at {at}, field {path}: {inner}")
        };
        ApiError::new(StatusCode::BAD_REQUEST, "malformed_json", message)
            .with("line", inner.line())
            .with("column", inner.column())
            .with("field", path)
    })?;
    de.end().map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "malformed_json",
            format!(
                "malformed JSON at line {} column {}: the document ends before this; send one JSON value and nothing after it",
                e.line(),
                e.column()
            ),
        )
        .with("line", e.line())
        .with("column", e.column())
        .with("field", ".")
    })?;
    Ok(value)
}

/// Parse the `{candidate}` path segment.
pub fn slug(raw: &str) -> Result<CandidateSlug, ApiError> {
    CandidateSlug::parse(raw)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "bad_candidate", e.to_string()))
}

/// A document sent to a candidate's URL must be that candidate's: its secrets and inbox
/// are checked against its own slug.
pub fn same_slug(doc: &CandidateDoc, slug: &CandidateSlug) -> Result<(), ApiError> {
    if doc.slug == slug.as_str() {
        return Ok(());
    }
    Err(ApiError::invalid_document(&[FieldError::new(
        "slug",
        format!(
            "is {:?} but the URL names \"{slug}\": make them the same",
            doc.slug
        ),
    )]))
}

/// The stored document, or a 404 that names the candidates that do exist.
pub async fn stored(ctx: &ApiContext, slug: &CandidateSlug) -> Result<CandidateDoc, ApiError> {
    match ctx.config.get(slug).await? {
        Some(doc) => Ok(doc),
        None => {
            let known: Vec<String> = ctx
                .config
                .list()
                .await?
                .iter()
                .map(ToString::to_string)
                .collect();
            Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_candidate",
                format!(
                    "no candidate \"{slug}\"; known: {}",
                    if known.is_empty() {
                        "none yet (PUT /candidates/{slug} creates one)".to_owned()
                    } else {
                        known.join(", ")
                    }
                ),
            )
            .with("known", known))
        }
    }
}

pub fn not_found_route(req: &Request) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "no_route",
        format!("no route {} {}", req.method(), req.uri().path()),
    )
}

/// Run a routed handler: authorize first, then turn any error into its JSON answer.
pub async fn serve<F, Fut>(ctx: &ApiContext, req: Request, route: F) -> Response<Body>
where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Result<Response<Body>, ApiError>>,
{
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let result = match authorize(ctx, &req).await {
        Ok(()) => route(req).await,
        Err(e) => Err(e),
    };
    let resp = result.unwrap_or_else(ApiError::into_response);
    tracing::info!(%method, %path, status = resp.status().as_u16(), "request");
    resp
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryConfigStore, MemorySecrets};

    fn ctx(token: &str) -> ApiContext {
        ApiContext {
            config: Arc::new(MemoryConfigStore::default()),
            secrets: Arc::new(MemorySecrets::default().with("api-token", token)),
            token_secret: "api-token".into(),
            connectors: Connectors::default(),
        }
    }

    fn req(auth: Option<&str>) -> Request {
        let mut b = lambda_http::http::Request::builder().uri("/candidates");
        if let Some(a) = auth {
            b = b.header(header::AUTHORIZATION, a);
        }
        b.body(Body::Empty).unwrap()
    }

    #[tokio::test]
    async fn only_the_exact_bearer_token_is_let_in() {
        let c = ctx("s3cret-token");
        assert!(
            authorize(&c, &req(Some("Bearer s3cret-token")))
                .await
                .is_ok()
        );
        for bad in [
            None,
            Some("Bearer"),
            Some("Bearer "),
            Some("Basic s3cret-token"),
            Some("Bearer s3cret-toke"),
            Some("Bearer s3cret-token2"),
            Some("s3cret-token"),
        ] {
            let err = authorize(&c, &req(bad)).await.unwrap_err();
            assert_eq!(err.status, StatusCode::UNAUTHORIZED, "{bad:?}");
            assert!(
                !err.body.to_string().contains("s3cret"),
                "the token is never echoed"
            );
            let resp = err.into_response();
            assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
        }
    }

    #[tokio::test]
    async fn an_empty_token_secret_lets_nobody_in() {
        let c = ctx("  ");
        let err = authorize(&c, &req(Some("Bearer x"))).await.unwrap_err();
        assert_eq!(err.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(err.body["error"], "no_token");
    }

    #[tokio::test]
    async fn an_unknown_candidate_names_the_known_ones() {
        let c = ctx("t");
        let doc: CandidateDoc = serde_json::from_value(serde_json::json!({
            "slug": "ny14-smith", "display_name": "S", "time_zone": "America/New_York",
            "sync_hour": 2, "source": {"cdr": {}}, "strategy": "all_csv"
        }))
        .unwrap();
        c.config.put(&doc).await.unwrap();
        let err = stored(&c, &CandidateSlug::parse("pa07").unwrap())
            .await
            .unwrap_err();
        assert_eq!(err.status, StatusCode::NOT_FOUND);
        assert_eq!(err.body["known"], serde_json::json!(["ny14-smith"]));
        assert!(
            stored(&c, &CandidateSlug::parse("ny14-smith").unwrap())
                .await
                .is_ok()
        );
    }

    fn with_body(body: Body) -> Request {
        lambda_http::http::Request::builder()
            .uri("/runs")
            .body(body)
            .unwrap()
    }

    fn with_query(name: &str, value: &str) -> Request {
        let mut params = std::collections::HashMap::new();
        params.insert(name.to_owned(), value.to_owned());
        lambda_http::http::Request::builder()
            .uri("/status/demo")
            .body(Body::Empty)
            .unwrap()
            .with_query_string_parameters(params)
    }

    #[derive(Debug, serde::Deserialize)]
    struct Run {
        #[allow(dead_code)]
        candidate: String,
    }

    #[test]
    fn bytes_after_the_json_document_are_refused_naming_line_and_column() {
        for (body, line, column) in [
            ("{\"candidate\": \"demo\"} garbage", 1, 23),
            ("{\"candidate\": \"demo\"}{\"candidate\": \"x\"}", 1, 22),
            ("{\"candidate\": \"demo\"}\n\n]", 3, 1),
        ] {
            let err = json_body::<Run>(&with_body(Body::Text(body.into()))).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{body}");
            assert_eq!(err.body["error"], "malformed_json", "{body}");
            assert_eq!(err.body["line"], line, "{body}: {}", err.body);
            assert_eq!(err.body["column"], column, "{body}: {}", err.body);
            let message = err.body["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("line {line} column {column}")),
                "{message}"
            );
        }
        assert!(
            json_body::<Run>(&with_body(Body::Text("{\"candidate\": \"demo\"}\n".into()))).is_ok()
        );
    }

    #[test]
    fn a_body_that_is_not_utf8_is_refused_as_not_utf8_json() {
        let err = json_body::<Run>(&with_body(Body::Binary(
            b"{\"candidate\": \"\xff\"}".to_vec(),
        )))
        .unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.body["error"], "bad_encoding");
        assert_eq!(err.body["offset"], 15);
        assert!(
            err.body["message"].as_str().unwrap().contains("UTF-8 JSON"),
            "{}",
            err.body
        );
    }

    #[test]
    fn a_json_body_over_the_limit_is_refused_with_413_before_it_is_parsed() {
        let big = format!("{{\"candidate\": \"{}\"}}", "x".repeat(MAX_JSON_BODY));
        let err = json_body::<Run>(&with_body(Body::Text(big.clone()))).unwrap_err();
        assert_eq!(err.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(err.body["error"], "body_too_large");
        assert_eq!(err.body["size"], big.len());
        assert_eq!(err.body["limit"], MAX_JSON_BODY);
        let fits = format!("{{\"candidate\": \"{}\"}}", "x".repeat(MAX_JSON_BODY - 20));
        assert!(json_body::<Run>(&with_body(Body::Text(fits))).is_ok());
    }

    #[test]
    fn a_number_too_large_for_usize_saturates_and_a_non_number_names_the_parameter() {
        let q = |v: &str| query_number(&with_query("errors_from", v), "errors_from");
        assert_eq!(q("18446744073709551615").unwrap(), Some(usize::MAX));
        assert_eq!(q("99999999999999999999999999").unwrap(), Some(usize::MAX));
        assert_eq!(q("100").unwrap(), Some(100));
        for bad in ["", "-1", "1e3", "ten", "0x10", "+5"] {
            let err = q(bad).unwrap_err();
            assert_eq!(err.status, StatusCode::BAD_REQUEST, "{bad:?}");
            assert_eq!(err.body["error"], "bad_errors_from", "{bad:?}");
            assert_eq!(err.body["parameter"], "errors_from", "{bad:?}");
        }
        assert_eq!(query_number(&req(None), "errors_from").unwrap(), None);
    }

    #[test]
    fn more_result_rows_than_the_cap_are_refused_naming_the_limit() {
        assert!(check_result_rows(MAX_RESULT_ROWS).is_ok());
        let err = check_result_rows(MAX_RESULT_ROWS + 1).unwrap_err();
        assert_eq!(err.status, StatusCode::BAD_REQUEST);
        assert_eq!(err.body["error"], "too_many_results");
        assert!(err.body["message"].as_str().unwrap().contains("2000"));
    }
}
