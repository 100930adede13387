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

use crate::adapters::dynamo_config::DynamoConfigStore;
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
            connectors: Connectors::from_vars(&vars),
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

/// The body as text (API Gateway may base64 it).
pub fn body_text(req: &Request) -> Result<&str, ApiError> {
    match req.body() {
        Body::Empty => Ok(""),
        Body::Text(t) => Ok(t),
        Body::Binary(b) => std::str::from_utf8(b).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "bad_encoding",
                format!(
                    "the body is not UTF-8 text (byte {}): send UTF-8",
                    e.valid_up_to()
                ),
            )
        }),
        _ => Ok(""),
    }
}

/// Parse a JSON body, naming the line, column and field of the first problem.
pub fn json_body<T: DeserializeOwned>(req: &Request) -> Result<T, ApiError> {
    let text = body_text(req)?;
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "empty_body",
            "the request has no body: send the JSON document",
        ));
    }
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
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
    })
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
}
