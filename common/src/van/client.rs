//! The VAN API v4 client: one `send` path that authenticates, counts, logs and retries
//! every request, and the endpoint methods built on it.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tokio::time::Instant;

use super::credentials::VanCredentials;
use super::error::{VanError, is_json};
use super::model::{
    ActivistCode, CanvassResponse, ContactType, FindAnswer, FindPerson, InputType, Person,
    ResultCode, SurveyQuestion, read_list,
};
use crate::retry::{RetryAdvice, RetryPolicy, Retryable};
use crate::values::DatabaseMode;
use crate::values::VanId;

/// VAN's largest `$top`.
pub const MAX_PAGE_SIZE: u32 = 200;

/// A runaway `nextPageLink` chain stops here rather than looping forever.
const MAX_PAGES: usize = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    pub retry: RetryPolicy,
    /// The whole exchange, connect to last byte of the answer.
    pub request_timeout: Duration,
    pub connect_timeout: Duration,
    /// `$top` on list requests, 1–200: fewer pages means fewer billable requests.
    pub page_size: u32,
}

impl Default for ClientOptions {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            page_size: MAX_PAGE_SIZE,
        }
    }
}

/// The answer to a successful `POST /people/{vanId}/canvassResponses`. VAN's 204 has no
/// id, so the status and how many attempts it took are the receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PostReceipt {
    pub status: u16,
    pub attempts: u32,
}

/// A VAN API client for one key in one database mode. Cheap to clone; clones share the
/// connection pool and the request counters.
#[derive(Clone)]
pub struct VanClient {
    inner: Arc<Inner>,
    /// Told of every request before it is sent (see [`VanClient::metered`]).
    meter: Option<Arc<dyn RequestMeter>>,
}

/// Counts VAN requests where they must survive the process: each request is counted
/// before it goes out, so a worker killed mid-request never leaves a request uncounted.
#[async_trait::async_trait]
pub trait RequestMeter: Send + Sync {
    /// Count one request about to be sent. An error keeps it from being sent.
    async fn count(&self) -> Result<(), MeterError>;
    /// Wait for the rate limit's slot of one more request to a destination that does not
    /// charge for them (nothing counted on the day). An error keeps it from being sent.
    async fn pace(&self) -> Result<(), MeterError> {
        Ok(())
    }
    /// VAN answered one of the counted requests 429, saying to wait `hint` (for the run's
    /// metrics and the rate governor).
    async fn rate_limited(&self, _hint: Option<std::time::Duration>) {}
}

/// Why a request was not counted, and so not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterError {
    /// The counter could not be reached: worth trying again.
    #[error("{0}")]
    Unavailable(String),
    /// The rate limit has no slot for it within this batch.
    #[error("{0}")]
    NoSlot(String),
    /// The day's cap on requests is reached.
    #[error("{0}")]
    OverCap(String),
}

struct Inner {
    http: reqwest::Client,
    /// Always ends in `/`, so endpoint paths join beneath it.
    base: Url,
    credentials: VanCredentials,
    mode: DatabaseMode,
    options: ClientOptions,
    requests: AtomicU64,
    rate_limited: AtomicU64,
}

impl fmt::Debug for VanClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("VanClient")
            .field("base", &self.inner.base.as_str())
            .field("application_name", &self.inner.credentials.application_name)
            .field("mode", &self.inner.mode)
            .field("requests_made", &self.requests_made())
            .finish_non_exhaustive()
    }
}

/// What came back from one request that the caller accepts as an answer.
struct Answer {
    status: u16,
    content_type: Option<String>,
    location: Option<String>,
    body: Vec<u8>,
    attempts: u32,
}

impl Answer {
    /// The body as JSON, refusing bodies that do not say they are JSON.
    fn json<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, VanError> {
        if !is_json(self.content_type.as_deref()) {
            return Err(VanError::from_answer(
                self.status,
                self.content_type.as_deref(),
                &self.body,
            ));
        }
        serde_json::from_slice(&self.body).map_err(|e| VanError::decode(self.status, what, &e))
    }
}

/// One request, as the retry loop resends it.
struct Call<'a> {
    method: Method,
    url: Url,
    body: Option<Vec<u8>>,
    /// Non-2xx statuses the caller reads itself (`find`'s 302 and 404).
    also_accept: &'a [u16],
}

impl VanClient {
    pub const DEFAULT_BASE_URL: &str = "https://api.securevan.com/v4";

    pub fn new(
        base_url: &str,
        credentials: VanCredentials,
        mode: DatabaseMode,
        options: ClientOptions,
    ) -> Result<Self, VanError> {
        // The URL is not echoed in these errors in case someone put credentials in it.
        let mut base = Url::parse(base_url)
            .map_err(|e| VanError::Config(format!("the base URL is not a URL ({e})")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(VanError::Config(
                "the base URL must be an http(s) URL such as https://api.securevan.com/v4".into(),
            ));
        }
        if !base.username().is_empty() || base.password().is_some() {
            return Err(VanError::Config(
                "the base URL must not carry credentials; they come from the secret".into(),
            ));
        }
        if base.query().is_some() || base.fragment().is_some() {
            return Err(VanError::Config(
                "the base URL must not have a query or fragment".into(),
            ));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if credentials.application_name.trim().is_empty() || credentials.api_key.trim().is_empty() {
            return Err(VanError::Config(
                "the VAN secret needs a non-empty application_name and api_key".into(),
            ));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&options.page_size) {
            return Err(VanError::Config(format!(
                "page_size must be 1-{MAX_PAGE_SIZE}, not {}",
                options.page_size
            )));
        }

        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        let http = reqwest::Client::builder()
            .tls_backend_rustls()
            // `POST /people/find` answers 302 to the person; the 302 itself is the answer.
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .default_headers(headers)
            .user_agent(concat!("callsync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                VanError::Config(format!(
                    "could not build the HTTP client: {}",
                    e.without_url()
                ))
            })?;

        Ok(Self {
            inner: Arc::new(Inner {
                http,
                base,
                credentials,
                mode,
                options,
                requests: AtomicU64::new(0),
                rate_limited: AtomicU64::new(0),
            }),
            meter: None,
        })
    }

    /// This client (sharing its connections and counters) with every request also counted
    /// by `meter` before it is sent.
    pub fn metered(&self, meter: Arc<dyn RequestMeter>) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
            meter: Some(meter),
        }
    }

    pub fn mode(&self) -> DatabaseMode {
        self.inner.mode
    }

    /// The key of VAN's rate limit this client's requests count against (see
    /// [`VanCredentials::rate_key`]).
    pub fn rate_key(&self) -> String {
        self.inner.credentials.rate_key()
    }

    /// Every HTTP request sent, retries included: what VAN may bill for.
    pub fn requests_made(&self) -> u64 {
        self.inner.requests.load(Ordering::Relaxed)
    }

    /// 429 answers seen.
    pub fn rate_limited(&self) -> u64 {
        self.inner.rate_limited.load(Ordering::Relaxed)
    }

    /// `POST /echoes`: VAN sends the body back. A free check of the key and mode.
    pub async fn echo(&self, body: &Value) -> Result<Value, VanError> {
        let answer = self
            .send(Call {
                method: Method::POST,
                url: self.url("echoes", &[])?,
                body: Some(to_body(body)?),
                also_accept: &[],
            })
            .await?;
        answer.json("echo")
    }

    /// `GET /surveyQuestions`, every page. `statuses` is VAN's filter, e.g. `"Active"`.
    pub async fn survey_questions(
        &self,
        statuses: Option<&str>,
    ) -> Result<Vec<SurveyQuestion>, VanError> {
        self.list_paged("surveyQuestions", statuses, "survey question list")
            .await
    }

    pub async fn survey_question(&self, id: u32) -> Result<SurveyQuestion, VanError> {
        self.get_json(&format!("surveyQuestions/{id}"), &[], "survey question")
            .await
    }

    /// `GET /activistCodes`, every page.
    pub async fn activist_codes(
        &self,
        statuses: Option<&str>,
    ) -> Result<Vec<ActivistCode>, VanError> {
        self.list_paged("activistCodes", statuses, "activist code list")
            .await
    }

    pub async fn activist_code(&self, id: u32) -> Result<ActivistCode, VanError> {
        self.get_json(&format!("activistCodes/{id}"), &[], "activist code")
            .await
    }

    /// `GET /canvassResponses/resultCodes`: every result code in the database.
    pub async fn result_codes(&self) -> Result<Vec<ResultCode>, VanError> {
        self.result_codes_in(None, None).await
    }

    /// The result codes valid for a contact type and input type.
    pub async fn result_codes_in(
        &self,
        contact_type_id: Option<u32>,
        input_type_id: Option<u32>,
    ) -> Result<Vec<ResultCode>, VanError> {
        let mut query = Vec::new();
        if let Some(id) = contact_type_id {
            query.push(("contactTypeId", id.to_string()));
        }
        if let Some(id) = input_type_id {
            query.push(("inputTypeId", id.to_string()));
        }
        self.list_all(
            self.url("canvassResponses/resultCodes", &query)?,
            "result code list",
        )
        .await
    }

    pub async fn contact_types(&self) -> Result<Vec<ContactType>, VanError> {
        self.list_all(
            self.url("canvassResponses/contactTypes", &[])?,
            "contact type list",
        )
        .await
    }

    pub async fn input_types(&self) -> Result<Vec<InputType>, VanError> {
        self.list_all(
            self.url("canvassResponses/inputTypes", &[])?,
            "input type list",
        )
        .await
    }

    /// `POST /people/{vanId}/canvassResponses`. VAN answers 204 with no body; a 404 is
    /// [`VanError::UnknownPerson`], naming the id.
    pub async fn post_canvass_response(
        &self,
        van_id: VanId,
        body: &CanvassResponse,
    ) -> Result<PostReceipt, VanError> {
        let answer = self
            .send(Call {
                method: Method::POST,
                url: self.url(&format!("people/{van_id}/canvassResponses"), &[])?,
                body: Some(to_body(body)?),
                also_accept: &[],
            })
            .await
            .map_err(|e| e.for_person(van_id, self.inner.mode))?;
        Ok(PostReceipt {
            status: answer.status,
            attempts: answer.attempts,
        })
    }

    /// `POST /people/find`: the matched person's id, or `None` when VAN finds nobody.
    /// Never creates a person.
    pub async fn find_person(&self, query: &FindPerson) -> Result<Option<VanId>, VanError> {
        let answer = self
            .send(Call {
                method: Method::POST,
                url: self.url("people/find", &[])?,
                body: Some(to_body(query)?),
                also_accept: &[302, 404],
            })
            .await?;
        let found = if is_json(answer.content_type.as_deref()) {
            serde_json::from_slice::<FindAnswer>(&answer.body).ok()
        } else {
            None
        };
        if answer.status == 404 {
            // find's no-match is its own body, not the error envelope; any other 404
            // (a wrong base path, say) is an error.
            return match found {
                Some(f) if f.status.as_deref() == Some("Unmatched") => Ok(None),
                _ => Err(VanError::from_answer(
                    404,
                    answer.content_type.as_deref(),
                    &answer.body,
                )),
            };
        }
        let id = found
            .and_then(|f| f.van_id)
            .or_else(|| answer.location.as_deref().and_then(van_id_from_location));
        match id.map(VanId::new) {
            Some(Ok(id)) => Ok(Some(id)),
            _ => Err(VanError::Decode {
                status: answer.status,
                what: "find",
                message: "neither the body nor the Location header holds a vanId".into(),
            }),
        }
    }

    /// `GET /people/{vanId}?$expand=phones`: the person and their phones with `phoneId`s.
    pub async fn person_with_phones(&self, van_id: VanId) -> Result<Person, VanError> {
        self.get_json(
            &format!("people/{van_id}"),
            &[("$expand", "phones".to_owned())],
            "person",
        )
        .await
    }

    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &'static str,
    ) -> Result<T, VanError> {
        let answer = self
            .send(Call {
                method: Method::GET,
                url: self.url(path, query)?,
                body: None,
                also_accept: &[],
            })
            .await?;
        answer.json(what)
    }

    async fn list_paged<T: DeserializeOwned>(
        &self,
        path: &str,
        statuses: Option<&str>,
        what: &'static str,
    ) -> Result<Vec<T>, VanError> {
        let mut query = Vec::new();
        if let Some(statuses) = statuses {
            query.push(("statuses", statuses.to_owned()));
        }
        query.push(("$top", self.inner.options.page_size.to_string()));
        query.push(("$skip", "0".to_owned()));
        self.list_all(self.url(path, &query)?, what).await
    }

    /// Reads a list from `first`, following `nextPageLink` until VAN says there is no more.
    async fn list_all<T: DeserializeOwned>(
        &self,
        first: Url,
        what: &'static str,
    ) -> Result<Vec<T>, VanError> {
        let mut all = Vec::new();
        let mut url = first;
        for _ in 0..MAX_PAGES {
            let answer = self
                .send(Call {
                    method: Method::GET,
                    url: url.clone(),
                    body: None,
                    also_accept: &[],
                })
                .await?;
            let (items, next) = read_list::<T>(answer.json::<Value>(what)?)
                .map_err(|e| VanError::decode(answer.status, what, &e))?;
            let empty = items.is_empty();
            all.extend(items);
            match next.filter(|link| !link.is_empty()) {
                Some(link) if !empty => {
                    let next_url = self.follow(&url, &link)?;
                    if next_url == url {
                        break;
                    }
                    url = next_url;
                }
                _ => break,
            }
        }
        Ok(all)
    }

    /// The URL of the next page. Credentials go only to the configured origin: a link
    /// elsewhere keeps its path and query but is sent to our base URL's host.
    fn follow(&self, current: &Url, link: &str) -> Result<Url, VanError> {
        let next = current.join(link).map_err(|e| VanError::Decode {
            status: 200,
            what: "nextPageLink",
            message: e.to_string(),
        })?;
        let base = &self.inner.base;
        let same_origin = next.scheme() == base.scheme()
            && next.host_str() == base.host_str()
            && next.port_or_known_default() == base.port_or_known_default();
        if same_origin && next.path().starts_with(base.path()) {
            return Ok(next);
        }
        tracing::debug!(
            path = next.path(),
            "nextPageLink points outside the base URL; re-anchoring it"
        );
        let mut anchored = current.clone();
        anchored.set_query(next.query());
        Ok(anchored)
    }

    /// `path` beneath the base URL, with `query` appended. Keys are sent as VAN documents
    /// them (`$top`, not `%24top`); values are form-encoded.
    fn url(&self, path: &str, query: &[(&str, String)]) -> Result<Url, VanError> {
        let mut url = self
            .inner
            .base
            .join(path)
            .map_err(|e| VanError::Config(format!("cannot build the URL for {path}: {e}")))?;
        if !query.is_empty() {
            let qs = query
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{k}={}",
                        form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>()
                    )
                })
                .collect::<Vec<_>>()
                .join("&");
            url.set_query(Some(&qs));
        }
        Ok(url)
    }

    /// The one way a request reaches VAN: Basic auth, counted, logged, and retried as
    /// the error says.
    async fn send(&self, call: Call<'_>) -> Result<Answer, VanError> {
        let call = &call;
        self.inner
            .options
            .retry
            .run(|attempt| self.attempt(call, attempt))
            .await
    }

    async fn attempt(&self, call: &Call<'_>, attempt: u32) -> Result<Answer, VanError> {
        let inner = &*self.inner;
        let mut request = inner
            .http
            .request(call.method.clone(), call.url.clone())
            .basic_auth(
                &inner.credentials.application_name,
                Some(inner.credentials.password(inner.mode)),
            );
        if let Some(body) = &call.body {
            request = request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.clone());
        }
        let path = call.url.path();
        if let Some(meter) = &self.meter {
            meter.count().await.map_err(|e| match e {
                MeterError::Unavailable(m) => VanError::Uncounted(m),
                MeterError::NoSlot(m) => VanError::NoSlot(m),
                MeterError::OverCap(m) => VanError::OverCap(m),
            })?;
        }
        let started = Instant::now();
        inner.requests.fetch_add(1, Ordering::Relaxed);

        let result = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let headers = response.headers().clone();
                response.bytes().await.map(|body| (status, headers, body))
            }
            Err(e) => Err(e),
        };
        let elapsed_ms = started.elapsed().as_millis() as u64;
        let (status, headers, body) = match result {
            Ok(parts) => parts,
            Err(e) => {
                let err = VanError::from_transport(e);
                tracing::debug!(
                    method = %call.method, path, attempt, elapsed_ms,
                    error = %err, "VAN request failed"
                );
                return Err(err);
            }
        };
        tracing::debug!(method = %call.method, path, status, attempt, elapsed_ms, "VAN request");

        let text_header = |name: header::HeaderName| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let content_type = text_header(header::CONTENT_TYPE);
        if (200..300).contains(&status) || call.also_accept.contains(&status) {
            return Ok(Answer {
                status,
                location: text_header(header::LOCATION),
                content_type,
                body: body.to_vec(),
                attempts: attempt,
            });
        }
        let err = VanError::from_answer(status, content_type.as_deref(), &body);
        if status == 429 {
            inner.rate_limited.fetch_add(1, Ordering::Relaxed);
            if let Some(meter) = &self.meter {
                let hint = match err.retry_advice() {
                    RetryAdvice::After(hint) => Some(hint),
                    _ => None,
                };
                meter.rate_limited(hint).await;
            }
        }
        Err(err)
    }
}

fn to_body<T: Serialize + ?Sized>(body: &T) -> Result<Vec<u8>, VanError> {
    // Serialising our own types cannot fail; keep the error typed rather than panic.
    serde_json::to_vec(body).map_err(|e| VanError::Config(format!("request body: {e}")))
}

/// The id at the end of `…/people/{vanId}`.
pub(crate) fn van_id_from_location(location: &str) -> Option<u64> {
    let path = location.split(['?', '#']).next()?;
    path.trim_end_matches('/').rsplit('/').next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn creds() -> VanCredentials {
        VanCredentials {
            application_name: "callsync-demo".into(),
            api_key: "super-secret-key".into(),
        }
    }

    fn client(base: &str) -> Result<VanClient, VanError> {
        VanClient::new(
            base,
            creds(),
            DatabaseMode::VoterFile,
            ClientOptions::default(),
        )
    }

    #[test]
    fn the_client_is_shareable_across_tasks() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<VanClient>();
    }

    #[test]
    fn debug_of_a_client_never_shows_the_key() {
        let c = client(VanClient::DEFAULT_BASE_URL).unwrap();
        let debug = format!("{c:?}");
        assert!(!debug.contains("super-secret-key"), "{debug}");
        assert!(debug.contains("api.securevan.com"), "{debug}");
    }

    #[test]
    fn endpoint_urls_sit_beneath_the_base_path_with_literal_dollar_keys() {
        for base in [
            "https://api.securevan.com/v4",
            "https://api.securevan.com/v4/",
        ] {
            let c = client(base).unwrap();
            let url = c
                .url(
                    "surveyQuestions",
                    &[("statuses", "Active,Inactive".into()), ("$top", "5".into())],
                )
                .unwrap();
            assert_eq!(
                url.as_str(),
                "https://api.securevan.com/v4/surveyQuestions?statuses=Active%2CInactive&$top=5"
            );
        }
    }

    #[test]
    fn bad_configuration_is_refused_without_echoing_secrets() {
        let err = client("https://user:pw@api.securevan.com/v4").unwrap_err();
        assert!(matches!(err, VanError::Config(_)));
        assert!(!err.to_string().contains("pw"), "{err}");
        assert!(matches!(client("ftp://x/v4"), Err(VanError::Config(_))));
        assert!(matches!(client("not a url"), Err(VanError::Config(_))));
        let too_big = VanClient::new(
            VanClient::DEFAULT_BASE_URL,
            creds(),
            DatabaseMode::VoterFile,
            ClientOptions {
                page_size: 201,
                ..ClientOptions::default()
            },
        );
        assert!(matches!(too_big, Err(VanError::Config(_))));
        let no_key = VanClient::new(
            VanClient::DEFAULT_BASE_URL,
            VanCredentials {
                api_key: " ".into(),
                ..creds()
            },
            DatabaseMode::VoterFile,
            ClientOptions::default(),
        );
        assert!(matches!(no_key, Err(VanError::Config(_))));
    }

    #[test]
    fn a_next_page_link_elsewhere_is_sent_to_our_own_host() {
        let c = client("https://api.securevan.com/v4").unwrap();
        let current = c.url("surveyQuestions", &[("$top", "2".into())]).unwrap();
        let same = c
            .follow(
                &current,
                "https://api.securevan.com/v4/surveyQuestions?$top=2&$skip=2",
            )
            .unwrap();
        assert_eq!(
            same.as_str(),
            "https://api.securevan.com/v4/surveyQuestions?$top=2&$skip=2"
        );
        let elsewhere = c
            .follow(
                &current,
                "https://evil.example/v4/surveyQuestions?$top=2&$skip=4",
            )
            .unwrap();
        assert_eq!(
            elsewhere.as_str(),
            "https://api.securevan.com/v4/surveyQuestions?$top=2&$skip=4"
        );
        let relative = c
            .follow(&current, "/v4/surveyQuestions?$top=2&$skip=6")
            .unwrap();
        assert_eq!(relative.host_str(), Some("api.securevan.com"));
        assert_eq!(relative.query(), Some("$top=2&$skip=6"));
    }

    #[test]
    fn a_location_header_yields_the_van_id() {
        assert_eq!(
            van_id_from_location("https://api.securevan.com/v4/people/101"),
            Some(101)
        );
        assert_eq!(van_id_from_location("/v4/people/101/?x=1"), Some(101));
        assert_eq!(van_id_from_location("/v4/people/"), None);
    }
}
