//! A fake LiveVox REST API (see shared/reference/livevox-api.md): session login with sliding
//! two-hour sessions, configuration lists, campaign search and the call-detail report, all
//! paged with `count`/`offset`/`next`, and the rule that reporting serves only past days.
//!
//! Paging: `count` is 1–1000 and defaults to [`DEFAULT_COUNT`]; `next` is an absolute URL
//! carrying the request's query with the next `offset`. On the last page GET lists leave
//! `next` out and POST lists send `""`, so clients meet both forms the reference allows.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Value, json};

use crate::fake_van::serve;

/// Page size when a list request gives no `count`.
pub const DEFAULT_COUNT: usize = 100;
const MAX_COUNT: usize = 1000;
/// LiveVox ends a session that has gone unused this long.
const SESSION_IDLE: Duration = Duration::from_secs(2 * 60 * 60);
/// The reference: at most 150 services per reporting request.
const MAX_REPORT_SERVICES: usize = 150;
const CLIENT_ID: u64 = 7700;
const USER_ID: u64 = 7701;

/// Everything the fake dialer account holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LiveVoxData {
    /// The `LV-Access` token every login must present.
    pub access_token: String,
    pub client_name: String,
    pub user_name: String,
    pub password: String,
    pub call_centers: Vec<CallCenter>,
    pub services: Vec<Service>,
    pub term_codes: Vec<TermCode>,
    pub campaigns: Vec<Campaign>,
    pub call_details: Vec<CallDetail>,
    /// The server's "today" (UTC) for the reporting rule; windows must end by its midnight.
    pub today: jiff::civil::Date,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallCenter {
    pub call_center_id: u64,
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub service_id: u64,
    pub name: String,
    pub call_center_id: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TermCode {
    pub id: u64,
    pub name: String,
    pub service_id: u64,
    pub term_category_id: u64,
    pub lv_result_id: u64,
    pub report_order: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Campaign {
    pub id: u64,
    pub name: String,
    pub type_id: u64,
    pub service_id: u64,
    pub status: String,
    pub upload_date: EpochMs,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallDetail {
    pub call_id: u64,
    pub account: String,
    pub first_name: String,
    pub last_name: String,
    pub phone_dialed: String,
    pub start: EpochMs,
    pub end: EpochMs,
    /// `None` for system results, where no agent took the call.
    pub agent_login: Option<String>,
    pub term_code_id: Option<u64>,
    pub result: String,
    pub service_id: u64,
    pub campaign_id: u64,
}

/// Epoch milliseconds (GMT), sent either as a JSON number or as a string of digits,
/// because LiveVox answers both ways and clients must parse both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochMs {
    Number(i64),
    Digits(i64),
}

impl EpochMs {
    pub fn millis(self) -> i64 {
        match self {
            EpochMs::Number(ms) | EpochMs::Digits(ms) => ms,
        }
    }
}

impl Serialize for EpochMs {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            EpochMs::Number(ms) => serializer.serialize_i64(*ms),
            EpochMs::Digits(ms) => serializer.serialize_str(&ms.to_string()),
        }
    }
}

impl<'de> Deserialize<'de> for EpochMs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<EpochMs, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Number(n) => n
                .as_i64()
                .map(EpochMs::Number)
                .ok_or_else(|| serde::de::Error::custom("epoch ms must be an integer")),
            Value::String(s) => s
                .parse()
                .map(EpochMs::Digits)
                .map_err(|_| serde::de::Error::custom("epoch ms must be digits")),
            _ => Err(serde::de::Error::custom(
                "epoch ms must be a number or digits",
            )),
        }
    }
}

/// A running fake LiveVox. Cheap to clone; every clone talks to the same server.
#[derive(Debug, Clone)]
pub struct FakeLiveVox {
    shared: Arc<Shared>,
}

/// One request as the fake saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct LvRecordedRequest {
    pub method: String,
    pub path: String,
    pub query: Vec<(String, String)>,
    /// Whether an `LV-Session` header was sent (valid or not).
    pub has_session: bool,
    /// The body as JSON, or as a JSON string holding the raw text when it is not JSON.
    pub body: Option<Value>,
    pub status: u16,
    pub received_at: Instant,
    pub answered_at: Instant,
}

#[derive(Debug)]
struct Shared {
    base_url: String,
    state: Mutex<LvState>,
}

#[derive(Debug)]
struct LvState {
    data: LiveVoxData,
    requests: Vec<(u64, LvRecordedRequest)>,
    next_request_id: u64,
    /// Session id → when it was last used.
    sessions: HashMap<String, Instant>,
    /// The session a repeated login hands back while it is still alive.
    current_session: Option<String>,
    sessions_issued: u64,
    logins: usize,
    /// Reporting answers 503 for pages from this offset on (an outage mid-read).
    reporting_down_from: Option<usize>,
}

impl FakeLiveVox {
    /// Starts on an ephemeral loopback port.
    pub async fn start(data: LiveVoxData) -> FakeLiveVox {
        FakeLiveVox::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), data)
            .await
            .expect("binding an ephemeral loopback port")
    }

    pub async fn start_on(addr: SocketAddr, data: LiveVoxData) -> std::io::Result<FakeLiveVox> {
        let (listener, local) = serve::bind(addr).await?;
        let shared = Arc::new(Shared {
            base_url: format!("http://{local}"),
            state: Mutex::new(LvState {
                data,
                requests: Vec::new(),
                next_request_id: 0,
                sessions: HashMap::new(),
                current_session: None,
                sessions_issued: 0,
                logins: 0,
                reporting_down_from: None,
            }),
        });
        serve::spawn(listener, router(shared.clone()));
        Ok(FakeLiveVox { shared })
    }

    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn requests(&self) -> Vec<LvRecordedRequest> {
        let state = self.shared.lock();
        state.requests.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Requests with this method whose path starts with `path_prefix`.
    pub fn count(&self, method: &str, path_prefix: &str) -> usize {
        let state = self.shared.lock();
        state
            .requests
            .iter()
            .filter(|(_, r)| {
                r.method.eq_ignore_ascii_case(method) && r.path.starts_with(path_prefix)
            })
            .count()
    }

    /// Successful logins, including those that handed back a still-valid session.
    pub fn logins(&self) -> usize {
        self.shared.lock().logins
    }

    /// Every current session stops working, as if two hours passed without use.
    pub fn expire_sessions(&self) {
        let mut state = self.shared.lock();
        state.sessions.clear();
        state.current_session = None;
    }

    /// The reporting service answers 503 (LiveVox's error envelope) for every page that
    /// starts at `offset` or later; `None` ends the outage.
    pub fn reporting_down_from(&self, offset: Option<usize>) {
        self.shared.lock().reporting_down_from = offset;
    }

    pub fn with_data<R>(&self, f: impl FnOnce(&mut LiveVoxData) -> R) -> R {
        f(&mut self.shared.lock().data)
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, LvState> {
        // A panicking test thread must not take every later assertion down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/session/login", post(login))
        .route("/session/v6.0/login", post(login))
        .route("/session/logout/{id}", delete(logout))
        .route("/configuration/callCenters", get(call_centers))
        .route("/configuration/services", get(services))
        .route("/configuration/services/{id}", get(service))
        .route("/configuration/termCodes", get(term_codes))
        .route("/campaign/campaigns/search", post(search_campaigns))
        .route("/reporting/callDetail", post(call_detail))
        .fallback(|| async { error(StatusCode::NOT_FOUND, "Not Found") })
        .layer(axum::middleware::from_fn_with_state(
            shared.clone(),
            pipeline,
        ))
        .with_state(shared)
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// LiveVox's error shape: `{"code": <int>, "message": "<text>"}`.
fn error(status: StatusCode, message: &str) -> Response {
    json_response(
        status,
        &json!({ "code": status.as_u16(), "message": message }),
    )
}

fn bad_request(message: &str) -> Response {
    error(StatusCode::BAD_REQUEST, message)
}

/// A 400 decided by a helper; kept small so `Result`s carrying it stay cheap.
#[derive(Debug, Clone, Copy)]
struct BadRequest(&'static str);

impl IntoResponse for BadRequest {
    fn into_response(self) -> Response {
        bad_request(self.0)
    }
}

fn is_login(path: &str) -> bool {
    path == "/session/login" || path == "/session/v6.0/login"
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

/// Records the request and, for everything but login, demands a live session.
async fn pipeline(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let received_at = Instant::now();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    let id = shared.record(&parts, &bytes, received_at);

    let response = if is_login(parts.uri.path()) || shared.touch_session(&parts.headers) {
        next.run(Request::from_parts(parts, Body::from(bytes)))
            .await
    } else {
        error(StatusCode::UNAUTHORIZED, "Invalid session id")
    };

    let mut state = shared.lock();
    if let Some((_, request)) = state.requests.iter_mut().rev().find(|(i, _)| *i == id) {
        request.status = response.status().as_u16();
        request.answered_at = Instant::now();
    }
    response
}

impl Shared {
    fn record(&self, parts: &Parts, bytes: &Bytes, at: Instant) -> u64 {
        let query = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let body = (!bytes.is_empty()).then(|| {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
        });
        let recorded = LvRecordedRequest {
            method: parts.method.to_string(),
            path: parts.uri.path().to_string(),
            query,
            has_session: parts.headers.contains_key("LV-Session"),
            body,
            status: 0,
            received_at: at,
            answered_at: at,
        };
        let mut state = self.lock();
        let id = state.next_request_id;
        state.next_request_id += 1;
        state.requests.push((id, recorded));
        id
    }

    /// Whether the request's session is alive; using it restarts its idle clock.
    fn touch_session(&self, headers: &HeaderMap) -> bool {
        let Some(session) = header_str(headers, "LV-Session") else {
            return false;
        };
        let now = Instant::now();
        let mut state = self.lock();
        match state.sessions.get_mut(session) {
            Some(last_used) if now.duration_since(*last_used) < SESSION_IDLE => {
                *last_used = now;
                true
            }
            Some(_) => {
                state.sessions.remove(session);
                false
            }
            None => false,
        }
    }
}

async fn login(State(shared): State<Arc<Shared>>, headers: HeaderMap, body: Bytes) -> Response {
    let mut state = shared.lock();
    if header_str(&headers, "LV-Access") != Some(state.data.access_token.as_str()) {
        return error(StatusCode::UNAUTHORIZED, "Invalid access token");
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body is not valid JSON");
    };
    let field = |name: &str| body.get(name).and_then(Value::as_str);
    let data = &state.data;
    if field("clientName") != Some(data.client_name.as_str())
        || field("userName") != Some(data.user_name.as_str())
        || field("password") != Some(data.password.as_str())
    {
        return error(
            StatusCode::UNAUTHORIZED,
            "Invalid client name, user name or password",
        );
    }
    let now = Instant::now();
    let alive = state.current_session.clone().filter(|id| {
        state
            .sessions
            .get(id)
            .is_some_and(|last_used| now.duration_since(*last_used) < SESSION_IDLE)
    });
    let session_id = match alive {
        Some(id) => id,
        None => {
            state.sessions_issued += 1;
            let n = state.sessions_issued;
            let id = format!("{n:08x}-fa4e-4d00-8000-{n:012x}");
            state.current_session = Some(id.clone());
            id
        }
    };
    state.sessions.insert(session_id.clone(), now);
    state.logins += 1;
    json_response(
        StatusCode::OK,
        &json!({
            "sessionId": session_id,
            "clientId": CLIENT_ID,
            "userId": USER_ID,
            "daysUntilPasswordExpires": 87,
        }),
    )
}

async fn logout(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let mut state = shared.lock();
    state.sessions.remove(&id);
    if state.current_session.as_deref() == Some(id.as_str()) {
        state.current_session = None;
    }
    StatusCode::NO_CONTENT.into_response()
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[derive(Debug, Clone, Copy)]
struct Page {
    count: usize,
    offset: usize,
}

impl Page {
    fn from_query(pairs: &[(String, String)]) -> Result<Page, BadRequest> {
        let count = match param(pairs, "count") {
            None => DEFAULT_COUNT,
            Some(raw) => match raw.trim().parse::<usize>() {
                Ok(count) if (1..=MAX_COUNT).contains(&count) => count,
                _ => return Err(BadRequest("count must be between 1 and 1000")),
            },
        };
        let offset = match param(pairs, "offset") {
            None => 0,
            Some(raw) => raw
                .trim()
                .parse::<usize>()
                .map_err(|_| BadRequest("offset must be zero or greater"))?,
        };
        Ok(Page { count, offset })
    }
}

/// How the last page says it is the last.
#[derive(Debug, Clone, Copy)]
enum LastPage {
    OmitNext,
    BlankNext,
}

fn list_page<T: Serialize>(
    shared: &Shared,
    path: &str,
    pairs: &[(String, String)],
    key: &str,
    items: Vec<T>,
    page: Page,
    last: LastPage,
) -> Response {
    let end = page.offset.saturating_add(page.count);
    let next = (end < items.len()).then(|| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (k, v) in pairs {
            if k != "count" && k != "offset" {
                query.append_pair(k, v);
            }
        }
        query.append_pair("count", &page.count.to_string());
        query.append_pair("offset", &end.to_string());
        format!("{}{path}?{}", shared.base_url, query.finish())
    });
    let items: Vec<T> = items
        .into_iter()
        .skip(page.offset)
        .take(page.count)
        .collect();
    let mut body = json!({ key: items });
    match (next, last) {
        (Some(next), _) => body["next"] = json!(next),
        (None, LastPage::BlankNext) => body["next"] = json!(""),
        (None, LastPage::OmitNext) => {}
    }
    json_response(StatusCode::OK, &body)
}

async fn call_centers(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let page = match Page::from_query(&pairs) {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let items = shared.lock().data.call_centers.clone();
    list_page(
        &shared,
        "/configuration/callCenters",
        &pairs,
        "callCenter",
        items,
        page,
        LastPage::OmitNext,
    )
}

async fn services(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let page = match Page::from_query(&pairs) {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let call_center = match param(&pairs, "callCenter").map(|c| c.trim().parse::<u64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return bad_request("callCenter must be a call center id"),
    };
    let items: Vec<Value> = shared
        .lock()
        .data
        .services
        .iter()
        .filter(|s| call_center.is_none_or(|c| s.call_center_id == c))
        .map(|s| json!({ "serviceId": s.service_id, "name": s.name }))
        .collect();
    list_page(
        &shared,
        "/configuration/services",
        &pairs,
        "service",
        items,
        page,
        LastPage::OmitNext,
    )
}

async fn service(State(shared): State<Arc<Shared>>, Path(id): Path<String>) -> Response {
    let found = id.parse::<u64>().ok().and_then(|id| {
        shared
            .lock()
            .data
            .services
            .iter()
            .find(|s| s.service_id == id)
            .cloned()
    });
    match found {
        Some(service) => json_response(StatusCode::OK, &json!(service)),
        None => error(StatusCode::NOT_FOUND, "Service not found"),
    }
}

async fn term_codes(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let page = match Page::from_query(&pairs) {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let service = match param(&pairs, "service").map(|s| s.trim().parse::<u64>()) {
        None => None,
        Some(Ok(id)) => Some(id),
        Some(Err(_)) => return bad_request("service must be a service id"),
    };
    let items: Vec<TermCode> = shared
        .lock()
        .data
        .term_codes
        .iter()
        .filter(|t| service.is_none_or(|s| t.service_id == s))
        .cloned()
        .collect();
    list_page(
        &shared,
        "/configuration/termCodes",
        &pairs,
        "termCode",
        items,
        page,
        LastPage::OmitNext,
    )
}

/// Epoch ms as LiveVox accepts it: a number, a string of digits, or ISO 8601 with an offset.
fn millis_of(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse::<i64>().ok().or_else(|| {
            s.parse::<jiff::Timestamp>()
                .ok()
                .map(|t| t.as_millisecond())
        }),
        _ => None,
    }
}

/// Service ids given as numbers, digit strings or `{id}` objects.
fn service_ids(value: Option<&Value>) -> Result<Vec<u64>, BadRequest> {
    let Some(items) = value.filter(|v| !v.is_null()) else {
        return Ok(Vec::new());
    };
    let Some(items) = items.as_array() else {
        return Err(BadRequest("service must be a list"));
    };
    items
        .iter()
        .map(|item| {
            let id = item.get("id").unwrap_or(item);
            id.as_u64()
                .or_else(|| id.as_str().and_then(|s| s.trim().parse().ok()))
                .ok_or(BadRequest("service ids must be numbers"))
        })
        .collect()
}

async fn search_campaigns(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let pairs = query_pairs(raw);
    let page = match Page::from_query(&pairs) {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body is not valid JSON");
    };
    let services = match service_ids(body.get("service")) {
        Ok(ids) => ids,
        Err(e) => return e.into_response(),
    };
    let range = body.get("dateRange");
    let from = range.and_then(|r| r.get("from")).and_then(millis_of);
    let to = range.and_then(|r| r.get("to")).and_then(millis_of);
    let items: Vec<Campaign> = shared
        .lock()
        .data
        .campaigns
        .iter()
        .filter(|c| services.is_empty() || services.contains(&c.service_id))
        .filter(|c| from.is_none_or(|f| c.upload_date.millis() >= f))
        .filter(|c| to.is_none_or(|t| c.upload_date.millis() <= t))
        .cloned()
        .collect();
    list_page(
        &shared,
        "/campaign/campaigns/search",
        &pairs,
        "campaign",
        items,
        page,
        LastPage::BlankNext,
    )
}

async fn call_detail(
    State(shared): State<Arc<Shared>>,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let pairs = query_pairs(raw);
    let page = match Page::from_query(&pairs) {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return bad_request("The request body is not valid JSON");
    };
    let (Some(start), Some(end)) = (
        body.get("startDate").and_then(millis_of),
        body.get("endDate").and_then(millis_of),
    ) else {
        return bad_request("startDate and endDate are required (epoch ms)");
    };
    if start >= end {
        return bad_request("startDate must be before endDate");
    }
    let services = match service_ids(body.get("filter").and_then(|f| f.get("service"))) {
        Ok(ids) => ids,
        Err(e) => return e.into_response(),
    };
    if services.len() > MAX_REPORT_SERVICES {
        return bad_request("At most 150 services may be requested at once");
    }
    let mut items: Vec<CallDetail> = {
        let state = shared.lock();
        if end > start_of_day_ms(state.data.today) {
            return bad_request("The reporting API serves only days before today");
        }
        if state
            .reporting_down_from
            .is_some_and(|from| page.offset >= from)
        {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "The service is temporarily unavailable",
            );
        }
        state
            .data
            .call_details
            .iter()
            .filter(|c| (start..end).contains(&c.start.millis()))
            .filter(|c| services.is_empty() || services.contains(&c.service_id))
            .cloned()
            .collect()
    };
    items.sort_by_key(|c| (c.start.millis(), c.call_id));
    list_page(
        &shared,
        "/reporting/callDetail",
        &pairs,
        "callDetail",
        items,
        page,
        LastPage::BlankNext,
    )
}

/// Midnight UTC at the start of `day`, in epoch ms.
pub fn start_of_day_ms(day: jiff::civil::Date) -> i64 {
    day.to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .map(|z| z.timestamp().as_millisecond())
        // Only dates at the very edge of jiff's range fail; treat them as "never today".
        .unwrap_or(i64::MAX)
}
