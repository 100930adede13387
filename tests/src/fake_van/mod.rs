//! A fake NGP VAN API v4 that answers like the real one (see shared/reference/van-api.md):
//! auth by `key|mode` (any user name), error envelopes, paging, canvass-response
//! validation, 404 for people the database does not hold, 302 on find, a per-key rate limit with the real 429 text, and injectable faults.

mod canvass;
mod data;
mod reply;
mod routes;
pub(crate) mod serve;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde_json::Value;

pub use data::{
    ActivistCode, ContactType, Credential, InputType, Person, Phone, ResultCode, Status,
    SurveyQuestion, SurveyResponse, VanData,
};

use reply::VanError;
use serve::HangUp;

/// Requests larger than this are answered as if their body were empty; nothing we post is close.
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// A running fake VAN. Cheap to clone; every clone talks to the same server.
#[derive(Debug, Clone)]
pub struct FakeVan {
    shared: Arc<Shared>,
}

/// One request as the fake saw it. `status` is 0 when the fake hung up without answering.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordedRequest {
    pub method: String,
    /// The path without the `/v4` prefix, e.g. `/people/123/canvassResponses`.
    pub path: String,
    /// Decoded query pairs in the order sent.
    pub query: Vec<(String, String)>,
    /// The Basic-auth user name.
    pub application_name: Option<String>,
    /// What followed the last `|` of the Basic-auth password.
    pub db_mode: Option<String>,
    /// The body as JSON, or as a JSON string holding the raw text when it is not JSON.
    pub body: Option<Value>,
    pub status: u16,
    pub received_at: Instant,
    pub answered_at: Instant,
}

/// A token bucket per API key: `burst` tokens to start with, refilled at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    pub burst: u32,
    pub per_second: u32,
}

/// What VAN does with a canvass response carrying both a result code and responses;
/// the reference records both behaviours, so tests choose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum BothCodes {
    /// 400 "resultCodeId must be null when responses are specified".
    #[default]
    Reject,
    /// 204, as if the result code were Canvassed.
    OverwriteWithCanvassed,
}

/// A fault applied to the next `times` requests whose method (when set) and path match.
#[derive(Debug, Clone, PartialEq)]
pub struct Fault {
    /// Matched case-insensitively; `None` matches any method.
    pub method: Option<String>,
    /// Matched against the full request path (with or without the `/v4` prefix works).
    pub path_contains: String,
    pub times: u32,
    pub kind: FaultKind,
}

impl Fault {
    /// A fault for the next request, of any method, whose path contains `path_contains`.
    pub fn once(path_contains: impl Into<String>, kind: FaultKind) -> Fault {
        Fault {
            method: None,
            path_contains: path_contains.into(),
            times: 1,
            kind,
        }
    }

    pub fn times(mut self, times: u32) -> Fault {
        self.times = times;
        self
    }

    pub fn for_method(mut self, method: impl Into<String>) -> Fault {
        self.method = Some(method.into());
        self
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum FaultKind {
    /// 500 with the envelope: INTERNAL_SERVER_ERROR and a `referenceCode`.
    ServerError,
    /// 500 with a raw ASP.NET `{message, exceptionMessage, exceptionType, stackTrace}`.
    AspNetError,
    /// 400 with an HTML page.
    HtmlBadRequest,
    /// The real 429 envelope with "Try again in `wait_ms` ms.", no Retry-After.
    TooManyRequests { wait_ms: u64 },
    /// Waits, then answers normally.
    Delay(Duration),
    /// Closes the connection without any response.
    DropConnection,
}

#[derive(Debug)]
struct Shared {
    base_url: String,
    state: Mutex<VanState>,
}

#[derive(Debug, Default)]
struct VanState {
    data: VanData,
    /// Paired with an id so the answer can be filled in even after earlier entries were cleared.
    requests: Vec<(u64, RecordedRequest)>,
    next_request_id: u64,
    canvass_posts: Vec<(u64, Value)>,
    rate_limit: Option<RateLimit>,
    buckets: HashMap<String, Bucket>,
    faults: VecDeque<Fault>,
    both_codes: BothCodes,
    errors_served: u64,
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl FakeVan {
    /// Starts on an ephemeral loopback port.
    pub async fn start(data: VanData) -> FakeVan {
        FakeVan::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), data)
            .await
            .expect("binding an ephemeral loopback port")
    }

    pub async fn start_on(addr: SocketAddr, data: VanData) -> std::io::Result<FakeVan> {
        let (listener, local) = serve::bind(addr).await?;
        let shared = Arc::new(Shared {
            base_url: format!("http://{local}/v4"),
            state: Mutex::new(VanState {
                data,
                ..VanState::default()
            }),
        });
        serve::spawn(listener, router(shared.clone()));
        Ok(FakeVan { shared })
    }

    /// `http://127.0.0.1:PORT/v4`, without a trailing slash.
    pub fn base_url(&self) -> String {
        self.shared.base_url.clone()
    }

    pub fn requests(&self) -> Vec<RecordedRequest> {
        let state = self.shared.lock();
        state.requests.iter().map(|(_, r)| r.clone()).collect()
    }

    /// Canvass responses answered 204, as (vanId, body), in the order accepted.
    pub fn canvass_posts(&self) -> Vec<(u64, Value)> {
        self.shared.lock().canvass_posts.clone()
    }

    /// Requests with this method whose path (without `/v4`) starts with `path_prefix`.
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

    pub fn clear_requests(&self) {
        self.shared.lock().requests.clear();
    }

    /// Sets or removes the limit; every key starts again with a full bucket.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut state = self.shared.lock();
        state.rate_limit = limit;
        state.buckets.clear();
    }

    /// Queues a fault behind those already queued; a fault with `times == 0` does nothing.
    pub fn inject(&self, fault: Fault) {
        if fault.times > 0 {
            self.shared.lock().faults.push_back(fault);
        }
    }

    pub fn set_both_codes(&self, both: BothCodes) {
        self.shared.lock().both_codes = both;
    }

    /// Adds people, known by id only, to the VoterFile database.
    pub fn add_people(&self, van_ids: impl IntoIterator<Item = u64>) {
        self.shared.lock().data.known_van_ids.extend(van_ids);
    }

    /// Adds people, known by id only, to the MyCampaign database.
    pub fn add_mycampaign_people(&self, van_ids: impl IntoIterator<Item = u64>) {
        self.shared.lock().data.mycampaign_ids.extend(van_ids);
    }

    /// Removes a person, whether seeded with details or known by id only.
    pub fn remove_person(&self, van_id: u64) {
        let mut state = self.shared.lock();
        state.data.people.remove(&van_id);
        state.data.known_van_ids.remove(&van_id);
        state.data.mycampaign_ids.remove(&van_id);
    }

    pub fn with_data<R>(&self, f: impl FnOnce(&mut VanData) -> R) -> R {
        f(&mut self.shared.lock().data)
    }

    /// VAN knows `person`, given as VAN's JSON shows one (`vanId`, names, `phones`, …).
    pub fn add_person(&self, person: Value) {
        let person: Person = serde_json::from_value(person).expect("a person as VAN shows one");
        self.with_data(|d| d.people.insert(person.van_id, person));
    }

    /// VAN takes API key `to` where it took `from`, and refuses `from` from now on: a
    /// campaign replaced its key (or another system did).
    pub fn replace_key(&self, from: &str, to: &str) {
        self.with_data(|d| {
            for c in d.credentials.iter_mut().filter(|c| c.api_key == from) {
                c.api_key = to.into();
            }
        });
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, VanState> {
        // A panicking test thread must not take every later assertion down with it.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .nest("/v4", routes::v4(shared.clone()))
        .fallback(|| async { reply::iis_not_found() })
        .layer(axum::middleware::from_fn_with_state(shared, pipeline))
}

/// The database mode a request was authorised for (0 VoterFile, 1 MyCampaign): which
/// database's people it sees.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DbMode(pub(crate) u8);

/// The credentials a request presented, as far as they could be read.
#[derive(Debug, Default)]
struct BasicAuth {
    application_name: Option<String>,
    api_key: Option<String>,
    db_mode: Option<String>,
}

impl BasicAuth {
    fn from_headers(headers: &HeaderMap) -> BasicAuth {
        let decoded = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| {
                let (scheme, encoded) = value.split_once(' ')?;
                scheme
                    .eq_ignore_ascii_case("basic")
                    .then_some(encoded.trim())
            })
            .and_then(|encoded| {
                base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .ok()
            })
            .and_then(|bytes| String::from_utf8(bytes).ok());
        let Some(decoded) = decoded else {
            return BasicAuth::default();
        };
        let (user, password) = decoded.split_once(':').unwrap_or((decoded.as_str(), ""));
        let (key, mode) = match password.rsplit_once('|') {
            Some((key, mode)) => (key, Some(mode.to_string())),
            None => (password, None),
        };
        BasicAuth {
            application_name: Some(user.to_string()),
            api_key: Some(key.to_string()),
            db_mode: mode,
        }
    }
}

/// Records the request, then applies faults, auth and the rate limit before routing.
async fn pipeline(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let received_at = Instant::now();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, BODY_LIMIT)
        .await
        .unwrap_or_default();
    let auth = BasicAuth::from_headers(&parts.headers);
    let id = shared.record(&parts, &bytes, &auth, received_at);

    let response = answer(&shared, parts, bytes, &auth, next).await;

    let status = if response.extensions().get::<HangUp>().is_some() {
        0
    } else {
        response.status().as_u16()
    };
    shared.finish(id, status);
    response
}

async fn answer(
    shared: &Shared,
    parts: Parts,
    bytes: Bytes,
    auth: &BasicAuth,
    next: Next,
) -> Response {
    let path = parts.uri.path().to_string();
    match shared.take_fault(parts.method.as_str(), &path) {
        Some(FaultKind::Delay(delay)) => tokio::time::sleep(delay).await,
        Some(kind) => return shared.fault_response(kind),
        None => {}
    }
    if path != "/v4" && !path.starts_with("/v4/") {
        return reply::iis_not_found();
    }
    let Some((api_key, mode)) = shared.authorise(auth) else {
        return VanError::unauthorized().into_response();
    };
    if let Err(wait_ms) = shared.take_token(&api_key, Instant::now()) {
        return VanError::rate_limited(wait_ms).into_response();
    }
    let mut parts = parts;
    parts.extensions.insert(DbMode(mode));
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

impl Shared {
    fn record(&self, parts: &Parts, bytes: &Bytes, auth: &BasicAuth, at: Instant) -> u64 {
        let path = parts.uri.path();
        let path = path.strip_prefix("/v4").unwrap_or(path).to_string();
        let query = parts
            .uri
            .query()
            .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
            .unwrap_or_default();
        let body = (!bytes.is_empty()).then(|| {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
        });
        let recorded = RecordedRequest {
            method: parts.method.to_string(),
            path,
            query,
            application_name: auth.application_name.clone(),
            db_mode: auth.db_mode.clone(),
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

    fn finish(&self, id: u64, status: u16) {
        let mut state = self.lock();
        if let Some((_, request)) = state.requests.iter_mut().rev().find(|(i, _)| *i == id) {
            request.status = status;
            request.answered_at = Instant::now();
        }
    }

    fn take_fault(&self, method: &str, path: &str) -> Option<FaultKind> {
        let mut state = self.lock();
        let position = state.faults.iter().position(|fault| {
            fault
                .method
                .as_ref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method))
                && path.contains(&fault.path_contains)
        })?;
        let fault = &mut state.faults[position];
        let kind = fault.kind.clone();
        fault.times = fault.times.saturating_sub(1);
        if fault.times == 0 {
            state.faults.remove(position);
        }
        Some(kind)
    }

    fn fault_response(&self, kind: FaultKind) -> Response {
        match kind {
            FaultKind::ServerError => {
                let mut state = self.lock();
                state.errors_served += 1;
                let reference_code = format!("FAKE-{:04X}-{:04X}", state.errors_served, 0xC0DE);
                VanError::server_error(reference_code).into_response()
            }
            FaultKind::AspNetError => reply::asp_net_error(),
            FaultKind::HtmlBadRequest => reply::iis_bad_request(),
            FaultKind::TooManyRequests { wait_ms } => {
                VanError::rate_limited(wait_ms).into_response()
            }
            FaultKind::DropConnection => {
                let mut response = Response::default();
                response.extensions_mut().insert(HangUp);
                response
            }
            // Delays are applied by the caller and then answered normally.
            FaultKind::Delay(_) => Response::default(),
        }
    }

    /// The API key and mode when they match one credential. Like VAN, the user name is not
    /// checked: public clients send their own (parsons sends `default`).
    fn authorise(&self, auth: &BasicAuth) -> Option<(String, u8)> {
        let (Some(key), Some(mode)) = (&auth.api_key, &auth.db_mode) else {
            return None;
        };
        let mode: u8 = mode.parse().ok()?;
        let state = self.lock();
        state
            .data
            .credentials
            .iter()
            .any(|c| &c.api_key == key && c.db_mode == mode)
            .then(|| (key.clone(), mode))
    }

    /// Takes one token from the key's bucket, or says how many ms until the next one.
    fn take_token(&self, api_key: &str, now: Instant) -> Result<(), u64> {
        let mut state = self.lock();
        let Some(limit) = state.rate_limit else {
            return Ok(());
        };
        let burst = f64::from(limit.burst);
        let rate = f64::from(limit.per_second);
        let bucket = state.buckets.entry(api_key.to_string()).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * rate).min(burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        if rate <= 0.0 {
            // A bucket that never refills: any positive hint is as honest as another.
            return Err(1000);
        }
        let wait_ms = ((1.0 - bucket.tokens) / rate * 1000.0).ceil();
        // The float is small and positive here, so the cast cannot truncate meaningfully.
        Err((wait_ms as u64).max(1))
    }
}
