//! The LiveVox API client: one shared session (logged in lazily, renewed when idle or
//! refused), paged lists, errors that know whether to retry, and the call-detail source.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio::time::Instant;

use super::model::{
    CallCenter, CallDetail, ErrorBody, LoginRequest, LoginResponse, Service, TermCode,
};
use crate::retry::{RetryAdvice, RetryPolicy, Retryable};

/// The LiveVox secret, as stored (JSON with these snake_case keys).
#[derive(Clone, Deserialize)]
pub struct LiveVoxCredentials {
    pub access_token: String,
    pub client_name: String,
    pub user_name: String,
    pub password: String,
}

impl fmt::Debug for LiveVoxCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveVoxCredentials")
            .field("access_token", &"<redacted>")
            .field("client_name", &self.client_name)
            .field("user_name", &self.user_name)
            .field("password", &"<redacted>")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveVoxOptions {
    /// Transient failures (5xx, timeouts, connection errors) go through this policy.
    pub retry: RetryPolicy,
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// Items asked for per page of a list (LiveVox allows at most 1000).
    pub page_size: u32,
    /// LiveVox drops a session unused for 2 hours; one idle this long is replaced before
    /// use rather than risking a request on a session that is about to lapse.
    pub session_idle_limit: Duration,
}

impl Default for LiveVoxOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            page_size: 1000,
            session_idle_limit: Duration::from_secs(110 * 60),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveVoxError {
    #[error(
        "LiveVox refused the login (HTTP {status}{}): {message} — check the access token, client name, user name and password in the LiveVox secret",
        code_text(.code)
    )]
    Login {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    #[error("LiveVox answered HTTP {status}{}: {message} — {}", code_text(.code), hint(*.status))]
    Api {
        status: u16,
        code: Option<i64>,
        message: String,
    },
    #[error("could not reach LiveVox: {0}")]
    Transport(#[source] reqwest::Error),
    #[error("LiveVox sent an answer to {what} that callsync cannot read: {detail}")]
    Decode { what: String, detail: String },
    #[error("the LiveVox client is misconfigured: {0}")]
    Config(String),
}

fn code_text(code: &Option<i64>) -> String {
    code.map(|c| format!(", code {c}")).unwrap_or_default()
}

fn hint(status: u16) -> &'static str {
    match status {
        202 => "LiveVox returned only part of the result; ask for fewer services per request",
        401 => "the session was refused even after logging in again; check the LiveVox user",
        403 => {
            "the LiveVox user's role does not allow this request; ask the LiveVox administrator to grant it"
        }
        400..=499 => "LiveVox refused the request as it was sent",
        _ => "LiveVox failed; the request was retried and may succeed later",
    }
}

fn retry_for(status: u16) -> RetryAdvice {
    if status >= 500 || status == 429 {
        RetryAdvice::Backoff
    } else {
        RetryAdvice::Never
    }
}

impl Retryable for LiveVoxError {
    fn retry_advice(&self) -> RetryAdvice {
        match self {
            Self::Login { status, .. } | Self::Api { status, .. } => retry_for(*status),
            Self::Transport(e) if e.is_builder() => RetryAdvice::Never,
            Self::Transport(_) => RetryAdvice::Backoff,
            Self::Decode { .. } | Self::Config(_) => RetryAdvice::Never,
        }
    }
}

/// A LiveVox API client. Cheap to clone; clones share one session.
#[derive(Clone)]
pub struct LiveVoxClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    credentials: LiveVoxCredentials,
    options: LiveVoxOptions,
    /// Held across a login so that tasks needing a session at the same time share one.
    session: Mutex<Option<Session>>,
    requests: AtomicU64,
}

struct Session {
    id: String,
    last_used: Instant,
}

impl fmt::Debug for LiveVoxClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveVoxClient")
            .field("base", &self.inner.base.as_str())
            .field("credentials", &self.inner.credentials)
            .field("requests_made", &self.requests_made())
            .finish_non_exhaustive()
    }
}

impl LiveVoxClient {
    pub const DEFAULT_BASE_URL: &str = "https://api.livevox.com";

    pub fn new(
        base_url: &str,
        credentials: LiveVoxCredentials,
        options: LiveVoxOptions,
    ) -> Result<Self, LiveVoxError> {
        // A trailing slash makes `join` keep any path prefix of the base.
        let base =
            Url::parse(&format!("{}/", base_url.trim().trim_end_matches('/'))).map_err(|e| {
                LiveVoxError::Config(format!("base URL {base_url:?} is not a URL: {e}"))
            })?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(LiveVoxError::Config(format!(
                "base URL {base_url:?} must be http(s)"
            )));
        }
        if !(1..=1000).contains(&options.page_size) {
            return Err(LiveVoxError::Config(format!(
                "page size {} is outside LiveVox's 1..=1000",
                options.page_size
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.connect_timeout)
            // The session header must never follow a redirect to another host.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| LiveVoxError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                credentials,
                options,
                session: Mutex::new(None),
                requests: AtomicU64::new(0),
            }),
        })
    }

    /// HTTP requests sent so far, logins included.
    pub fn requests_made(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    pub async fn call_centers(&self) -> Result<Vec<CallCenter>, LiveVoxError> {
        self.list(
            Method::GET,
            "configuration/callCenters",
            &[],
            None,
            "callCenter",
        )
        .await
    }

    pub async fn services(&self, call_center: Option<u64>) -> Result<Vec<Service>, LiveVoxError> {
        let query: Vec<_> = call_center
            .map(|id| ("callCenter", id.to_string()))
            .into_iter()
            .collect();
        self.list(
            Method::GET,
            "configuration/services",
            &query,
            None,
            "service",
        )
        .await
    }

    /// The agent dispositions of one service. The path is a reconstruction **[guess]**.
    pub async fn term_codes(&self, service: u64) -> Result<Vec<TermCode>, LiveVoxError> {
        let mut codes: Vec<TermCode> = self
            .list(
                Method::GET,
                "configuration/termCodes",
                &[("service", service.to_string())],
                None,
                "termCode",
            )
            .await?;
        for code in codes.iter_mut().filter(|c| c.service_id == 0) {
            code.service_id = service;
        }
        Ok(codes)
    }

    fn url(&self, path: &str) -> Result<Url, LiveVoxError> {
        self.inner
            .base
            .join(path.trim_start_matches('/'))
            .map_err(|e| LiveVoxError::Config(format!("cannot build a URL for {path:?}: {e}")))
    }

    /// All items of a paged list: asks for `page_size` items and follows `next` until it
    /// is absent or blank. POST lists send the same body to every page.
    async fn list<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
        key: &str,
    ) -> Result<Vec<T>, LiveVoxError> {
        let mut pages = self.pages(method, path, query, body.cloned(), key, 0)?;
        let mut items = Vec::new();
        while let Some(page) = self.page(&mut pages).await? {
            items.extend(page);
        }
        Ok(items)
    }

    /// A paged list, to be read a page at a time with [`Self::page`].
    fn pages(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Value>,
        key: &str,
        offset: u64,
    ) -> Result<PageCursor, LiveVoxError> {
        let mut url = self.url(path)?;
        url.query_pairs_mut()
            .extend_pairs(query)
            .append_pair("count", &self.inner.options.page_size.to_string())
            .append_pair("offset", &offset.to_string());
        Ok(PageCursor {
            what: format!("{method} /{path}"),
            method,
            body,
            key: key.to_owned(),
            url: Some(url),
            seen: HashSet::new(),
        })
    }

    /// The next page of `cursor`'s list; `None` once the last was read.
    async fn page<T: DeserializeOwned>(
        &self,
        cursor: &mut PageCursor,
    ) -> Result<Option<Vec<T>>, LiveVoxError> {
        let Some(url) = cursor.url.take() else {
            return Ok(None);
        };
        let what = &cursor.what;
        let mut page = self
            .request(&cursor.method, &url, cursor.body.as_ref())
            .await?;
        let items = match page.get_mut(&cursor.key).map(Value::take) {
            None | Some(Value::Null) => Vec::new(),
            Some(list) => Vec::<T>::deserialize(list)
                .map_err(|e| decode(what, &format!("the {:?} list: {e}", cursor.key)))?,
        };
        let next = page
            .get("next")
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|n| !n.is_empty());
        if let Some(next) = next {
            let next_url = url
                .join(next)
                .map_err(|e| decode(what, &format!("`next` is not a URI: {e}")))?;
            if next_url.origin() != self.inner.base.origin() {
                return Err(decode(
                    what,
                    "`next` points to another host; it was not followed",
                ));
            }
            cursor.seen.insert(url);
            if cursor.seen.contains(&next_url) {
                return Err(decode(what, "`next` points back to a page already read"));
            }
            cursor.url = Some(next_url);
        }
        Ok(Some(items))
    }

    /// One API request, retried per the policy; a 401 logs in again once and repeats it.
    async fn request(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
    ) -> Result<Value, LiveVoxError> {
        self.inner
            .options
            .retry
            .run(|_| async move {
                let session = self.session(None).await?;
                match self.send(method, url, body, &session).await {
                    Err(LiveVoxError::Api { status: 401, .. }) => {
                        tracing::info!(
                            path = url.path(),
                            "LiveVox refused the session; logging in again"
                        );
                        let fresh = self.session(Some(&session)).await?;
                        self.send(method, url, body, &fresh).await
                    }
                    other => other,
                }
            })
            .await
    }

    async fn send(
        &self,
        method: &Method,
        url: &Url,
        body: Option<&Value>,
        session: &str,
    ) -> Result<Value, LiveVoxError> {
        let mut request = self
            .inner
            .http
            .request(method.clone(), url.clone())
            .header("LV-Session", session);
        if let Some(body) = body {
            request = request.json(body);
        }
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let response = request.send().await.map_err(LiveVoxError::Transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(LiveVoxError::Transport)?;
        // 202 is LiveVox's "partial success": a partial list of calls would lose calls
        // silently, so it counts as a failure.
        if !status.is_success() || status == StatusCode::ACCEPTED {
            let (code, message) = error_envelope(status, &bytes);
            return Err(LiveVoxError::Api {
                status: status.as_u16(),
                code,
                message,
            });
        }
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Value::Null);
        }
        serde_json::from_slice(&bytes)
            .map_err(|e| decode(&format!("{method} {}", url.path()), &e.to_string()))
    }

    /// The session to use: the current one unless it was just refused or has been idle
    /// too long, else a fresh login. Tasks that find the same session refused share the
    /// one new login.
    async fn session(&self, refused: Option<&str>) -> Result<String, LiveVoxError> {
        let mut slot = self.inner.session.lock().await;
        if let Some(current) = slot.as_mut() {
            let usable = refused != Some(current.id.as_str())
                && current.last_used.elapsed() < self.inner.options.session_idle_limit;
            if usable {
                current.last_used = Instant::now();
                return Ok(current.id.clone());
            }
        }
        *slot = None;
        let id = self.login().await?;
        *slot = Some(Session {
            id: id.clone(),
            last_used: Instant::now(),
        });
        Ok(id)
    }

    async fn login(&self) -> Result<String, LiveVoxError> {
        let c = &self.inner.credentials;
        let url = self.url("session/login")?;
        self.inner.requests.fetch_add(1, Ordering::Relaxed);
        let response = self
            .inner
            .http
            .post(url)
            .header("LV-Access", &c.access_token)
            .json(&LoginRequest {
                client_name: &c.client_name,
                user_name: &c.user_name,
                password: &c.password,
            })
            .send()
            .await
            .map_err(LiveVoxError::Transport)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(LiveVoxError::Transport)?;
        if !status.is_success() {
            let (code, message) = error_envelope(status, &bytes);
            return Err(LiveVoxError::Login {
                status: status.as_u16(),
                code,
                message,
            });
        }
        let login: LoginResponse = serde_json::from_slice(&bytes)
            .map_err(|e| decode("POST /session/login", &e.to_string()))?;
        match login.days_until_password_expires {
            Some(days) if days <= 14 => tracing::warn!(
                days_until_password_expires = days,
                "the LiveVox password expires soon; change it in LiveVox and in the secret"
            ),
            days => tracing::info!(days_until_password_expires = days, "logged in to LiveVox"),
        }
        Ok(login.session_id)
    }
}

/// LiveVox's `{code, message}`, or the start of whatever else came back.
pub(crate) fn error_envelope(status: StatusCode, bytes: &[u8]) -> (Option<i64>, String) {
    match serde_json::from_slice::<ErrorBody>(bytes) {
        Ok(ErrorBody { code, message }) if code.is_some() || message.is_some() => (
            code,
            message.unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_owned()),
        ),
        _ => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            let message = if text.is_empty() {
                status.canonical_reason().unwrap_or("no message").to_owned()
            } else {
                text.chars().take(200).collect()
            };
            (None, message)
        }
    }
}

/// A decode error whose detail has its quoted values removed: serde quotes the value it
/// could not read, and in call data that value may be a name.
fn decode(what: &str, detail: &str) -> LiveVoxError {
    let mut scrubbed = String::with_capacity(detail.len());
    let mut quoted = false;
    for c in detail.chars() {
        match (c, quoted) {
            ('"', false) => {
                quoted = true;
                scrubbed.push_str("\"…");
            }
            ('"', true) => {
                quoted = false;
                scrubbed.push('"');
            }
            (_, true) => {}
            (c, false) => scrubbed.push(c),
        }
    }
    LiveVoxError::Decode {
        what: what.to_owned(),
        detail: scrubbed,
    }
}

/// Where a list stands between pages: the page to ask for next (none once the last was
/// read) and the pages read, so a `next` that loops is caught.
#[derive(Debug, Clone)]
pub struct PageCursor {
    what: String,
    method: Method,
    body: Option<Value>,
    key: String,
    url: Option<Url>,
    seen: HashSet<Url>,
}

/// Where a read of call details stands: the services still to ask for, in request-sized
/// groups, and the page of the group being read.
#[derive(Debug, Clone)]
pub struct CallDetailCursor {
    from: Timestamp,
    to: Timestamp,
    groups: std::collections::VecDeque<Vec<u64>>,
    pages: Option<PageCursor>,
    /// How far the read has come, in the API's own terms.
    at: CallDetailPosition,
}

/// How far a read of call details has come: the service groups read to their end, and
/// the calls read of the next. A past day's answer is the same each time it is asked for
/// (sorted by start time), so a read can be taken up where another stopped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct CallDetailPosition {
    pub groups: u32,
    pub offset: u64,
}

impl CallDetailCursor {
    /// How far this read has come.
    pub fn position(&self) -> CallDetailPosition {
        self.at
    }

    /// Take up a read where one stopped at `at` (before the first page is asked for).
    pub fn resume(&mut self, at: CallDetailPosition) {
        let skip = usize::try_from(at.groups).unwrap_or(usize::MAX);
        self.groups.drain(..skip.min(self.groups.len()));
        self.at = at;
    }
}

/// Where the calls of a past period come from.
#[async_trait::async_trait]
pub trait CallDetailSource: Send + Sync {
    /// Start reading the calls that started in `[from, to)`, for the given services (all
    /// when empty), a page at a time with [`CallDetailSource::next_calls`].
    fn call_details_from(
        &self,
        from: Timestamp,
        to: Timestamp,
        services: &[u64],
    ) -> CallDetailCursor;

    /// The next page of calls; `None` once every page was read.
    async fn next_calls(
        &self,
        cursor: &mut CallDetailCursor,
    ) -> Result<Option<Vec<CallDetail>>, LiveVoxError>;

    /// Every call that started in `[from, to)`, held whole: for tools and tests. A run
    /// reads a page at a time.
    async fn call_details(
        &self,
        from: Timestamp,
        to: Timestamp,
        services: &[u64],
    ) -> Result<Vec<CallDetail>, LiveVoxError> {
        let mut cursor = self.call_details_from(from, to, services);
        let mut calls = Vec::new();
        while let Some(page) = self.next_calls(&mut cursor).await? {
            calls.extend(page);
        }
        Ok(calls)
    }
}

/// **[guess]** LiveVox publishes no per-call history method. Everything assumed about it —
/// path, body, paging, the service limit, the response key — is in this impl, so that it
/// can change without touching anything else. Reporting serves only days before today.
#[async_trait::async_trait]
impl CallDetailSource for LiveVoxClient {
    fn call_details_from(
        &self,
        from: Timestamp,
        to: Timestamp,
        services: &[u64],
    ) -> CallDetailCursor {
        // LiveVox reporting answers 202 (partial) beyond this many services per request.
        const MAX_SERVICES: usize = 150;
        let groups = if services.is_empty() {
            [Vec::new()].into()
        } else {
            services.chunks(MAX_SERVICES).map(<[u64]>::to_vec).collect()
        };
        CallDetailCursor {
            from,
            to,
            groups,
            pages: None,
            at: CallDetailPosition::default(),
        }
    }

    async fn next_calls(
        &self,
        cursor: &mut CallDetailCursor,
    ) -> Result<Option<Vec<CallDetail>>, LiveVoxError> {
        const PATH: &str = "reporting/callDetail";
        const KEY: &str = "callDetail";
        loop {
            if let Some(pages) = cursor.pages.as_mut() {
                if let Some(page) = self.page(pages).await? {
                    cursor.at.offset += page.len() as u64;
                    return Ok(Some(page));
                }
                cursor.pages = None;
                cursor.at = CallDetailPosition {
                    groups: cursor.at.groups + 1,
                    offset: 0,
                };
            }
            let Some(group) = cursor.groups.pop_front() else {
                return Ok(None);
            };
            let mut body = json!({
                "startDate": cursor.from.as_millisecond(),
                "endDate": cursor.to.as_millisecond(),
                "sortBy": "CALL_START_TIME",
            });
            if !group.is_empty() {
                body["filter"] = json!({ "service": group.iter().map(|id| json!({ "id": id })).collect::<Vec<_>>() });
            }
            // A group taken up mid-way starts at the calls read before.
            let offset = cursor.at.offset;
            cursor.pages = Some(self.pages(Method::POST, PATH, &[], Some(body), KEY, offset)?);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn credentials_come_from_the_secret_json_and_debug_redacts_them() {
        let c: LiveVoxCredentials = serde_json::from_str(
            r#"{"access_token":"tok-123","client_name":"acme","user_name":"ops","password":"hunter2"}"#,
        )
        .unwrap();
        assert_eq!(
            (c.client_name.as_str(), c.user_name.as_str()),
            ("acme", "ops")
        );
        let text = format!("{c:?}");
        assert!(
            !text.contains("tok-123") && !text.contains("hunter2"),
            "{text}"
        );
        assert!(text.contains("acme"), "{text}");
        let client =
            LiveVoxClient::new("http://127.0.0.1:9", c, LiveVoxOptions::default()).unwrap();
        let text = format!("{client:?}");
        assert!(
            !text.contains("tok-123") && !text.contains("hunter2"),
            "{text}"
        );
    }

    #[test]
    fn a_read_taken_up_skips_the_service_groups_read_and_starts_at_its_offset() {
        let creds = LiveVoxCredentials {
            access_token: "t".into(),
            client_name: "c".into(),
            user_name: "u".into(),
            password: "p".into(),
        };
        let client =
            LiveVoxClient::new("http://127.0.0.1:9", creds, LiveVoxOptions::default()).unwrap();
        // 400 services: three requests' worth (150 a request).
        let services: Vec<u64> = (1..=400).collect();
        let (from, to) = (Timestamp::UNIX_EPOCH, Timestamp::UNIX_EPOCH);
        let fresh = client.call_details_from(from, to, &services);
        assert_eq!(fresh.groups.len(), 3);
        assert_eq!(fresh.position(), CallDetailPosition::default());
        let mut cursor = client.call_details_from(from, to, &services);
        let at = CallDetailPosition {
            groups: 2,
            offset: 1_000,
        };
        cursor.resume(at);
        assert_eq!(cursor.position(), at);
        assert_eq!(cursor.groups.len(), 1);
        assert_eq!(
            cursor.groups[0],
            (301..=400).collect::<Vec<u64>>(),
            "the third group"
        );
        // A position past the groups there are leaves none to read.
        let mut cursor = client.call_details_from(from, to, &services);
        cursor.resume(CallDetailPosition {
            groups: 7,
            offset: 0,
        });
        assert!(cursor.groups.is_empty());
    }

    #[test]
    fn server_failures_are_retried_and_refusals_are_not() {
        let api = |status| LiveVoxError::Api {
            status,
            code: None,
            message: String::new(),
        };
        assert_eq!(api(503).retry_advice(), RetryAdvice::Backoff);
        assert_eq!(api(429).retry_advice(), RetryAdvice::Backoff);
        for status in [400, 401, 403, 404, 202] {
            assert_eq!(api(status).retry_advice(), RetryAdvice::Never, "{status}");
        }
        let login = LiveVoxError::Login {
            status: 401,
            code: Some(401),
            message: "bad".into(),
        };
        assert_eq!(login.retry_advice(), RetryAdvice::Never);
        assert_eq!(decode("x", "y").retry_advice(), RetryAdvice::Never);
    }

    #[test]
    fn error_envelopes_are_kept_and_other_bodies_summarised() {
        assert_eq!(
            error_envelope(
                StatusCode::FORBIDDEN,
                br#"{"code":403,"message":"role not allowed"}"#
            ),
            (Some(403), "role not allowed".to_owned())
        );
        assert_eq!(
            error_envelope(StatusCode::BAD_GATEWAY, b""),
            (None, "Bad Gateway".to_owned())
        );
        let err = LiveVoxError::Api {
            status: 403,
            code: Some(403),
            message: "role not allowed".into(),
        };
        assert!(err.to_string().contains("code 403"), "{err}");
        assert!(
            err.to_string().contains("ask the LiveVox administrator"),
            "{err}"
        );
    }

    #[test]
    fn decode_errors_do_not_repeat_the_values_they_could_not_read() {
        let detail = r#"invalid type: string "Ada Lovelace", expected u64 at line 1 column 40"#;
        let LiveVoxError::Decode { detail, .. } = decode("GET /x", detail) else {
            unreachable!()
        };
        assert_eq!(
            detail,
            r#"invalid type: string "…", expected u64 at line 1 column 40"#
        );
    }

    #[test]
    fn bad_base_urls_and_page_sizes_are_refused() {
        let creds = || LiveVoxCredentials {
            access_token: "t".into(),
            client_name: "c".into(),
            user_name: "u".into(),
            password: "p".into(),
        };
        assert!(LiveVoxClient::new("not a url", creds(), LiveVoxOptions::default()).is_err());
        assert!(
            LiveVoxClient::new("ftp://example.com", creds(), LiveVoxOptions::default()).is_err()
        );
        let options = LiveVoxOptions {
            page_size: 1001,
            ..LiveVoxOptions::default()
        };
        assert!(LiveVoxClient::new(LiveVoxClient::DEFAULT_BASE_URL, creds(), options).is_err());
    }
}
