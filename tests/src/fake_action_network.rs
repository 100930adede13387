//! A fake Action Network API v2 (OSDI), as ../shared/reference/action-network-api.md
//! describes the real one, for the `action_network` destination's tests: the
//! `OSDI-API-Token` header (401 without the right key), HAL+JSON envelopes, collections of
//! at most 25 a page under `_embedded["osdi:…"]` with a `next` link even on the last page,
//! the person signup helper (`POST /api/v2/people/`) matching by email and phone — a match
//! is updated, never duplicated; a phone that moves to the posted person, or a phone-only
//! record merged into it — tags of the group added and removed by name, unknown names
//! ignored without a word, subscriptions changed only when a `status` is sent (a new email
//! subscribed, a new number unsubscribed), the limit of 4 requests a second per key (429),
//! writes refused without a JSON `Content-Type`, and errors as `{"error": "…"}` (404 for an
//! unknown person).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, Query};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::fake_van::serve;

/// Requests one key may make in any second.
pub const RATE_PER_SECOND: usize = 4;
/// The most items a collection page holds.
pub const MAX_PER_PAGE: usize = 25;

/// One person as the group holds them.
#[derive(Debug, Clone, PartialEq)]
pub struct Person {
    pub id: String,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// (address, status)
    pub emails: Vec<(String, String)>,
    /// (number, status)
    pub phones: Vec<(String, String)>,
    pub custom_fields: BTreeMap<String, String>,
    pub tags: BTreeSet<String>,
    pub created: String,
    pub modified: String,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Request {
    pub at: Instant,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: Value,
}

#[derive(Debug)]
struct State {
    key: String,
    tags: BTreeSet<String>,
    people: Vec<Person>,
    requests: Vec<Request>,
    /// Answer this status to the next this many person posts.
    fail_next: Option<(usize, u16)>,
    seq: u64,
}

#[derive(Debug, Clone)]
pub struct FakeActionNetwork {
    /// The API entry point: `http://127.0.0.1:{port}/api/v2/`.
    pub base_url: String,
    state: Arc<Mutex<State>>,
}

impl FakeActionNetwork {
    /// A group reached with API key `key` that has `tags`.
    pub async fn start(key: &str, tags: &[&str]) -> Self {
        let state = Arc::new(Mutex::new(State {
            key: key.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            people: Vec::new(),
            requests: Vec::new(),
            fail_next: None,
            seq: 0,
        }));
        let (s1, s2, s3, s4) = (
            Arc::clone(&state),
            Arc::clone(&state),
            Arc::clone(&state),
            Arc::clone(&state),
        );
        let post_people = move |headers: HeaderMap, body: Bytes| {
            let state = Arc::clone(&s1);
            async move { handle(&state, &headers, "POST", "/api/v2/people/", &body, signup) }
        };
        let app = axum::Router::new()
            .route(
                "/api/v2/people/",
                axum::routing::post(post_people.clone()).get({
                    move |headers: HeaderMap, Query(q): Query<BTreeMap<String, String>>| {
                        let state = Arc::clone(&s2);
                        async move {
                            handle(&state, &headers, "GET", "/api/v2/people/", b"", |s, _| {
                                Ok(people_page(s, &q))
                            })
                        }
                    }
                }),
            )
            .route("/api/v2/people", axum::routing::post(post_people))
            .route(
                "/api/v2/people/{id}",
                axum::routing::get(move |headers: HeaderMap, Path(id): Path<String>| {
                    let state = Arc::clone(&s3);
                    async move {
                        let path = format!("/api/v2/people/{id}");
                        handle(&state, &headers, "GET", &path, b"", |s, _| {
                            s.people
                                .iter()
                                .find(|p| p.id == id)
                                .map(|p| (200, person_json(p)))
                                .ok_or((404, format!("Couldn't find person with id = {id}")))
                        })
                    }
                }),
            )
            .route(
                "/api/v2/tags",
                axum::routing::get(
                    move |headers: HeaderMap, Query(q): Query<BTreeMap<String, String>>| {
                        let state = Arc::clone(&s4);
                        async move {
                            handle(&state, &headers, "GET", "/api/v2/tags", b"", |s, _| {
                                Ok(tags_page(s, &q))
                            })
                        }
                    },
                ),
            );
        let (listener, local) = serve::bind(([127, 0, 0, 1], 0).into())
            .await
            .expect("bind a local port");
        serve::spawn(listener, app);
        Self {
            base_url: format!("http://{local}/api/v2/"),
            state,
        }
    }

    /// Everyone in the group.
    pub fn people(&self) -> Vec<Person> {
        self.lock().people.clone()
    }

    /// Every request, in arrival order.
    pub fn requests(&self) -> Vec<Request> {
        self.lock().requests.clone()
    }

    /// The most requests that arrived within any one second.
    pub fn busiest_second(&self) -> usize {
        let at: Vec<Instant> = self.lock().requests.iter().map(|r| r.at).collect();
        let mut most = 0;
        for (i, start) in at.iter().enumerate() {
            let n = at[i..]
                .iter()
                .take_while(|t| t.duration_since(*start) < Duration::from_secs(1))
                .count();
            most = most.max(n);
        }
        most
    }

    /// Answer `status` to the next `n` person posts (an outage).
    pub fn fail_next(&self, n: usize, status: u16) {
        self.lock().fail_next = Some((n, status));
    }

    /// The group's API key becomes `key`: the old one is refused from now on.
    pub fn replace_key(&self, key: &str) {
        self.lock().key = key.to_owned();
    }

    pub fn add_tag(&self, name: &str) {
        self.lock().tags.insert(name.to_owned());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

type Answer = Result<(u16, Value), (u16, String)>;

/// Authenticate, count against the key's limit, answer, record.
fn handle(
    state: &Mutex<State>,
    headers: &HeaderMap,
    method: &str,
    path: &str,
    body: &[u8],
    answer: impl FnOnce(&mut State, &Value) -> Answer,
) -> Response {
    let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
    let now = Instant::now();
    let parsed: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    let token = headers
        .get("OSDI-API-Token")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let recent = s
        .requests
        .iter()
        .filter(|r| r.status != 401 && now.duration_since(r.at) < Duration::from_secs(1))
        .count();
    let result: Answer = if token != s.key {
        Err((401, "API Key invalid or not present".into()))
    } else if recent >= RATE_PER_SECOND {
        Err((
            429,
            "You have exceeded your rate limit of 4 requests per second; retry later".into(),
        ))
    } else if method == "POST"
        && !headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.contains("json"))
    {
        // A write's body is read only when it says it is JSON.
        Err((400, "Content-Type must be application/json".into()))
    } else if method == "POST"
        && let Some((n, status)) = s.fail_next.filter(|(n, _)| *n > 0)
    {
        s.fail_next = Some((n - 1, status));
        Err((status, "Service temporarily unavailable".into()))
    } else {
        answer(&mut s, &parsed)
    };
    let (status, out) = match result {
        Ok((status, v)) => (status, v),
        Err((status, message)) => (status, json!({ "error": message })),
    };
    s.requests.push(Request {
        at: now,
        method: method.to_owned(),
        path: path.to_owned(),
        status,
        body: parsed,
    });
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    (
        code,
        [("content-type", "application/hal+json; charset=utf-8")],
        out.to_string(),
    )
        .into_response()
}

fn now_text() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

fn digits(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// The person signup helper.
fn signup(s: &mut State, body: &Value) -> Answer {
    let Some(person) = body.get("person").and_then(Value::as_object) else {
        return Err((400, "You must specify a person".into()));
    };
    let email = person
        .get("email_addresses")
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("address"))
        .and_then(Value::as_str)
        .map(|a| a.trim().to_lowercase())
        .filter(|a| !a.is_empty());
    let email_status = person
        .get("email_addresses")
        .and_then(|e| e.get(0))
        .and_then(|e| e.get("status"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let phone = person
        .get("phone_numbers")
        .and_then(|p| p.get(0))
        .and_then(|p| p.get("number"))
        .and_then(Value::as_str)
        .map(digits)
        .filter(|p| !p.is_empty());
    let phone_status = person
        .get("phone_numbers")
        .and_then(|p| p.get(0))
        .and_then(|p| p.get("status"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    if email.is_none() && phone.is_none() {
        return Err((
            400,
            "A person must have an email address or a phone number".into(),
        ));
    }
    let by_email = email.as_ref().and_then(|e| {
        s.people
            .iter()
            .position(|p| p.emails.iter().any(|(a, _)| a == e))
    });
    let by_phone = phone.as_ref().and_then(|n| {
        s.people
            .iter()
            .position(|p| p.phones.iter().any(|(x, _)| x == n))
    });
    let now = now_text();
    let at = match (by_email, by_phone) {
        (Some(e), Some(p)) if e != p => {
            let number = phone.clone().unwrap_or_default();
            if s.people[p].emails.is_empty() {
                // A phone-only record is merged into the posted person.
                let gone = s.people.remove(p);
                let e = if p < e { e - 1 } else { e };
                let target = &mut s.people[e];
                for t in gone.tags {
                    target.tags.insert(t);
                }
                for (k, v) in gone.custom_fields {
                    target.custom_fields.entry(k).or_insert(v);
                }
                for ph in gone.phones {
                    if !target.phones.iter().any(|(x, _)| *x == ph.0) {
                        target.phones.push(ph);
                    }
                }
                e
            } else {
                // Both have emails: the phone moves to the posted person.
                let moved = s.people[p].phones.iter().position(|(x, _)| *x == number);
                if let Some(i) = moved {
                    let ph = s.people[p].phones.remove(i);
                    s.people[e].phones.push(ph);
                }
                e
            }
        }
        (Some(i), _) | (None, Some(i)) => i,
        (None, None) => {
            s.seq += 1;
            let id = format!("d91b4b2e-ae0e-4cd3-9ed7-{:012x}", s.seq);
            s.people.push(Person {
                id,
                given_name: None,
                family_name: None,
                emails: Vec::new(),
                phones: Vec::new(),
                custom_fields: BTreeMap::new(),
                tags: BTreeSet::new(),
                created: now.clone(),
                modified: now.clone(),
            });
            s.people.len() - 1
        }
    };
    let tags = s.tags.clone();
    let p = &mut s.people[at];
    p.modified = now;
    for (field, value) in [
        ("given_name", &mut p.given_name),
        ("family_name", &mut p.family_name),
    ] {
        if let Some(v) = person.get(field).and_then(Value::as_str) {
            *value = Some(v.to_owned());
        }
    }
    if let Some(address) = email {
        match p.emails.iter_mut().find(|(a, _)| *a == address) {
            Some((_, status)) => {
                if let Some(new) = email_status {
                    *status = new;
                }
            }
            None => p
                .emails
                .push((address, email_status.unwrap_or_else(|| "subscribed".into()))),
        }
    }
    if let Some(number) = phone {
        match p.phones.iter_mut().find(|(x, _)| *x == number) {
            Some((_, status)) => {
                if let Some(new) = phone_status {
                    *status = new;
                }
            }
            None => p.phones.push((
                number,
                phone_status.unwrap_or_else(|| "unsubscribed".into()),
            )),
        }
    }
    if let Some(fields) = person.get("custom_fields").and_then(Value::as_object) {
        for (k, v) in fields {
            let text = v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            p.custom_fields.insert(k.clone(), text);
        }
    }
    let names = |key: &str| -> Vec<String> {
        body.get(key)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect()
    };
    // Names the group has no tag for are ignored without a word.
    for t in names("add_tags") {
        if tags.contains(&t) {
            p.tags.insert(t);
        }
    }
    for t in names("remove_tags") {
        p.tags.remove(&t);
    }
    Ok((200, person_json(p)))
}

fn person_json(p: &Person) -> Value {
    let href = format!("https://actionnetwork.org/api/v2/people/{}", p.id);
    json!({
        "identifiers": [format!("action_network:{}", p.id)],
        "created_date": p.created,
        "modified_date": p.modified,
        "given_name": p.given_name,
        "family_name": p.family_name,
        "email_addresses": p.emails.iter().enumerate().map(|(i, (a, s))| json!({"primary": i == 0, "address": a, "status": s})).collect::<Vec<_>>(),
        "phone_numbers": p.phones.iter().enumerate().map(|(i, (n, s))| json!({"primary": i == 0, "number": n, "status": s})).collect::<Vec<_>>(),
        "custom_fields": p.custom_fields,
        "_links": {
            "self": {"href": href},
            "osdi:taggings": {"href": format!("{href}/taggings")}
        }
    })
}

fn page_of(q: &BTreeMap<String, String>) -> (usize, usize) {
    let page = q
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per = q
        .get("per_page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(MAX_PER_PAGE)
        .clamp(1, MAX_PER_PAGE);
    (page, per)
}

/// The people collection: no totals, and a `next` link even on the last page.
fn people_page(s: &State, q: &BTreeMap<String, String>) -> (u16, Value) {
    let (page, per) = page_of(q);
    let items: Vec<Value> = s
        .people
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .map(person_json)
        .collect();
    (
        200,
        json!({
            "per_page": per,
            "page": page,
            "_links": {
                "next": {"href": format!("https://actionnetwork.org/api/v2/people?page={}", page + 1)},
                "self": {"href": format!("https://actionnetwork.org/api/v2/people?page={page}")}
            },
            "_embedded": {"osdi:people": items}
        }),
    )
}

/// The tags collection (this one carries its totals too).
fn tags_page(s: &State, q: &BTreeMap<String, String>) -> (u16, Value) {
    let (page, per) = page_of(q);
    let items: Vec<Value> = s
        .tags
        .iter()
        .skip((page - 1) * per)
        .take(per)
        .enumerate()
        .map(|(i, name)| {
            json!({
                "identifiers": [format!("action_network:tag-{}", (page - 1) * per + i)],
                "name": name,
                "_links": {"self": {"href": format!("https://actionnetwork.org/api/v2/tags/tag-{}", (page - 1) * per + i)}}
            })
        })
        .collect();
    (
        200,
        json!({
            "total_pages": s.tags.len().div_ceil(per),
            "per_page": per,
            "page": page,
            "total_records": s.tags.len(),
            "_links": {
                "next": {"href": format!("https://actionnetwork.org/api/v2/tags?page={}", page + 1)},
                "self": {"href": format!("https://actionnetwork.org/api/v2/tags?page={page}")}
            },
            "_embedded": {"osdi:tags": items}
        }),
    )
}
