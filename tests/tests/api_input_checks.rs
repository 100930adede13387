//! Bad input refused precisely at the API: a CDR column map that cannot work, and Airtable
//! exports that would lose or garble the mapping. Real `configure` handler, config table in
//! moto.
#![allow(clippy::unwrap_used)]

use base64::Engine;
use callsync::entrypoints::configure;
use callsync::entrypoints::http::ApiContext;
use callsync_tests::api::{authed, demo_doc, with_body};
use callsync_tests::harness::{Answer, LocalStack, request};
use serde_json::{Value, json};

async fn context() -> (LocalStack, ApiContext) {
    let stack = LocalStack::up(&[], &[]).await;
    let ctx = stack.api_context();
    (stack, ctx)
}

async fn call(ctx: &ApiContext, event: Value) -> Answer {
    Answer::from(configure::handle(ctx, request(&event)).await)
}

fn put_doc(doc: &Value) -> Value {
    with_body(authed("candidates-put.json"), &doc.to_string())
}

fn put_results(body: &[u8]) -> Value {
    let mut e = authed("candidates-results-put.json");
    e["body"] = base64::engine::general_purpose::STANDARD
        .encode(body)
        .into();
    e["isBase64Encoded"] = true.into();
    e
}

#[tokio::test]
async fn a_cdr_column_map_that_cannot_work_is_refused_when_saved_naming_the_fields() {
    let (_stack, ctx) = context().await;
    let mut doc = demo_doc();
    doc["source"]["cdr"] = json!({"columns": {
        "time_format": "%d-%m-%Y %H:%M:%Q",
        "call_id": "",
        "phone": "Account Number"
    }});
    let a = call(&ctx, put_doc(&doc)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let body = a.json();
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        [
            "source.cdr.columns.call_id",
            "source.cdr.columns.phone",
            "source.cdr.columns.time_format"
        ],
        "{body}"
    );
    let got = call(&ctx, authed("candidates-get.json")).await;
    assert_eq!(got.status, 404, "nothing was stored: {}", got.body);
}

#[tokio::test]
async fn a_header_only_airtable_export_does_not_wipe_the_mapping() {
    let (_stack, ctx) = context().await;
    let a = call(&ctx, put_doc(&demo_doc())).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let before = call(&ctx, authed("candidates-get.json")).await.json()["results"].clone();
    assert!(!before.as_array().unwrap().is_empty());

    let a = call(
        &ctx,
        put_results(b"Full On Screen Result,Display Name,Success,Sync to System\r\n"),
    )
    .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let message = a.json()["errors"][0]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(message.contains("has no result rows"), "{message}");
    let after = call(&ctx, authed("candidates-get.json")).await.json()["results"].clone();
    assert_eq!(after, before);
}

#[tokio::test]
async fn an_excel_windows_1252_export_is_told_to_resave_as_csv_utf8_not_given_a_byte_offset() {
    let (_stack, ctx) = context().await;
    call(&ctx, put_doc(&demo_doc())).await;
    let body = b"Full On Screen Result,Display Name,Success,Canvass Result Code,Sync to System\r\n\
Busy,Busy,,18,checked\r\n\
R\xe9ponse,R\xe9ponse,,18,checked\r\n";
    let a = call(&ctx, put_results(body)).await;
    assert_eq!(a.status, 400, "{}", a.body);
    let error = &a.json()["errors"][0];
    assert_eq!(error["line"], 3, "{error}");
    assert_eq!(error["column"], "Full On Screen Result", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("\"CSV UTF-8 (Comma delimited)\""),
        "{message}"
    );
    assert!(!a.body.contains("byte"), "{}", a.body);
}
