//! The HTTP API's limits and its envelope: outside numbers never overflow, oversized bodies
//! and documents are refused before anything is written, a JSON body is one JSON value,
//! and no mutation of a sample event makes a handler panic or fail with a 5xx. Real
//! `configure`, `validate` and `status` handlers, config table and secrets in moto, fake
//! VAN and LiveVox over HTTP.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use callsync::entrypoints::http::{MAX_CSV_BODY, MAX_JSON_BODY, MAX_RESULT_ROWS};
use callsync::entrypoints::{configure, status, validate};
use callsync_tests::api::{ApiWorld, authed, demo_doc, with_body};
use callsync_tests::harness::{Answer, event};
use serde_json::{Value, json};

async fn world() -> ApiWorld {
    ApiWorld::start().await
}

/// How many result rows the config table's item for `demo` holds, read straight from
/// DynamoDB (`None`: no item).
async fn stored_rows(w: &ApiWorld) -> Option<usize> {
    use aws_sdk_dynamodb::types::AttributeValue;
    let table = &w.stack.functions["ConfigureFunction"]["CALLSYNC_CONFIG_TABLE"];
    let item = aws_sdk_dynamodb::Client::new(&w.stack.aws)
        .get_item()
        .table_name(table)
        .key("slug", AttributeValue::S("demo".into()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item?;
    let Some(AttributeValue::M(doc)) = item.get("document") else {
        panic!("the item holds a document: {item:?}");
    };
    match doc.get("results") {
        Some(AttributeValue::L(rows)) => Some(rows.len()),
        _ => Some(0),
    }
}

fn with_binary_body(mut event: Value, body: &[u8]) -> Value {
    event["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    event["isBase64Encoded"] = true.into();
    event
}

fn status_query(params: &[(&str, &str)]) -> Value {
    let mut e = authed("status-get.json");
    let raw: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
    e["rawQueryString"] = raw.join("&").into();
    e["queryStringParameters"] = params
        .iter()
        .map(|(k, v)| ((*k).to_owned(), Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into();
    e
}

/// An Airtable export of `rows` contact rows, each answering `questions` survey questions.
fn airtable_export(rows: usize, questions: usize) -> String {
    let mut csv = String::from(
        "Full On Screen Result,Display Name,Success,Canvass Result Code,Tags,Sync to System,Include in CSV",
    );
    for q in 1..=questions {
        csv.push_str(&format!(",Q{q}"));
    }
    csv.push('\n');
    for r in 1..=rows {
        csv.push_str(&format!("Result {r},Support {r},checked,,,checked,"));
        for q in 1..=questions {
            csv.push_str(&format!(",\"{q},1\""));
        }
        csv.push('\n');
    }
    csv
}

fn put_results(csv: &str) -> Value {
    with_body(authed("candidates-results-put.json"), csv)
}

fn assert_error(a: &Answer, status: u16, code: &str) -> Value {
    assert_eq!(a.status, status, "{}", a.body);
    let body = a.json();
    assert_eq!(body["error"], code, "{body:#}");
    assert!(body["message"].is_string(), "{body:#}");
    body
}

#[tokio::test]
async fn errors_from_past_the_end_or_at_the_largest_number_is_an_empty_page() {
    let w = world().await;
    w.seed().await;
    for from in ["18446744073709551615", "99999999999999999999999", "100"] {
        let a = w
            .status(status_query(&[
                ("date", "2026-11-03"),
                ("errors_from", from),
            ]))
            .await;
        assert_eq!(a.status, 200, "errors_from={from}: {}", a.body);
        let body = a.json();
        assert_eq!(body["errors"], json!([]), "errors_from={from}");
        assert_eq!(body["errors_next"], Value::Null, "errors_from={from}");
    }
}

#[tokio::test]
async fn a_day_with_more_errors_than_a_page_is_counted_whole_and_listed_page_by_page() {
    use callsync::ledger::{CallKey, CallRecord, DayKey};
    let w = world().await;
    w.seed().await;
    let day = DayKey {
        candidate: callsync::values::CandidateSlug::parse("demo").unwrap(),
        date: jiff::civil::date(2026, 11, 3),
    };
    let errors = status::ERRORS_PER_PAGE * 2 + 34;
    for i in 0..errors {
        let key = CallKey {
            day: day.clone(),
            call_id: callsync::call::CallId(format!("row:inbox/demo/a.csv:{:04}", i + 2).into()),
        };
        let record = CallRecord::bad_row(key, format!("bad row {i}"), jiff::Timestamp::UNIX_EPOCH);
        assert!(w.svc.ledger.insert(&record).await.unwrap());
    }
    let mut seen = Vec::new();
    let mut from = Some(0_u64);
    while let Some(at) = from {
        let a = w
            .status(status_query(&[
                ("date", "2026-11-03"),
                ("errors_from", &at.to_string()),
            ]))
            .await;
        assert_eq!(a.status, 200, "{}", a.body);
        let body = a.json();
        assert_eq!(body["total"], errors, "{body:#}");
        assert_eq!(body["errors_total"], errors);
        assert_eq!(body["by_state"]["unattempted_error"], errors);
        let page = body["errors"].as_array().unwrap();
        assert!(page.len() <= status::ERRORS_PER_PAGE);
        seen.extend(
            page.iter()
                .map(|e| e["call_id"].as_str().unwrap().to_owned()),
        );
        from = body["errors_next"].as_u64();
    }
    assert_eq!(seen.len(), errors, "every error listed once");
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "in call-id order, none twice");
}

#[tokio::test]
async fn errors_from_that_is_not_a_number_is_refused_naming_the_parameter() {
    let w = world().await;
    w.seed().await;
    for from in ["-1", "ten", "1.5", ""] {
        let a = w
            .status(status_query(&[
                ("date", "2026-11-03"),
                ("errors_from", from),
            ]))
            .await;
        let body = assert_error(&a, 400, "bad_errors_from");
        assert_eq!(body["parameter"], "errors_from");
        assert!(
            body["message"].as_str().unwrap().contains("errors_from="),
            "{body:#}"
        );
    }
}

#[tokio::test]
async fn a_candidate_document_over_the_body_limit_is_refused_with_413_and_nothing_is_stored() {
    let w = world().await;
    let mut doc = demo_doc();
    doc["display_name"] = "x".repeat(MAX_JSON_BODY).into();
    let a = w
        .configure(with_body(authed("candidates-put.json"), &doc.to_string()))
        .await;
    let body = assert_error(&a, 413, "body_too_large");
    assert_eq!(body["limit"], MAX_JSON_BODY);
    assert!(stored_rows(&w).await.is_none(), "nothing was stored");

    // The same for a draft sent to validate: refused before anything connects.
    let a = w
        .validate(with_body(authed("validate-post.json"), &doc.to_string()))
        .await;
    assert_error(&a, 413, "body_too_large");
}

#[tokio::test]
async fn more_result_rows_than_the_cap_are_refused_naming_it_and_nothing_is_stored() {
    let w = world().await;
    let mut doc = demo_doc();
    doc["results"] = (0..=MAX_RESULT_ROWS)
        .map(|i| json!({"result": format!("r{i}"), "display_name": "d", "success": false}))
        .collect::<Vec<_>>()
        .into();
    let text = doc.to_string();
    assert!(text.len() < MAX_JSON_BODY, "the cap, not the body limit");
    let a = w
        .configure(with_body(authed("candidates-put.json"), &text))
        .await;
    let body = assert_error(&a, 400, "too_many_results");
    assert_eq!(body["rows"], MAX_RESULT_ROWS + 1);
    assert_eq!(body["limit"], MAX_RESULT_ROWS);
    assert!(
        body["message"].as_str().unwrap().contains("at most 2000"),
        "{body:#}"
    );
    assert!(stored_rows(&w).await.is_none(), "nothing was stored");

    let a = w
        .validate(with_body(authed("validate-post.json"), &text))
        .await;
    assert_error(&a, 400, "too_many_results");
}

#[tokio::test]
async fn an_export_whose_document_would_not_fit_in_a_dynamodb_item_is_refused_naming_both_sizes() {
    let w = world().await;
    w.seed().await;
    // A big export that fits is stored: the measure does not refuse what DynamoDB takes.
    let fits = airtable_export(300, 20);
    let a = w.configure(put_results(&fits)).await;
    assert_eq!(a.status, 200, "{}", &a.body[..a.body.len().min(500)]);
    assert_eq!(stored_rows(&w).await, Some(300));

    let csv = airtable_export(1_000, 20);
    assert!(
        csv.len() < MAX_CSV_BODY,
        "the item limit, not the body limit"
    );
    let a = w.configure(put_results(&csv)).await;
    let body = assert_error(&a, 400, "document_too_large");
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("KB stored"), "{message}");
    assert!(message.contains("at most 400 KB"), "{message}");
    assert!(
        body["stored_bytes"].as_u64().unwrap() > 400 * 1024,
        "{body:#}"
    );
    assert_eq!(
        stored_rows(&w).await,
        Some(300),
        "the stored mapping is untouched"
    );
}

#[tokio::test]
async fn an_airtable_export_over_the_body_limit_is_refused_with_413() {
    let w = world().await;
    w.seed().await;
    let csv = airtable_export(2_000, 30);
    assert!(csv.len() > MAX_CSV_BODY);
    let a = w.configure(put_results(&csv)).await;
    let body = assert_error(&a, 413, "body_too_large");
    assert_eq!(body["limit"], MAX_CSV_BODY);
    assert_eq!(stored_rows(&w).await, Some(6), "untouched");
}

#[tokio::test]
async fn every_json_route_refuses_bytes_after_the_document_naming_line_and_column() {
    let w = world().await;
    w.seed().await;
    let retry = event("retry-post.json")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let runs = event("runs-post-dry-run.json")["body"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut draft = demo_doc();
    draft["display_name"] = "Changed".into();
    let draft = draft.to_string();
    for tail in [" garbage", "{}", "\n\n]"] {
        let answers = [
            (
                "PUT /candidates",
                w.configure(with_body(
                    authed("candidates-put.json"),
                    &format!("{draft}{tail}"),
                ))
                .await,
            ),
            (
                "POST /validate",
                w.validate(with_body(
                    authed("validate-post.json"),
                    &format!("{draft}{tail}"),
                ))
                .await,
            ),
            (
                "POST /retry",
                w.status(with_body(
                    authed("retry-post.json"),
                    &format!("{retry}{tail}"),
                ))
                .await,
            ),
            (
                "POST /runs",
                w.status(with_body(
                    authed("runs-post-dry-run.json"),
                    &format!("{runs}{tail}"),
                ))
                .await,
            ),
        ];
        for (route, a) in answers {
            assert_eq!(a.status, 400, "{route} {tail:?}: {}", a.body);
            let body = a.json();
            assert_eq!(body["error"], "malformed_json", "{route} {tail:?}");
            assert!(body["line"].as_u64().unwrap() >= 1, "{route} {body:#}");
            assert!(body["column"].as_u64().unwrap() >= 1, "{route} {body:#}");
        }
    }
    let stored = w.configure(authed("candidates-get.json")).await.json();
    assert_eq!(
        stored["display_name"], "Demo for Congress",
        "nothing was stored"
    );
}

#[tokio::test]
async fn a_json_body_that_is_not_utf8_is_refused_saying_it_must_be_utf8_json() {
    let w = world().await;
    w.seed().await;
    let body = b"{\"candidate\": \"demo\xff\", \"date\": \"2026-11-03\"}";
    for a in [
        w.status(with_binary_body(authed("retry-post.json"), body))
            .await,
        w.status(with_binary_body(authed("runs-post.json"), body))
            .await,
        w.validate(with_binary_body(authed("validate-post.json"), body))
            .await,
        w.configure(with_binary_body(authed("candidates-put.json"), body))
            .await,
    ] {
        let err = assert_error(&a, 400, "bad_encoding");
        assert!(
            err["message"].as_str().unwrap().contains("UTF-8 JSON"),
            "{err:#}"
        );
        assert_eq!(err["offset"], 19);
    }
    // A base64-encoded body that is good JSON is read like a text one.
    let a = w
        .status(with_binary_body(
            authed("runs-post-dry-run.json"),
            br#"{"candidate": "demo", "date": "2026-11-03", "dry_run": true}"#,
        ))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// Which handler serves an event from events/.
#[derive(Debug, Clone, Copy)]
enum Handler {
    Configure,
    Validate,
    Status,
}

const FUZZ_EVENTS: &[(&str, Handler)] = &[
    ("candidates-get.json", Handler::Configure),
    ("candidates-list.json", Handler::Configure),
    ("candidates-put.json", Handler::Configure),
    ("candidates-put-destinations.json", Handler::Configure),
    ("candidates-results-put.json", Handler::Configure),
    ("configure-get.json", Handler::Configure),
    ("configure-get-text.json", Handler::Configure),
    ("validate-get.json", Handler::Validate),
    ("validate-get-text.json", Handler::Validate),
    ("validate-post.json", Handler::Validate),
    ("status-get.json", Handler::Status),
    ("retry-post.json", Handler::Status),
    ("runs-post.json", Handler::Status),
    ("runs-post-dry-run.json", Handler::Status),
];

const ODD_TEXT: &[&str] = &[
    "",
    " ",
    "18446744073709551615",
    "99999999999999999999999999999",
    "-1",
    "0",
    "1e308",
    "NaN",
    "2026-02-30",
    "2026-11-03",
    "%FF",
    "..",
    "text",
    "\u{0}",
    "é漢字🙂",
    "demo",
    "DEMO",
];

fn pick<'a>(rng: &mut fastrand::Rng, from: &'a [&'a str]) -> &'a str {
    from[rng.usize(..from.len())]
}

fn random_bytes(rng: &mut fastrand::Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.u8(..)).collect()
}

/// One random change to an event; what it did, for the failure message.
fn mutate(rng: &mut fastrand::Rng, e: &mut Value) -> String {
    let body = e["body"].as_str().unwrap_or_default().to_owned();
    match rng.u8(..12) {
        0 => {
            e.as_object_mut().unwrap().remove("pathParameters");
            "no path parameters".into()
        }
        1 => {
            let segments: Vec<&str> = (0..rng.usize(0..5))
                .map(|_| {
                    pick(
                        rng,
                        &[
                            "status",
                            "candidates",
                            "results",
                            "configure",
                            "validate",
                            "retry",
                            "runs",
                            "demo",
                            "",
                            "%FF",
                            "é",
                        ],
                    )
                })
                .collect();
            let path = format!("/{}", segments.join("/"));
            e["rawPath"] = path.clone().into();
            e["requestContext"]["http"]["path"] = path.clone().into();
            format!("path {path:?}")
        }
        2 => {
            let name = pick(rng, &["errors_from", "date", "format", "candidate"]);
            let value = pick(rng, ODD_TEXT);
            let encoded: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            e["rawQueryString"] = format!("{name}={encoded}").into();
            e["queryStringParameters"] = json!({ name: value });
            format!("query {name}={value:?}")
        }
        3 if !body.is_empty() => {
            let cut = rng.usize(..=body.len());
            let cut = (0..=cut)
                .rev()
                .find(|i| body.is_char_boundary(*i))
                .unwrap_or(0);
            e["body"] = body[..cut].into();
            format!("body cut at {cut}")
        }
        4 => {
            let tail = pick(rng, &[" garbage", "{}", "]", "\n{\"a\":1}", "\u{0}"]);
            e["body"] = format!("{body}{tail}").into();
            format!("body + {tail:?}")
        }
        5 => {
            let mut bytes = body.into_bytes();
            for _ in 0..rng.usize(1..8) {
                let at = rng.usize(..=bytes.len());
                bytes.insert(at, rng.u8(..));
            }
            e["body"] = base64::engine::general_purpose::STANDARD
                .encode(&bytes)
                .into();
            e["isBase64Encoded"] = true.into();
            "random bytes in a base64 body".into()
        }
        6 => {
            let len = rng.usize(..64);
            let bytes = random_bytes(rng, len);
            e["body"] = base64::engine::general_purpose::STANDARD
                .encode(&bytes)
                .into();
            e["isBase64Encoded"] = true.into();
            format!("{len} random bytes, base64")
        }
        7 => {
            let n = MAX_JSON_BODY + rng.usize(1..1024);
            e["body"] = format!("{body}{}", " ".repeat(n)).into();
            format!("body + {n} spaces")
        }
        8 => {
            let name = pick(rng, &["x-big", "content-type", "cookie", "accept"]);
            e["headers"][name] = "a".repeat(rng.usize(1..64 * 1024)).into();
            format!("huge {name} header")
        }
        9 => {
            let value = pick(
                rng,
                &[
                    "text/csv",
                    "application/json",
                    "",
                    "text/csv; charset=utf-16",
                ],
            );
            e["headers"]["content-type"] = value.into();
            format!("content-type {value:?}")
        }
        10 => {
            let method = pick(rng, &["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD"]);
            e["requestContext"]["http"]["method"] = method.into();
            format!("method {method}")
        }
        _ => {
            let auth = pick(
                rng,
                &["Bearer", "Bearer x", "bearer test-token-0123456789", ""],
            );
            e["headers"]["authorization"] = auth.into();
            format!("authorization {auth:?}")
        }
    }
}

#[tokio::test]
async fn mutated_api_events_never_panic_and_answer_json_with_a_2xx_or_4xx() {
    let w = world().await;
    w.seed().await;
    let mut rng = fastrand::Rng::with_seed(0x00ca_115e);
    let started = std::time::Instant::now();
    let mut served = 0;
    for i in 0..300 {
        let (name, handler) = FUZZ_EVENTS[rng.usize(..FUZZ_EVENTS.len())];
        let mut e = authed(name);
        let changes: Vec<String> = (0..rng.usize(1..4))
            .map(|_| mutate(&mut rng, &mut e))
            .collect();
        // API Gateway's base64 is always valid (lambda_http panics on any other); keep a
        // flagged body decodable after later changes appended text to it.
        let b64 = base64::engine::general_purpose::STANDARD;
        if e["isBase64Encoded"] == true {
            let body = e["body"].as_str().unwrap_or_default().to_owned();
            if b64.decode(&body).is_err() {
                e["body"] = b64.encode(body).into();
            }
        }
        // What the Lambda runtime cannot turn into a request never reaches a handler.
        let Ok(req) = lambda_http::request::from_str(&e.to_string()) else {
            continue;
        };
        let (ctx, svc) = (w.ctx.clone(), w.svc.clone());
        let answer = tokio::spawn(async move {
            let resp = match handler {
                Handler::Configure => configure::handle(&ctx, req).await,
                Handler::Validate => validate::handle(&ctx, req).await,
                Handler::Status => status::handle(&ctx, &svc, req).await,
            };
            Answer::from(resp)
        })
        .await
        .unwrap_or_else(|e| panic!("#{i} {name} {changes:?}: the handler panicked: {e}"));
        served += 1;
        let what = format!(
            "#{i} {name} {changes:?} → {} {}",
            answer.status,
            &answer.body[..answer.body.len().min(300)]
        );
        assert!(
            (200..300).contains(&answer.status)
                || (400..500).contains(&answer.status)
                || answer.status == 503,
            "{what}"
        );
        if answer.content_type.starts_with("text/plain") {
            assert!((200..300).contains(&answer.status), "{what}");
            continue;
        }
        assert_eq!(answer.content_type, "application/json", "{what}");
        let body: Value =
            serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("{what}: {e}"));
        if answer.status >= 400 {
            assert!(
                body["error"].is_string() && body["message"].is_string(),
                "{what}"
            );
        }
    }
    assert!(served > 250, "most events reach a handler: {served}");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(60),
        "the fuzz stays quick: {:?}",
        started.elapsed()
    );
}
