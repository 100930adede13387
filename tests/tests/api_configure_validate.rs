//! `configure` and `validate` end to end: HTTP API events from events/ → the real handlers
//! → DynamoDB and Secrets Manager in moto (stack built from the template) → fake VAN and
//! fake LiveVox over HTTP.
#![allow(clippy::unwrap_used)]

use callsync_tests::api::{ApiWorld, authed, demo_doc, with_body};
use callsync_tests::fake_van::VanData;
use callsync_tests::harness::{event, for_candidate, with_token};
use serde_json::{Value, json};

async fn world() -> ApiWorld {
    ApiWorld::start().await
}

#[tokio::test]
async fn a_stored_candidate_reads_back_with_defaults_filled_in() {
    let w = world().await;
    w.seed().await;
    let got = w.configure(authed("candidates-get.json")).await;
    assert_eq!(got.status, 200, "{}", got.body);
    let doc = got.json();
    assert_eq!(doc["slug"], "demo");
    assert_eq!(doc["active"], true, "active defaults to true");
    assert_eq!(
        doc["account_pattern"],
        callsync::call::AccountPattern::DEFAULT
    );
    assert_eq!(doc["results"].as_array().unwrap().len(), 6);

    // It really is in the template's config table.
    let table = &w.stack.functions["ConfigureFunction"]["CALLSYNC_CONFIG_TABLE"];
    let item = aws_sdk_dynamodb::Client::new(&w.stack.aws)
        .get_item()
        .table_name(table)
        .key(
            "slug",
            aws_sdk_dynamodb::types::AttributeValue::S("demo".into()),
        )
        .send()
        .await
        .unwrap()
        .item
        .expect("stored in DynamoDB");
    assert!(item.contains_key("document") && item.contains_key("updated_at"));

    let list = w.configure(authed("candidates-list.json")).await;
    assert_eq!(list.json()["candidates"], json!(["demo"]));
}

#[tokio::test]
async fn an_invalid_document_is_refused_with_every_field_error_and_nothing_is_stored() {
    let w = world().await;
    let mut doc = demo_doc();
    doc["time_zone"] = "Eastern".into();
    doc["results"][0]["result_code_id"] = 14.into();
    doc["results"][2]["result_code_id"] = Value::Null;
    let a = w
        .configure(with_body(authed("candidates-put.json"), &doc.to_string()))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let body = a.json();
    assert_eq!(body["error"], "invalid_document");
    let fields: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec![
            "time_zone",
            "results[0].result_code_id",
            "results[2].result_code_id"
        ]
    );
    let got = w.configure(authed("candidates-get.json")).await;
    assert_eq!(got.status, 404, "nothing was stored: {}", got.body);
}

#[tokio::test]
async fn malformed_json_is_refused_naming_line_and_column() {
    let w = world().await;
    let a = w
        .configure(with_body(
            authed("candidates-put.json"),
            "{\n  \"slug\": \"demo\",\n  \"sync_hour\": \"three\"\n}",
        ))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let body = a.json();
    assert_eq!(body["error"], "malformed_json");
    assert_eq!(body["line"], 3);
    assert_eq!(body["field"], "sync_hour");
    assert!(
        body["message"].as_str().unwrap().contains("line 3 column"),
        "{body}"
    );

    let a = w
        .validate(with_body(authed("validate-post.json"), "{\"slug\": "))
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"], "malformed_json");
}

#[tokio::test]
async fn every_route_refuses_a_missing_or_wrong_token() {
    let w = world().await;
    w.seed().await;
    for name in [
        "configure-get.json",
        "candidates-get.json",
        "candidates-list.json",
        "candidates-put.json",
        "candidates-results-put.json",
    ] {
        for token in [None, Some("wrong-token"), Some("test-token-012345678")] {
            let a = w.configure(with_token(event(name), token)).await;
            assert_eq!(a.status, 401, "{name} with {token:?}: {}", a.body);
            assert_eq!(a.json()["error"], "unauthorized");
        }
    }
    for name in ["validate-get.json", "validate-post.json"] {
        let a = w.validate(with_token(event(name), Some("nope"))).await;
        assert_eq!(a.status, 401, "{name}");
    }
    let a = w.configure(event("unauthorized.json")).await;
    assert_eq!(a.status, 401);
    assert_eq!(w.van.requests().len(), 0, "nothing reached VAN");
    // The stored document was not replaced by the unauthorised PUT.
    assert_eq!(
        w.configure(authed("candidates-get.json")).await.json()["display_name"],
        "Demo for Congress"
    );
}

#[tokio::test]
async fn an_unknown_candidate_is_404_naming_the_known_ones() {
    let w = world().await;
    w.seed().await;
    for a in [
        w.configure(for_candidate(authed("configure-get.json"), "nobody"))
            .await,
        w.configure(for_candidate(authed("candidates-get.json"), "nobody"))
            .await,
        w.validate(for_candidate(authed("validate-get.json"), "nobody"))
            .await,
    ] {
        assert_eq!(a.status, 404, "{}", a.body);
        let body = a.json();
        assert_eq!(body["error"], "unknown_candidate");
        assert_eq!(body["known"], json!(["demo"]));
        assert!(body["message"].as_str().unwrap().contains("demo"));
    }
}

#[tokio::test]
async fn configure_lists_what_van_and_livevox_offer() {
    let w = world().await;
    w.seed().await;
    let a = w.configure(authed("configure-get.json")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let body = a.json();
    let van = &body["van"];
    let data = VanData::demo();
    assert_eq!(
        van["survey_questions"].as_array().unwrap().len(),
        data.survey_questions.len(),
        "active and inactive questions, every page"
    );
    assert_eq!(
        van["activist_codes"].as_array().unwrap().len(),
        data.activist_codes.len()
    );
    assert_eq!(
        van["result_codes"].as_array().unwrap().len(),
        data.result_codes.len()
    );
    let q = &van["survey_questions"][0];
    assert_eq!(q["surveyQuestionId"], 2300);
    assert_eq!(q["responses"][0]["name"], "Strong support");
    assert!(
        van["contact_types"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "Phone")
    );
    let lv = &van["livevox"];
    assert_eq!(
        lv["services"].as_array().unwrap().len(),
        1,
        "only the candidate's service"
    );
    assert_eq!(lv["services"][0]["serviceId"], 1001);
    assert!(
        lv["term_codes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "Agent Cust 1")
    );
    // The VAN requests used the candidate's key in VoterFile mode.
    let reqs = w.van.requests();
    assert!(!reqs.is_empty());
    assert!(
        reqs.iter()
            .all(|r| r.db_mode.as_deref() == Some("0") && r.status == 200)
    );
    assert_eq!(w.livevox.logins(), 1);

    let text = w.configure(authed("configure-get-text.json")).await;
    assert_eq!(text.status, 200);
    assert!(text.content_type.starts_with("text/plain"));
    assert!(text.body.contains("Survey questions"), "{}", text.body);
    assert!(
        text.body.contains("2300  Support for Smith  [Active]"),
        "{}",
        text.body
    );
    assert!(text.body.contains("LiveVox term codes"));
}

#[tokio::test]
async fn configure_reports_van_refusing_the_key_as_a_bad_gateway_with_vans_answer() {
    let w = world().await;
    let mut doc = demo_doc();
    doc["van"]["database_mode"] = "my_campaign".into();
    doc["van"]["other_databases"] = json!([]);
    let put = w
        .configure(with_body(authed("candidates-put.json"), &doc.to_string()))
        .await;
    assert_eq!(put.status, 200);
    let a = w.configure(authed("configure-get.json")).await;
    assert_eq!(a.status, 502, "{}", a.body);
    let body = a.json();
    assert_eq!(body["error"], "van_error");
    assert_eq!(body["van"]["errors"][0]["text"], "Invalid Database Mode");
}

#[tokio::test]
async fn an_airtable_export_replaces_the_mapping() {
    let w = world().await;
    let mut doc = demo_doc();
    doc["results"] = json!([]);
    w.configure(with_body(authed("candidates-put.json"), &doc.to_string()))
        .await;
    let a = w.configure(authed("candidates-results-put.json")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let stored = w.configure(authed("candidates-get.json")).await.json();
    let results = stored["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert_eq!(
        results[0],
        json!({"result": "Agent Cust 1", "display_name": "Strong support", "success": true,
               "survey_responses": [{"question_id": 2300, "response_id": 9100}],
               "activist_codes": [4400], "sync": true, "csv": false, "priority": 0})
    );

    // Bad cells: every one reported, the stored mapping untouched.
    let bad = "Full On Screen Result,Display Name,Success,Canvass Result Code,Tags,Sync to System,Include in CSV,Q1\n\
               Agent Cust 1,Strong support,perhaps,,,checked,,\"2300,9100\"\n\
               Busy,Busy,,eighteen,,,checked,\n";
    let a = w
        .configure(with_body(authed("candidates-results-put.json"), bad))
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let body = a.json();
    assert_eq!(body["error"], "invalid_csv");
    assert_eq!(
        body["errors"],
        json!([
            {"line": 2, "column": "Success", "value": "perhaps",
             "message": "must be a checkbox: checked/true/yes/1, or empty/false/no/0"},
            {"line": 3, "column": "Canvass Result Code", "value": "eighteen",
             "message": "must be a VAN result code id such as 18"}
        ])
    );
    // Cells that parse but make an invalid mapping are refused too (non-success without a code).
    let unsound = "Full On Screen Result,Display Name,Success,Canvass Result Code,Sync to System\nBusy,Busy,,,checked\n";
    let a = w
        .configure(with_body(authed("candidates-results-put.json"), unsound))
        .await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["errors"][0]["field"], "results[0].result_code_id");
    let stored_after = w.configure(authed("candidates-get.json")).await.json();
    assert_eq!(stored_after["results"], stored["results"]);

    let mut json_type = authed("candidates-results-put.json");
    json_type["headers"]["content-type"] = "application/json".into();
    assert_eq!(w.configure(json_type).await.status, 415);
}

#[tokio::test]
async fn the_demo_candidate_validates_and_unmapped_term_codes_are_warnings() {
    let w = world().await;
    w.seed().await;
    let a = w.validate(authed("validate-get.json")).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let report = a.json();
    assert_eq!(report["ok"], true, "{report:#}");
    assert_eq!(report["errors"], json!([]));
    let warned: Vec<&str> = report["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["result"].as_str().unwrap())
        .collect();
    assert!(warned.contains(&"Agent Cust 4"), "{warned:?}");
    assert!(
        warned.contains(&"Answering Machine (Hung Up)"),
        "{warned:?}"
    );
    assert!(
        !warned.contains(&"Agent Cust 1"),
        "mapped codes are not warned about"
    );
    assert!(!warned.contains(&"No Answer"));

    let text = w.validate(authed("validate-get-text.json")).await;
    assert!(
        text.body.contains("OK     Agent Cust 1 → Strong support"),
        "{}",
        text.body
    );
    assert!(text.body.contains("VALID: 0 error(s)"), "{}", text.body);
}

#[tokio::test]
async fn a_draft_with_ids_van_does_not_know_is_reported_row_by_row() {
    let w = world().await;
    let mut doc = demo_doc();
    doc["van"]["contact_type"] = "Carrier pigeon".into();
    doc["results"][0]["activist_codes"] = json!([4417]); // "Volunteer 2024": inactive
    doc["results"][1]["survey_responses"] = json!([{"question_id": 2300, "response_id": 9150}]);
    doc["results"][2]["result_code_id"] = 999.into();
    doc["results"][3]["result_code_id"] = Value::Null; // non-success, exported, no code
    doc["results"].as_array_mut().unwrap().push(json!(
        {"result": "Agent Cust 5", "display_name": "Withdrawn", "success": true,
         "survey_responses": [{"question_id": 2317, "response_id": 9440}], "sync": true}));
    doc["results"].as_array_mut().unwrap().push(json!(
        {"result": "Agent Cust 6", "display_name": "Ghost", "success": true,
         "survey_responses": [{"question_id": 7777, "response_id": 1}], "sync": true}));
    let a = w
        .validate(with_body(authed("validate-post.json"), &doc.to_string()))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let report = a.json();
    assert_eq!(report["ok"], false);
    let errors: Vec<(Option<&str>, &str)> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["result"].as_str(), e["field"].as_str().unwrap()))
        .collect();
    assert_eq!(
        errors,
        vec![
            (Some("Busy"), "results[3].result_code_id"),
            (None, "van.contact_type"),
            (Some("Agent Cust 1"), "results[0].activist_codes[0]"),
            (
                Some("Agent Cust 2"),
                "results[1].survey_responses[0].response_id"
            ),
            (Some("Agent Cust 3"), "results[2].result_code_id"),
            (
                Some("Agent Cust 5"),
                "results[6].survey_responses[0].question_id"
            ),
            (
                Some("Agent Cust 6"),
                "results[7].survey_responses[0].question_id"
            ),
        ],
        "{report:#}"
    );
    let messages = report["errors"].to_string();
    assert!(messages.contains("Inactive"), "{messages}");
    assert!(
        messages.contains("9100 Strong support"),
        "offered responses are listed: {messages}"
    );
    // Nothing was stored by validating a draft.
    assert_eq!(w.configure(authed("candidates-get.json")).await.status, 404);
    assert_eq!(w.van.canvass_posts().len(), 0);
}

#[tokio::test]
async fn a_key_used_in_the_wrong_database_mode_is_a_finding_about_the_document() {
    let w = world().await;
    let mut doc = demo_doc();
    doc["van"]["database_mode"] = "my_campaign".into();
    doc["van"]["other_databases"] = json!([]);
    let a = w
        .validate(with_body(authed("validate-post.json"), &doc.to_string()))
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    let report = a.json();
    assert_eq!(report["ok"], false);
    assert_eq!(report["errors"][0]["field"], "van.database_mode");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Invalid Database Mode"), "{message}");
    assert!(
        !message.contains("demo-van-key"),
        "the key never appears: {message}"
    );
}

#[tokio::test]
async fn a_missing_van_secret_is_a_finding_naming_the_secret() {
    let w = world().await;
    let mut doc = demo_doc();
    doc["van"]["secret_name"] = "callsync/demo/nothing-here".into();
    let a = w
        .validate(with_body(authed("validate-post.json"), &doc.to_string()))
        .await;
    let report = a.json();
    assert_eq!(report["ok"], false, "{report:#}");
    assert_eq!(report["errors"][0]["field"], "van.secret_name");
    assert!(
        report["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("callsync/demo/nothing-here")
    );
}

/// `validate` asked right after a campaign replaced its VAN key (VAN refuses the old one
/// at once) answers with the new key, not the one the warm function read minutes before;
/// a key VAN refuses that was not replaced is still reported.
#[tokio::test]
async fn validate_right_after_a_key_is_replaced_checks_the_new_key() {
    const SECRET: &str = "callsync/rekeyed/van";
    let w = world().await;
    let store = |key: &'static str| {
        let value = format!(r#"{{"application_name":"callsync-demo","api_key":"{key}"}}"#);
        let stack = &w.stack;
        async move { stack.put_secret(SECRET, &value).await }
    };
    let mut doc = demo_doc();
    doc["slug"] = "rekeyed".into();
    doc["source"] = json!({"cdr": {}});
    doc["van"]["secret_name"] = SECRET.into();
    doc["van"]["other_databases"] = json!([]);
    doc["district"] = Value::Null;
    let validate = || {
        w.validate(with_body(
            for_candidate(authed("validate-post.json"), "rekeyed"),
            &doc.to_string(),
        ))
    };

    store("demo-van-key").await;
    let a = validate().await;
    assert_eq!(a.json()["ok"], true, "{}", a.body);

    store("replaced-key").await;
    w.van.replace_key("demo-van-key", "replaced-key");
    let a = validate().await;
    assert_eq!(a.json()["ok"], true, "the new key is read: {}", a.body);

    w.van.replace_key("replaced-key", "some-other-key");
    let a = validate().await;
    let report = a.json();
    assert_eq!(report["ok"], false, "{}", a.body);
    assert_eq!(report["errors"][0]["field"], "van.database_mode");
    let message = report["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("VAN refused the credentials"), "{message}");
}
