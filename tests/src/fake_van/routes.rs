//! The `/v4` endpoints: echoes, paged survey questions and activist codes, the bare-array
//! canvass lookups, canvass responses, and people (find and get).

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};

use super::reply::{self, VanError};
use super::{DbMode, Shared, Status, canvass};

pub(super) fn v4(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/echoes", post(echo))
        .route("/surveyQuestions", get(survey_questions))
        .route("/surveyQuestions/{id}", get(survey_question))
        .route("/activistCodes", get(activist_codes))
        .route("/activistCodes/{id}", get(activist_code))
        .route("/canvassResponses/contactTypes", get(contact_types))
        .route("/canvassResponses/inputTypes", get(input_types))
        .route("/canvassResponses/resultCodes", get(result_codes))
        .route("/people/find", post(find_person))
        .route("/people/{id}", get(get_person))
        .route(
            "/people/{id}/canvassResponses",
            post(post_canvass_responses),
        )
        .fallback(|| async { reply::iis_not_found() })
        .with_state(shared)
}

/// A path id as IIS routes it: an integer that fits VAN's 32-bit ids, or no route at all.
fn path_id(raw: &str) -> Option<u64> {
    if raw.is_empty() || !raw.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    raw.parse::<u64>().ok().filter(|id| *id <= i32::MAX as u64)
}

fn query_pairs(raw: Option<String>) -> Vec<(String, String)> {
    raw.map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default()
}

fn param<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

async fn echo(body: Bytes) -> Response {
    match serde_json::from_slice::<Value>(&body) {
        Ok(value) => reply::json(StatusCode::OK, &value),
        Err(_) => VanError::invalid("The request body is not valid JSON.", None).into_response(),
    }
}

/// `$top` and `$skip`, validated as VAN does.
#[derive(Debug, Clone, Copy)]
struct Page {
    top: usize,
    skip: usize,
}

const MAX_TOP: usize = 200;
const DEFAULT_TOP: usize = 50;

impl Page {
    fn from_query(pairs: &[(String, String)]) -> Result<Page, VanError> {
        let top = match param(pairs, "$top") {
            None => DEFAULT_TOP,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(top) if top > MAX_TOP as i64 => {
                    return Err(VanError::invalid(
                        "'$top' must be less than or equal to the maximum result size for this end point: 200",
                        Some("$top".into()),
                    ));
                }
                Ok(top) if top >= 1 => top as usize,
                Ok(_) => {
                    return Err(VanError::invalid(
                        "'$top' must be greater than 0.",
                        Some("$top".into()),
                    ));
                }
                Err(_) => {
                    return Err(VanError::invalid(
                        "'$top' must be an integer.",
                        Some("$top".into()),
                    ));
                }
            },
        };
        let skip = match param(pairs, "$skip") {
            None => 0,
            Some(raw) => match raw.trim().parse::<i64>() {
                Ok(skip) if skip >= 0 => skip as usize,
                _ => {
                    return Err(VanError::invalid(
                        "'$skip' must be an integer greater than or equal to 0.",
                        Some("$skip".into()),
                    ));
                }
            },
        };
        Ok(Page { top, skip })
    }
}

/// The list envelope, with a `nextPageLink` that keeps every filter of the request.
fn list_page<T: Serialize>(
    shared: &Shared,
    path: &str,
    pairs: &[(String, String)],
    items: Vec<T>,
    page: Page,
) -> Response {
    let count = items.len();
    let end = page.skip.saturating_add(page.top);
    let next = (end < count).then(|| {
        let mut link = format!("{}{path}?$top={}&$skip={end}", shared.base_url, page.top);
        for (k, v) in pairs {
            if !k.eq_ignore_ascii_case("$top") && !k.eq_ignore_ascii_case("$skip") {
                let pair: String = form_urlencoded::Serializer::new(String::new())
                    .append_pair(k, v)
                    .finish();
                link.push('&');
                link.push_str(&pair);
            }
        }
        link
    });
    let items: Vec<T> = items.into_iter().skip(page.skip).take(page.top).collect();
    reply::json(
        StatusCode::OK,
        &json!({ "items": items, "nextPageLink": next, "count": count }),
    )
}

/// The filters survey questions and activist codes share.
struct Filters {
    statuses: Option<Vec<String>>,
    name: Option<String>,
    kind: Option<String>,
    cycle: Option<String>,
}

impl Filters {
    fn from_query(pairs: &[(String, String)]) -> Filters {
        let nonempty = |name: &str| {
            param(pairs, name)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        Filters {
            statuses: nonempty("statuses").map(|s| {
                s.split(',')
                    .map(|x| x.trim().to_ascii_lowercase())
                    .collect()
            }),
            name: nonempty("name").map(|n| n.to_lowercase()),
            kind: nonempty("type"),
            cycle: nonempty("cycle"),
        }
    }

    fn accepts(&self, status: Status, name: &str, kind: &str, cycle: Option<u32>) -> bool {
        let status_ok = self
            .statuses
            .as_ref()
            .is_none_or(|s| s.iter().any(|x| x == &status.as_str().to_ascii_lowercase()));
        let name_ok = self
            .name
            .as_ref()
            .is_none_or(|n| name.to_lowercase().contains(n.as_str()));
        let kind_ok = self
            .kind
            .as_ref()
            .is_none_or(|k| k.eq_ignore_ascii_case(kind));
        let cycle_ok = match (&self.cycle, cycle) {
            (Some(wanted), Some(cycle)) => wanted == &cycle.to_string(),
            _ => true,
        };
        status_ok && name_ok && kind_ok && cycle_ok
    }
}

async fn survey_questions(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let page = match Page::from_query(&pairs) {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let filters = Filters::from_query(&pairs);
    let items: Vec<_> = shared
        .lock()
        .data
        .survey_questions
        .iter()
        .filter(|q| filters.accepts(q.status, &q.name, &q.kind, Some(q.cycle)))
        .cloned()
        .collect();
    list_page(&shared, "/surveyQuestions", &pairs, items, page)
}

async fn survey_question(State(shared): State<Arc<Shared>>, Path(raw): Path<String>) -> Response {
    let Some(id) = path_id(&raw) else {
        return reply::iis_not_found();
    };
    let found = shared
        .lock()
        .data
        .survey_questions
        .iter()
        .find(|q| q.survey_question_id == id)
        .cloned();
    match found {
        Some(q) => reply::json(StatusCode::OK, &json!(q)),
        None => VanError::not_found().into_response(),
    }
}

async fn activist_codes(State(shared): State<Arc<Shared>>, RawQuery(raw): RawQuery) -> Response {
    let pairs = query_pairs(raw);
    let page = match Page::from_query(&pairs) {
        Ok(page) => page,
        Err(e) => return e.into_response(),
    };
    let filters = Filters::from_query(&pairs);
    let items: Vec<_> = shared
        .lock()
        .data
        .activist_codes
        .iter()
        .filter(|c| filters.accepts(c.status, &c.name, &c.kind, None))
        .cloned()
        .collect();
    list_page(&shared, "/activistCodes", &pairs, items, page)
}

async fn activist_code(State(shared): State<Arc<Shared>>, Path(raw): Path<String>) -> Response {
    let Some(id) = path_id(&raw) else {
        return reply::iis_not_found();
    };
    let found = shared
        .lock()
        .data
        .activist_codes
        .iter()
        .find(|c| c.activist_code_id == id)
        .cloned();
    match found {
        Some(c) => reply::json(StatusCode::OK, &json!(c)),
        None => VanError::not_found().into_response(),
    }
}

async fn contact_types(State(shared): State<Arc<Shared>>) -> Response {
    let items = json!(shared.lock().data.contact_types);
    reply::json(StatusCode::OK, &items)
}

async fn input_types(State(shared): State<Arc<Shared>>) -> Response {
    let items = json!(shared.lock().data.input_types);
    reply::json(StatusCode::OK, &items)
}

/// Real VAN narrows by `contactTypeId`/`inputTypeId`; the fake serves every code either way.
async fn result_codes(State(shared): State<Arc<Shared>>) -> Response {
    let items = json!(shared.lock().data.result_codes);
    reply::json(StatusCode::OK, &items)
}

async fn post_canvass_responses(
    State(shared): State<Arc<Shared>>,
    Extension(DbMode(mode)): Extension<DbMode>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Response {
    let Some(van_id) = path_id(&raw) else {
        return reply::iis_not_found();
    };
    // 0 is never a person, so it is rejected as a parameter before the lookup could say 404.
    if van_id == 0 {
        return VanError::invalid("'vanId' must be a valid VAN ID.", Some("vanId".into()))
            .into_response();
    }
    let mut state = shared.lock();
    if !state.data.knows_person(van_id, mode) {
        return VanError::not_found().into_response();
    }
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return VanError::invalid("The request body is not valid JSON.", None).into_response();
    };
    if let Err(e) = canvass::validate(&state.data, state.both_codes, &body) {
        return e.into_response();
    }
    state.canvass_posts.push((van_id, body));
    StatusCode::NO_CONTENT.into_response()
}

async fn get_person(
    State(shared): State<Arc<Shared>>,
    Extension(DbMode(mode)): Extension<DbMode>,
    Path(raw): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    let Some(van_id) = path_id(&raw) else {
        return reply::iis_not_found();
    };
    let pairs = query_pairs(query);
    let expand: Vec<String> = param(&pairs, "$expand")
        .map(|e| {
            e.split(',')
                .map(|x| x.trim().to_ascii_lowercase())
                .collect()
        })
        .unwrap_or_default();
    let state = shared.lock();
    let person = match state.data.person_on_file(van_id, mode) {
        Some(person) => person.clone(),
        // People known by id only exist with nothing on file.
        None if state.data.knows_person(van_id, mode) => super::Person {
            van_id,
            first_name: "Sample".into(),
            last_name: "Voter".into(),
            phones: Vec::new(),
            emails: Vec::new(),
        },
        None => return VanError::not_found().into_response(),
    };
    let phones = expand.iter().any(|e| e == "phones").then(|| {
        person
            .phones
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({
                    "phoneId": p.phone_id,
                    "phoneNumber": p.phone_number,
                    "phoneType": "Cell",
                    "isPreferred": i == 0,
                })
            })
            .collect::<Vec<_>>()
    });
    let emails = expand.iter().any(|e| e == "emails").then(|| {
        person
            .emails
            .iter()
            .enumerate()
            .map(|(i, e)| json!({ "type": "P", "email": e, "isPreferred": i == 0 }))
            .collect::<Vec<_>>()
    });
    reply::json(
        StatusCode::OK,
        &json!({
            "vanId": person.van_id,
            "firstName": person.first_name,
            "lastName": person.last_name,
            "phones": phones,
            "emails": emails,
        }),
    )
}

fn digits(s: &str) -> String {
    let d: String = s.chars().filter(char::is_ascii_digit).collect();
    // A leading country code 1 on an 11-digit US number names the same phone.
    match d.strip_prefix('1') {
        Some(rest) if d.len() == 11 => rest.to_string(),
        _ => d,
    }
}

fn strings_at(body: &Value, list: &str, field: &str) -> Vec<String> {
    body.get(list)
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(|i| i.get(field).and_then(Value::as_str))
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

async fn find_person(
    State(shared): State<Arc<Shared>>,
    Extension(DbMode(mode)): Extension<DbMode>,
    body: Bytes,
) -> Response {
    let Ok(body) = serde_json::from_slice::<Value>(&body) else {
        return VanError::invalid("The request body is not valid JSON.", None).into_response();
    };
    let state = shared.lock();
    let van_id = match body.get("vanId") {
        Some(Value::Number(n)) => n.as_u64(),
        Some(Value::String(s)) => s.trim().parse().ok(),
        _ => None,
    };
    let matched = if let Some(van_id) = van_id {
        state.data.knows_person(van_id, mode).then_some(van_id)
    } else {
        let emails: Vec<String> = strings_at(&body, "emails", "email")
            .into_iter()
            .map(|e| e.to_lowercase())
            .collect();
        let phones: Vec<String> = strings_at(&body, "phones", "phoneNumber")
            .iter()
            .map(|p| digits(p))
            .filter(|p| !p.is_empty())
            .collect();
        if emails.is_empty() && phones.is_empty() {
            return VanError::invalid(
                "The match criteria are insufficient: supply a vanId, an email, or a phone number (with firstName and lastName for the best match).",
                None,
            )
            .into_response();
        }
        let name = |field: &str| {
            body.get(field)
                .and_then(Value::as_str)
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_lowercase)
        };
        let (first, last) = (name("firstName"), name("lastName"));
        // The seeded people on file are the VoterFile database's.
        state
            .data
            .people
            .values()
            .filter(|_| mode == 0)
            .find(|p| {
                first
                    .as_ref()
                    .is_none_or(|f| *f == p.first_name.to_lowercase())
                    && last
                        .as_ref()
                        .is_none_or(|l| *l == p.last_name.to_lowercase())
                    && (p.emails.iter().any(|e| emails.contains(&e.to_lowercase()))
                        || p.phones
                            .iter()
                            .any(|ph| phones.contains(&digits(&ph.phone_number))))
            })
            .map(|p| p.van_id)
    };
    match matched {
        Some(van_id) => {
            let mut response = reply::json(
                StatusCode::FOUND,
                &json!({ "vanId": van_id, "status": "Matched" }),
            );
            let location = format!("{}/people/{van_id}", shared.base_url);
            if let Ok(value) = HeaderValue::from_str(&location) {
                response.headers_mut().insert(header::LOCATION, value);
            }
            response
        }
        None => reply::json(
            StatusCode::NOT_FOUND,
            &json!({ "vanId": null, "status": "Unmatched" }),
        ),
    }
}
