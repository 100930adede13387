//! The fake VAN and fake LiveVox answer like the references say the real APIs do.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use callsync_tests::demo_data::{
    LV_ACCESS_TOKEN, LV_CLIENT, LV_PASSWORD, LV_USER, VAN_APPLICATION, VAN_MYCAMPAIGN_KEY,
    VAN_VOTERFILE_KEY, demo_today,
};
use callsync_tests::fake_livevox::{FakeLiveVox, LiveVoxData, start_of_day_ms};
use callsync_tests::fake_van::{BothCodes, FakeVan, Fault, FaultKind, RateLimit, VanData};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode, header};
use serde_json::{Value, json};

fn client() -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Van {
    fake: FakeVan,
    http: Client,
}

impl Van {
    async fn start() -> Van {
        Van {
            fake: FakeVan::start(VanData::demo()).await,
            http: client(),
        }
    }

    fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.request_as(method, path, VAN_VOTERFILE_KEY, 0)
    }

    fn request_as(&self, method: Method, path: &str, key: &str, mode: u8) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.fake.base_url()))
            .basic_auth(VAN_APPLICATION, Some(format!("{key}|{mode}")))
            .header(header::ACCEPT, "application/json")
    }

    async fn get(&self, path: &str) -> Response {
        self.request(Method::GET, path).send().await.unwrap()
    }

    async fn post(&self, path: &str, body: &Value) -> Response {
        self.request(Method::POST, path)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    async fn canvass(&self, van_id: u64, body: &Value) -> Response {
        self.post(&format!("/people/{van_id}/canvassResponses"), body)
            .await
    }
}

fn content_type(response: &Response) -> String {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default()
}

async fn json_of(response: Response) -> Value {
    response.json().await.unwrap()
}

/// Asserts a 400 INVALID_PARAMETER envelope with this text and these properties.
async fn assert_invalid(response: Response, text: &str, properties: Option<&[&str]>) {
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let body = json_of(response).await;
    let error = &body["errors"][0];
    assert_eq!(error["code"], "INVALID_PARAMETER", "{body}");
    assert_eq!(error["text"], text, "{body}");
    match properties {
        Some(properties) => assert_eq!(error["properties"], json!(properties), "{body}"),
        None => assert!(error.get("properties").is_none(), "{body}"),
    }
}

fn phone_context() -> Value {
    json!({
        "contactTypeId": 1,
        "inputTypeId": 11,
        "dateCanvassed": "2026-11-03T18:04:11-05:00",
        "phone": {"dialingPrefix": "1", "phoneNumber": "2125550143"},
    })
}

// ---------------------------------------------------------------- VAN: auth and basics

#[tokio::test]
async fn echoes_returns_the_posted_body_as_utf8_json() {
    let van = Van::start().await;
    let response = van.post("/echoes", &json!({"message": "hello"})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(content_type(&response), "application/json; charset=utf-8");
    assert_eq!(json_of(response).await, json!({"message": "hello"}));
}

#[tokio::test]
async fn wrong_database_mode_is_rejected_like_a_bad_key() {
    let van = Van::start().await;
    let expected = json!({"errors":[{"code":"UNAUTHORIZED","text":"Invalid Database Mode"}]});

    let wrong_mode = van
        .request_as(Method::POST, "/echoes", VAN_VOTERFILE_KEY, 1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_mode.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(wrong_mode).await, expected);

    let bad_key = van
        .request_as(Method::GET, "/surveyQuestions", "not-a-key", 0)
        .send()
        .await
        .unwrap();
    assert_eq!(bad_key.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(bad_key).await, expected);

    let no_auth = van
        .http
        .get(format!("{}/surveyQuestions", van.fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(no_auth.status(), StatusCode::UNAUTHORIZED);

    let right_mode = van
        .request_as(Method::POST, "/echoes", VAN_MYCAMPAIGN_KEY, 1)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(right_mode.status(), StatusCode::OK);

    let no_mode = van
        .http
        .post(format!("{}/echoes", van.fake.base_url()))
        .basic_auth(VAN_APPLICATION, Some(VAN_VOTERFILE_KEY))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(no_mode.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(no_mode).await, expected);
}

#[tokio::test]
async fn any_user_name_is_accepted_and_only_the_key_and_mode_are_checked() {
    let van = Van::start().await;
    let as_user = |user: &str, password: String| {
        van.http
            .post(format!("{}/echoes", van.fake.base_url()))
            .basic_auth(user, Some(password))
            .json(&json!({"ok": true}))
            .send()
    };
    // parsons sends `default`; other clients send their own names, or none.
    for user in ["default", "parsons", "some-other-app", ""] {
        let right = as_user(user, format!("{VAN_VOTERFILE_KEY}|0"))
            .await
            .unwrap();
        assert_eq!(right.status(), StatusCode::OK, "{user:?}");
        assert_eq!(json_of(right).await, json!({"ok": true}));
        let myc = as_user(user, format!("{VAN_MYCAMPAIGN_KEY}|1"))
            .await
            .unwrap();
        assert_eq!(myc.status(), StatusCode::OK, "{user:?}");

        let wrong_mode = as_user(user, format!("{VAN_VOTERFILE_KEY}|1"))
            .await
            .unwrap();
        assert_eq!(wrong_mode.status(), StatusCode::UNAUTHORIZED, "{user:?}");
        let bad_key = as_user(user, "not-a-key|0".into()).await.unwrap();
        assert_eq!(bad_key.status(), StatusCode::UNAUTHORIZED, "{user:?}");
    }
    let recorded = van.fake.requests();
    assert_eq!(recorded[0].application_name.as_deref(), Some("default"));
    assert_eq!(recorded[0].db_mode.as_deref(), Some("0"));
}

#[tokio::test]
async fn every_request_is_recorded_with_its_answer() {
    let van = Van::start().await;
    van.request_as(Method::POST, "/echoes", VAN_VOTERFILE_KEY, 1)
        .json(&json!({"a": 1}))
        .send()
        .await
        .unwrap();
    van.get("/surveyQuestions?$top=5&statuses=Active").await;

    let requests = van.fake.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/echoes");
    assert_eq!(requests[0].status, 401);
    assert_eq!(
        requests[0].application_name.as_deref(),
        Some(VAN_APPLICATION)
    );
    assert_eq!(requests[0].db_mode.as_deref(), Some("1"));
    assert_eq!(requests[0].body, Some(json!({"a": 1})));
    assert_eq!(requests[1].path, "/surveyQuestions");
    assert_eq!(requests[1].status, 200);
    assert!(
        requests[1]
            .query
            .contains(&("$top".to_string(), "5".to_string()))
    );
    assert!(requests[1].answered_at >= requests[1].received_at);
    assert_eq!(van.fake.count("GET", "/survey"), 1);
    assert_eq!(van.fake.count("POST", "/survey"), 0);

    van.fake.clear_requests();
    assert!(van.fake.requests().is_empty());
}

// ---------------------------------------------------------------- VAN: lists and lookups

#[tokio::test]
async fn survey_questions_page_by_next_page_link_until_null() {
    let van = Van::start().await;
    let mut url = format!("{}/surveyQuestions?$top=7", van.fake.base_url());
    let mut ids = Vec::new();
    let mut pages = 0;
    loop {
        let response = van
            .http
            .get(&url)
            .basic_auth(VAN_APPLICATION, Some(format!("{VAN_VOTERFILE_KEY}|0")))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let page = json_of(response).await;
        assert_eq!(page["count"], 30);
        pages += 1;
        for item in page["items"].as_array().unwrap() {
            ids.push(item["surveyQuestionId"].as_u64().unwrap());
        }
        match page["nextPageLink"].as_str() {
            Some(next) => url = next.to_string(),
            None => {
                assert!(page["nextPageLink"].is_null());
                break;
            }
        }
    }
    assert_eq!(pages, 5);
    assert_eq!(ids, (2300..2330).collect::<Vec<u64>>());
}

#[tokio::test]
async fn next_page_link_keeps_the_filters() {
    let van = Van::start().await;
    let page = json_of(van.get("/surveyQuestions?statuses=Active&$top=10").await).await;
    let next = page["nextPageLink"].as_str().unwrap();
    assert!(next.starts_with(&format!(
        "{}/surveyQuestions?$top=10&$skip=10",
        van.fake.base_url()
    )));
    assert!(next.contains("statuses=Active"), "{next}");
    let count = page["count"].as_u64().unwrap();
    assert!(count < 30, "inactive questions must be filtered out");
}

#[tokio::test]
async fn survey_questions_filter_by_status_name_and_type() {
    let van = Van::start().await;
    let inactive = json_of(van.get("/surveyQuestions?statuses=Inactive").await).await;
    let items = inactive["items"].as_array().unwrap();
    assert!(!items.is_empty());
    assert!(items.iter().all(|q| q["status"] == "Inactive"));

    let smith = json_of(
        van.get("/surveyQuestions?name=SMITH&statuses=Active,Inactive")
            .await,
    )
    .await;
    let items = smith["items"].as_array().unwrap();
    assert!(items.len() >= 2);
    assert!(
        items
            .iter()
            .all(|q| { q["name"].as_str().unwrap().to_lowercase().contains("smith") })
    );

    let gotv = json_of(van.get("/surveyQuestions?type=GOTV").await).await;
    assert!(
        gotv["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|q| q["type"] == "GOTV")
    );

    let first = json_of(van.get("/surveyQuestions?$top=1").await).await;
    let question = &first["items"][0];
    assert_eq!(question["name"], "Support for Smith");
    assert_eq!(question["responses"][0]["name"], "Strong support");
    assert!(question["responses"][0]["surveyResponseId"].is_u64());
}

#[tokio::test]
async fn top_above_200_is_rejected_with_vans_text() {
    let van = Van::start().await;
    assert_invalid(
        van.get("/surveyQuestions?$top=201").await,
        "'$top' must be less than or equal to the maximum result size for this end point: 200",
        Some(&["$top"]),
    )
    .await;
    let zero = json_of(van.get("/activistCodes?$top=0").await).await;
    assert_eq!(zero["errors"][0]["properties"], json!(["$top"]));
    let words = json_of(van.get("/activistCodes?$top=many").await).await;
    assert_eq!(words["errors"][0]["properties"], json!(["$top"]));
    let skip = json_of(van.get("/activistCodes?$skip=-1").await).await;
    assert_eq!(skip["errors"][0]["properties"], json!(["$skip"]));
    assert_eq!(
        van.get("/activistCodes?$top=200").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn activist_codes_list_and_lookup() {
    let van = Van::start().await;
    let all = json_of(van.get("/activistCodes").await).await;
    assert_eq!(all["count"], 20);
    assert!(all["nextPageLink"].is_null());
    let one = van.get("/activistCodes/4400").await;
    assert_eq!(one.status(), StatusCode::OK);
    let one = json_of(one).await;
    assert_eq!(one["name"], "Volunteer prospect");
    assert_eq!(one["status"], "Active");
}

#[tokio::test]
async fn unknown_ids_answer_the_not_found_envelope() {
    let van = Van::start().await;
    let expected = json!({"errors":[{"code":"NOT_FOUND","text":"The requested resource could not be found."}]});
    for path in [
        "/surveyQuestions/999999",
        "/activistCodes/1",
        "/people/999999999",
    ] {
        let response = van.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(json_of(response).await, expected, "{path}");
    }
    let question = json_of(van.get("/surveyQuestions/2300").await).await;
    assert_eq!(question["surveyQuestionId"], 2300);
}

#[tokio::test]
async fn bad_path_ids_and_unknown_routes_answer_an_html_404() {
    let van = Van::start().await;
    for path in [
        "/surveyQuestions/abc",
        "/surveyQuestions/2147483648",
        "/activistCodes/-1",
        "/people/12x",
        "/nothingHere",
    ] {
        let response = van.get(path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(content_type(&response).starts_with("text/html"), "{path}");
        assert!(response.text().await.unwrap().contains("<html"), "{path}");
    }
    let post = van.post("/people/abc/canvassResponses", &json!({})).await;
    assert_eq!(post.status(), StatusCode::NOT_FOUND);
    assert!(content_type(&post).starts_with("text/html"));
}

#[tokio::test]
async fn canvass_lookups_are_bare_arrays() {
    let van = Van::start().await;
    let contact_types = json_of(van.get("/canvassResponses/contactTypes").await).await;
    let contact_types = contact_types.as_array().unwrap();
    assert!(
        contact_types
            .contains(&json!({"contactTypeId": 1, "name": "Phone", "channelTypeName": "Phone"}))
    );
    assert!(
        contact_types
            .iter()
            .any(|t| t["name"] == "SMS Text" && t["contactTypeId"] == 37)
    );

    let input_types = json_of(van.get("/canvassResponses/inputTypes").await).await;
    assert!(
        input_types
            .as_array()
            .unwrap()
            .contains(&json!({"inputTypeId": 11, "name": "API"}))
    );

    let result_codes = json_of(
        van.get("/canvassResponses/resultCodes?contactTypeId=1&inputTypeId=11")
            .await,
    )
    .await;
    let result_codes = result_codes.as_array().unwrap();
    for (id, name) in [(14, "Canvassed"), (18, "Busy"), (25, "Disconnected")] {
        assert!(
            result_codes
                .iter()
                .any(|c| c["resultCodeId"] == id && c["name"] == name),
            "{name}"
        );
    }
    assert!(result_codes.iter().any(|c| c["name"] == "Wrong Number"));
}

// ---------------------------------------------------------------- VAN: canvass responses

#[tokio::test]
async fn a_valid_canvass_response_is_204_with_no_body_and_recorded() {
    let van = Van::start().await;
    let with_code = json!({"canvassContext": phone_context(), "resultCodeId": 18});
    let response = van.canvass(18372073, &with_code).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert!(response.bytes().await.unwrap().is_empty());

    let with_responses = json!({
        "canvassContext": phone_context(),
        "resultCodeId": null,
        "responses": [
            {"type": "SurveyResponse", "surveyQuestionId": 2301, "surveyResponseId": 9120},
            {"type": "ActivistCode", "activistCodeId": 4411, "action": "Apply"},
        ],
    });
    // A person known by id only takes results too.
    van.fake.add_people([123456]);
    let response = van.canvass(123456, &with_responses).await;
    assert_eq!(response.status(), StatusCode::NO_CONTENT);

    assert_eq!(
        van.fake.canvass_posts(),
        vec![(18372073, with_code), (123456, with_responses)]
    );
    assert_eq!(van.fake.count("POST", "/people/"), 2);
}

#[tokio::test]
async fn unknown_van_id_is_404_and_van_id_zero_is_400() {
    let van = Van::start().await;
    let body = json!({"canvassContext": phone_context(), "resultCodeId": 18});
    let unknown = van.canvass(18372074, &body).await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert_eq!(json_of(unknown).await["errors"][0]["code"], "NOT_FOUND");

    let zero = van.canvass(0, &body).await;
    assert_eq!(zero.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(zero).await["errors"][0]["code"],
        "INVALID_PARAMETER"
    );
    assert!(van.fake.canvass_posts().is_empty());
}

#[tokio::test]
async fn canvass_body_that_is_not_json_is_400() {
    let van = Van::start().await;
    let response = van
        .request(Method::POST, "/people/18372073/canvassResponses")
        .header(header::CONTENT_TYPE, "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(van.fake.requests()[0].body, Some(json!("{not json")));
}

#[tokio::test]
async fn canvass_validation_failures_name_the_broken_property() {
    let van = Van::start().await;
    let context = phone_context();
    let walk = json!({"contactTypeId": 2, "inputTypeId": 11});
    let cases: Vec<(&str, Value, &str, Option<Vec<&str>>)> = vec![
        (
            "no context",
            json!({"resultCodeId": 18}),
            "'canvassContext' is required.",
            Some(vec!["canvassContext"]),
        ),
        (
            "unknown contact type",
            json!({"canvassContext": {"contactTypeId": 999, "inputTypeId": 11}, "resultCodeId": 18}),
            "'contactTypeId' must be a valid contact type.",
            Some(vec!["canvassContext.contactTypeId"]),
        ),
        (
            "unknown input type",
            json!({"canvassContext": {"contactTypeId": 2, "inputTypeId": 999}, "resultCodeId": 18}),
            "'inputTypeId' must be a valid input type.",
            Some(vec!["canvassContext.inputTypeId"]),
        ),
        (
            "phone contact without a phone",
            json!({"canvassContext": {"contactTypeId": 1, "inputTypeId": 11}, "resultCodeId": 18}),
            "'phone' is required when the contact type is Phone or SMS Text.",
            Some(vec!["canvassContext.phone"]),
        ),
        (
            "sms contact without a phone",
            json!({"canvassContext": {"contactTypeId": 37, "inputTypeId": 11}, "resultCodeId": 18}),
            "'phone' is required when the contact type is Phone or SMS Text.",
            Some(vec!["canvassContext.phone"]),
        ),
        (
            "both a result code and responses",
            json!({"canvassContext": context, "resultCodeId": 18, "responses": [
                {"type": "SurveyResponse", "surveyQuestionId": 2300, "surveyResponseId": 9100}]}),
            "resultCodeId must be null when responses are specified",
            Some(vec!["resultCodeId"]),
        ),
        (
            "neither a result code nor responses",
            json!({"canvassContext": context, "resultCodeId": null, "responses": []}),
            "Either 'resultCodeId' or 'responses' must be specified.",
            None,
        ),
        (
            "unknown result code",
            json!({"canvassContext": walk, "resultCodeId": 9999}),
            "'resultCodeId' must be a valid result code in the current context.",
            Some(vec!["resultCodeId"]),
        ),
        (
            "unknown survey question",
            json!({"canvassContext": context, "responses": [
                {"type": "ActivistCode", "activistCodeId": 4400, "action": "Apply"},
                {"type": "SurveyResponse", "surveyQuestionId": 1, "surveyResponseId": 9100}]}),
            "'surveyQuestionId' must be a valid Survey Question that is available in the current context.",
            Some(vec!["responses[1].surveyQuestionId"]),
        ),
        (
            "inactive survey question",
            json!({"canvassContext": context, "responses": [
                {"type": "SurveyResponse", "surveyQuestionId": 2305, "surveyResponseId": 9200}]}),
            "'surveyQuestionId' must be a valid Survey Question that is available in the current context.",
            Some(vec!["responses[0].surveyQuestionId"]),
        ),
        (
            "response of another question",
            json!({"canvassContext": context, "responses": [
                {"type": "SurveyResponse", "surveyQuestionId": 2300, "surveyResponseId": 9120}]}),
            "'surveyResponseId' must be a valid Response to the given Survey Question.",
            Some(vec!["responses[0].surveyResponseId"]),
        ),
        (
            "unknown activist code",
            json!({"canvassContext": context, "responses": [
                {"type": "ActivistCode", "activistCodeId": 1, "action": "Apply"}]}),
            "'activistCodeId' must be a valid Activist Code that is available in the current context.",
            Some(vec!["responses[0].activistCodeId"]),
        ),
        (
            "inactive activist code",
            json!({"canvassContext": context, "responses": [
                {"type": "ActivistCode", "activistCodeId": 4419, "action": "Apply"}]}),
            "'activistCodeId' must be a valid Activist Code that is available in the current context.",
            Some(vec!["responses[0].activistCodeId"]),
        ),
        (
            "activist code action other than Apply or Remove",
            json!({"canvassContext": context, "responses": [
                {"type": "ActivistCode", "activistCodeId": 4400, "action": "Toggle"}]}),
            "'action' must be 'Apply' or 'Remove'.",
            Some(vec!["responses[0].action"]),
        ),
    ];
    for (case, body, text, properties) in cases {
        let response = van.canvass(18372073, &body).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{case}");
        let answer = json_of(response).await;
        let error = &answer["errors"][0];
        assert_eq!(error["code"], "INVALID_PARAMETER", "{case}: {answer}");
        assert_eq!(error["text"], text, "{case}");
        match properties {
            Some(p) => assert_eq!(error["properties"], json!(p), "{case}"),
            None => assert!(error.get("properties").is_none(), "{case}"),
        }
    }
    assert!(van.fake.canvass_posts().is_empty());
}

#[tokio::test]
async fn both_codes_are_accepted_when_van_overwrites_with_canvassed() {
    let van = Van::start().await;
    let body = json!({"canvassContext": phone_context(), "resultCodeId": 18, "responses": [
        {"type": "SurveyResponse", "surveyQuestionId": 2300, "surveyResponseId": 9101}]});
    assert_invalid(
        van.canvass(18372073, &body).await,
        "resultCodeId must be null when responses are specified",
        Some(&["resultCodeId"]),
    )
    .await;
    van.fake.set_both_codes(BothCodes::OverwriteWithCanvassed);
    assert_eq!(
        van.canvass(18372073, &body).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(van.fake.canvass_posts().len(), 1);
}

#[tokio::test]
async fn seeded_data_can_be_changed_by_a_test() {
    let van = Van::start().await;
    let body = json!({"canvassContext": phone_context(), "responses": [
        {"type": "ActivistCode", "activistCodeId": 4400, "action": "Remove"}]});
    assert_eq!(
        van.canvass(18372073, &body).await.status(),
        StatusCode::NO_CONTENT
    );
    van.fake.with_data(|data| {
        data.activist_codes[0].status = callsync_tests::fake_van::Status::Inactive;
    });
    assert_eq!(
        van.canvass(18372073, &body).await.status(),
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        van.canvass(123456, &body).await.status(),
        StatusCode::NOT_FOUND
    );
    van.fake.add_people([123456]);
    van.fake.remove_person(18372073);
    let code = json!({"canvassContext": phone_context(), "resultCodeId": 18});
    assert_eq!(
        van.canvass(123456, &code).await.status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        van.canvass(18372073, &code).await.status(),
        StatusCode::NOT_FOUND
    );
}

const NOT_FOUND: &str =
    r#"{"errors":[{"code":"NOT_FOUND","text":"The requested resource could not be found."}]}"#;

#[tokio::test]
async fn a_person_the_database_does_not_hold_is_404_on_every_person_route() {
    let van = Van::start().await;
    let expected: Value = serde_json::from_str(NOT_FOUND).unwrap();
    let body = json!({"canvassContext": phone_context(), "resultCodeId": 18});
    // Plausible ids just beside real people, and ids far from any: none exists.
    for van_id in [
        18372074_u64,
        18372072,
        1,
        123456,
        899_999_999,
        2_147_483_647,
    ] {
        assert!(!van.fake.with_data(|d| d.knows_person(van_id, 0)));
        let post = van.canvass(van_id, &body).await;
        assert_eq!(post.status(), StatusCode::NOT_FOUND, "{van_id}");
        assert!(content_type(&post).starts_with("application/json"));
        assert_eq!(json_of(post).await, expected, "{van_id}");
        for path in [
            format!("/people/{van_id}"),
            format!("/people/{van_id}?$expand=phones"),
        ] {
            let get = van.get(&path).await;
            assert_eq!(get.status(), StatusCode::NOT_FOUND, "{path}");
            assert_eq!(json_of(get).await, expected, "{path}");
        }
        let find = van.post("/people/find", &json!({"vanId": van_id})).await;
        assert_eq!(find.status(), StatusCode::NOT_FOUND, "{van_id}");
        assert_eq!(
            json_of(find).await,
            json!({"vanId": null, "status": "Unmatched"})
        );
    }
    assert!(van.fake.canvass_posts().is_empty(), "nothing was accepted");
}

#[tokio::test]
async fn every_van_id_the_demo_calls_carry_is_a_known_person() {
    use callsync_tests::demo_data::{
        DEMO_NIGHT_CALLS, cdr_night, demo_mycampaign_ids, demo_van_ids,
    };
    let data = VanData::demo();
    let known: Vec<u64> = demo_van_ids().collect();
    assert!(known.iter().all(|id| data.knows_person(*id, 0)));
    assert!(demo_mycampaign_ids().all(|id| data.knows_person(id, 1) && !data.knows_person(id, 0)));
    // Every LiveVox demo call and every row of the demo's CDR night names one of them.
    let lv = LiveVoxData::demo();
    let in_accounts = |account: &str| {
        let digits: String = account
            .chars()
            .rev()
            .take_while(char::is_ascii_digit)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        digits.parse::<u64>().ok()
    };
    let night = cdr_night(demo_today(), DEMO_NIGHT_CALLS);
    let night_accounts = night
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').nth(1).map(str::to_owned));
    let accounts = lv
        .call_details
        .iter()
        .map(|c| c.account.clone())
        .chain(night_accounts)
        .filter(|a| a.starts_with("ny14-") || a.starts_with("MYV-") || a.parse::<u64>().is_ok());
    let mut checked = 0;
    for account in accounts {
        let id = in_accounts(&account).unwrap();
        let mode = u8::from(account.to_ascii_lowercase().contains("myc"));
        assert!(data.knows_person(id, mode), "{account}");
        checked += 1;
    }
    assert!(checked > DEMO_NIGHT_CALLS as usize, "{checked}");
    // A longer night reaches people the demo database does not hold.
    assert!(!data.knows_person(18_000_000 + DEMO_NIGHT_CALLS * 7, 0));
}

#[tokio::test]
async fn each_database_holds_its_own_people_under_its_own_ids() {
    let van = Van::start().await;
    van.fake.add_mycampaign_people([555_001]);
    let body = json!({"canvassContext": phone_context(), "resultCodeId": 18});
    let post = |id: u64, key: &'static str, mode: u8| {
        van.request_as(
            Method::POST,
            &format!("/people/{id}/canvassResponses"),
            key,
            mode,
        )
        .json(&body)
        .send()
    };
    // A VoterFile person is unknown to MyCampaign, and a MyCampaign person to VoterFile.
    assert_eq!(
        post(18372073, VAN_MYCAMPAIGN_KEY, 1)
            .await
            .unwrap()
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(555_001, VAN_VOTERFILE_KEY, 0).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        post(555_001, VAN_MYCAMPAIGN_KEY, 1).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        post(18372073, VAN_VOTERFILE_KEY, 0).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let get = van
        .request_as(Method::GET, "/people/18372073", VAN_MYCAMPAIGN_KEY, 1)
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), StatusCode::NOT_FOUND);
}

// ---------------------------------------------------------------- VAN: people

#[tokio::test]
async fn find_answers_302_with_location_and_does_not_need_following() {
    let van = Van::start().await;
    let bodies = [
        json!({"firstName": "alex", "lastName": "SAMPLE", "phones": [{"phoneNumber": "1 (212) 555-0101"}]}),
        json!({"firstName": "Alex", "lastName": "Sample", "emails": [{"email": "alex.sample@example.com"}]}),
        json!({"emails": [{"email": "Alex.Sample@example.com"}]}),
        json!({"phones": [{"phoneNumber": "212-555-0101"}]}),
        json!({"vanId": 18372073}),
    ];
    for body in bodies {
        let response = van.post("/people/find", &body).await;
        assert_eq!(response.status(), StatusCode::FOUND, "{body}");
        let location = response.headers()[header::LOCATION]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(location, format!("{}/people/18372073", van.fake.base_url()));
        assert_eq!(
            json_of(response).await,
            json!({"vanId": 18372073, "status": "Matched"})
        );
    }
}

#[tokio::test]
async fn find_without_a_match_is_404_unmatched_not_an_error_envelope() {
    let van = Van::start().await;
    let wrong_name = json!({"firstName": "Jordan", "lastName": "Sample", "phones": [{"phoneNumber": "2125550101"}]});
    for body in [
        wrong_name,
        json!({"emails": [{"email": "nobody@example.com"}]}),
    ] {
        let response = van.post("/people/find", &body).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            json_of(response).await,
            json!({"vanId": null, "status": "Unmatched"})
        );
    }
}

#[tokio::test]
async fn find_below_the_minimum_criteria_is_400() {
    let van = Van::start().await;
    let response = van
        .post(
            "/people/find",
            &json!({"firstName": "Alex", "lastName": "Sample"}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(response).await["errors"][0]["code"],
        "INVALID_PARAMETER"
    );
}

#[tokio::test]
async fn person_collections_are_null_unless_expanded() {
    let van = Van::start().await;
    let plain = json_of(van.get("/people/18372073").await).await;
    assert_eq!(plain["vanId"], 18372073);
    assert_eq!(plain["firstName"], "Alex");
    assert!(plain["phones"].is_null());
    assert!(plain["emails"].is_null());

    let expanded = json_of(van.get("/people/18372073?$expand=phones").await).await;
    assert_eq!(
        expanded["phones"],
        json!([{"phoneId": 5000001, "phoneNumber": "2125550101", "phoneType": "Cell", "isPreferred": true}])
    );
    assert!(expanded["emails"].is_null());
}

// ---------------------------------------------------------------- VAN: rate limit and faults

fn wait_hint(text: &str) -> u64 {
    let rest = text
        .strip_prefix("Rate limit exceeded. Try again in ")
        .unwrap_or_else(|| panic!("unexpected 429 text: {text}"));
    rest.strip_suffix(" ms.").unwrap().parse().unwrap()
}

#[tokio::test]
async fn an_empty_bucket_answers_429_with_a_wait_hint_and_no_retry_after() {
    let van = Van::start().await;
    van.fake.set_rate_limit(Some(RateLimit {
        burst: 2,
        per_second: 1,
    }));
    for _ in 0..2 {
        assert_eq!(
            van.get("/activistCodes/4400").await.status(),
            StatusCode::OK
        );
    }
    let limited = van.get("/activistCodes/4400").await;
    assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(limited.headers().get(header::RETRY_AFTER).is_none());
    let body = json_of(limited).await;
    assert_eq!(body["errors"][0]["code"], "429");
    let wait = wait_hint(body["errors"][0]["text"].as_str().unwrap());
    assert!((1..=1000).contains(&wait), "{wait}");
    assert_eq!(van.fake.requests()[2].status, 429);

    // The bucket is per key: the MyCampaign key still has its own tokens.
    let other_key = van
        .request_as(Method::GET, "/activistCodes/4400", VAN_MYCAMPAIGN_KEY, 1)
        .send()
        .await
        .unwrap();
    assert_eq!(other_key.status(), StatusCode::OK);

    van.fake.set_rate_limit(None);
    assert_eq!(
        van.get("/activistCodes/4400").await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn server_error_fault_answers_the_envelope_with_a_reference_code() {
    let van = Van::start().await;
    van.fake
        .inject(Fault::once("/canvassResponses", FaultKind::ServerError).for_method("POST"));
    // A GET to another path neither matches nor consumes the fault.
    assert_eq!(
        van.get("/canvassResponses/contactTypes").await.status(),
        StatusCode::OK
    );
    let body = json!({"canvassContext": phone_context(), "resultCodeId": 18});
    let failed = van.canvass(18372073, &body).await;
    assert_eq!(failed.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let answer = json_of(failed).await;
    assert_eq!(answer["errors"][0]["code"], "INTERNAL_SERVER_ERROR");
    assert!(answer["errors"][0]["referenceCode"].is_string());
    assert!(van.fake.canvass_posts().is_empty());

    assert_eq!(
        van.canvass(18372073, &body).await.status(),
        StatusCode::NO_CONTENT
    );
}

#[tokio::test]
async fn asp_net_fault_answers_a_raw_exception_object() {
    let van = Van::start().await;
    van.fake
        .inject(Fault::once("/echoes", FaultKind::AspNetError));
    let response = van.post("/echoes", &json!({})).await;
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = json_of(response).await;
    for field in ["message", "exceptionMessage", "exceptionType", "stackTrace"] {
        assert!(body[field].is_string(), "{field}");
    }
    assert!(body.get("errors").is_none());
}

#[tokio::test]
async fn html_bad_request_fault_answers_html() {
    let van = Van::start().await;
    van.fake
        .inject(Fault::once("/echoes", FaultKind::HtmlBadRequest));
    let response = van.post("/echoes", &json!({})).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(content_type(&response).starts_with("text/html"));
}

#[tokio::test]
async fn too_many_requests_fault_uses_the_real_text_and_repeats_as_asked() {
    let van = Van::start().await;
    van.fake
        .inject(Fault::once("/echoes", FaultKind::TooManyRequests { wait_ms: 30 }).times(2));
    for _ in 0..2 {
        let response = van.post("/echoes", &json!({})).await;
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert!(response.headers().get(header::RETRY_AFTER).is_none());
        let body = json_of(response).await;
        assert_eq!(
            body,
            json!({"errors":[{"code":"429","text":"Rate limit exceeded. Try again in 30 ms."}]})
        );
    }
    assert_eq!(
        van.post("/echoes", &json!({})).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn delay_fault_answers_normally_after_waiting() {
    let van = Van::start().await;
    let delay = Duration::from_millis(60);
    van.fake
        .inject(Fault::once("/echoes", FaultKind::Delay(delay)));
    let response = van.post("/echoes", &json!({"n": 1})).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(json_of(response).await, json!({"n": 1}));
    let recorded = &van.fake.requests()[0];
    assert!(recorded.answered_at.duration_since(recorded.received_at) >= delay);
}

#[tokio::test]
async fn drop_connection_fault_gives_the_client_a_connection_error() {
    let van = Van::start().await;
    // Warm a pooled keep-alive connection so the drop happens on a reused one too.
    assert_eq!(
        van.post("/echoes", &json!({})).await.status(),
        StatusCode::OK
    );
    van.fake.inject(Fault::once(
        "/people/18372073/canvassResponses",
        FaultKind::DropConnection,
    ));
    let body = json!({"canvassContext": phone_context(), "resultCodeId": 18});
    let error = van
        .request(Method::POST, "/people/18372073/canvassResponses")
        .json(&body)
        .send()
        .await
        .expect_err("the fake hung up, so there is no response");
    assert!(error.status().is_none());
    assert!(van.fake.canvass_posts().is_empty());
    assert_eq!(van.fake.requests()[1].status, 0);

    assert_eq!(
        van.canvass(18372073, &body).await.status(),
        StatusCode::NO_CONTENT
    );
}

// ---------------------------------------------------------------- LiveVox

struct Lv {
    fake: FakeLiveVox,
    http: Client,
}

impl Lv {
    async fn start() -> Lv {
        Lv {
            fake: FakeLiveVox::start(LiveVoxData::demo()).await,
            http: client(),
        }
    }

    async fn login_at(&self, path: &str, token: &str, password: &str) -> Response {
        self.http
            .post(format!("{}{path}", self.fake.base_url()))
            .header("LV-Access", token)
            .json(&json!({"clientName": LV_CLIENT, "userName": LV_USER, "password": password}))
            .send()
            .await
            .unwrap()
    }

    async fn session(&self) -> String {
        let response = self
            .login_at("/session/login", LV_ACCESS_TOKEN, LV_PASSWORD)
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        json_of(response).await["sessionId"]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn get(&self, session: &str, path_and_query: &str) -> Response {
        self.get_url(
            session,
            &format!("{}{path_and_query}", self.fake.base_url()),
        )
        .await
    }

    async fn get_url(&self, session: &str, url: &str) -> Response {
        self.http
            .get(url)
            .header("LV-Session", session)
            .send()
            .await
            .unwrap()
    }

    async fn post_url(&self, session: &str, url: &str, body: &Value) -> Response {
        self.http
            .post(url)
            .header("LV-Session", session)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

fn yesterday_window() -> (i64, i64) {
    let today = start_of_day_ms(demo_today());
    (today - 86_400_000, today)
}

#[tokio::test]
async fn login_returns_a_session_and_logging_in_again_returns_the_same_one() {
    let lv = Lv::start().await;
    let first = lv
        .login_at("/session/login", LV_ACCESS_TOKEN, LV_PASSWORD)
        .await;
    assert_eq!(first.status(), StatusCode::OK);
    let first = json_of(first).await;
    assert!(first["sessionId"].is_string());
    assert!(first["clientId"].is_u64());
    assert!(first["userId"].is_u64());
    assert!(first["daysUntilPasswordExpires"].is_u64());

    let again = json_of(
        lv.login_at("/session/v6.0/login", LV_ACCESS_TOKEN, LV_PASSWORD)
            .await,
    )
    .await;
    assert_eq!(again["sessionId"], first["sessionId"]);
    assert_eq!(lv.fake.logins(), 2);
}

#[tokio::test]
async fn login_with_a_bad_token_or_password_is_401() {
    let lv = Lv::start().await;
    for (token, password) in [("wrong-token", LV_PASSWORD), (LV_ACCESS_TOKEN, "wrong")] {
        let response = lv.login_at("/session/login", token, password).await;
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        let body = json_of(response).await;
        assert_eq!(body["code"], 401);
        assert!(body["message"].is_string());
    }
    assert_eq!(lv.fake.logins(), 0);
}

#[tokio::test]
async fn requests_without_a_valid_session_are_401() {
    let lv = Lv::start().await;
    let expected = json!({"code": 401, "message": "Invalid session id"});
    let missing = lv
        .http
        .get(format!("{}/configuration/callCenters", lv.fake.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(missing).await, expected);
    let made_up = lv.get("not-a-session", "/configuration/callCenters").await;
    assert_eq!(made_up.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(json_of(made_up).await, expected);

    let requests = lv.fake.requests();
    assert!(!requests[0].has_session);
    assert!(requests[1].has_session);
    assert_eq!(requests[1].status, 401);
}

#[tokio::test]
async fn expired_sessions_are_refused_and_a_new_login_gets_a_new_id() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    assert_eq!(
        lv.get(&session, "/configuration/callCenters")
            .await
            .status(),
        StatusCode::OK
    );
    lv.fake.expire_sessions();
    assert_eq!(
        lv.get(&session, "/configuration/callCenters")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
    let renewed = lv.session().await;
    assert_ne!(renewed, session);
    assert_eq!(
        lv.get(&renewed, "/configuration/callCenters")
            .await
            .status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn logout_ends_the_session() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let response = lv
        .http
        .delete(format!("{}/session/logout/{session}", lv.fake.base_url()))
        .header("LV-Session", &session)
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    assert_eq!(
        lv.get(&session, "/configuration/callCenters")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn configuration_lists_answer_their_named_arrays() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let centers = json_of(lv.get(&session, "/configuration/callCenters").await).await;
    let center_id = centers["callCenter"][0]["callCenterId"].as_u64().unwrap();
    assert!(centers.get("next").is_none());

    let services = json_of(
        lv.get(
            &session,
            &format!("/configuration/services?callCenter={center_id}"),
        )
        .await,
    )
    .await;
    let services = services["service"].as_array().unwrap();
    assert_eq!(services.len(), 2);
    let service_id = services[0]["serviceId"].as_u64().unwrap();

    let one = json_of(
        lv.get(&session, &format!("/configuration/services/{service_id}"))
            .await,
    )
    .await;
    assert_eq!(one["serviceId"], service_id);
    assert_eq!(
        lv.get(&session, "/configuration/services/424242")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    let codes = json_of(
        lv.get(
            &session,
            &format!("/configuration/termCodes?service={service_id}"),
        )
        .await,
    )
    .await;
    let codes = codes["termCode"].as_array().unwrap();
    assert!(codes.iter().all(|c| c["serviceId"] == service_id));
    for name in [
        "Agent Cust 1",
        "AGENT - CUST RPC 3",
        "No Answer",
        "Answering Machine (Hung Up)",
    ] {
        assert!(codes.iter().any(|c| c["name"] == name), "{name}");
    }
    for field in ["id", "termCategoryId", "lvResultId", "reportOrder"] {
        assert!(codes[0][field].is_u64(), "{field}");
    }
}

#[tokio::test]
async fn lists_page_with_next_until_it_is_absent() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let mut url = format!(
        "{}/configuration/termCodes?service=1001&count=5",
        lv.fake.base_url()
    );
    let mut names = Vec::new();
    loop {
        let page = json_of(lv.get_url(&session, &url).await).await;
        names.extend(
            page["termCode"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_string()),
        );
        match page
            .get("next")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
        {
            Some(next) => {
                assert!(next.contains("service=1001"), "{next}");
                url = next.to_string();
            }
            None => break,
        }
    }
    assert_eq!(names.len(), 17);
    assert_eq!(names[0], "Agent Cust 1");
}

#[tokio::test]
async fn count_above_1000_is_400() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let response = lv
        .get(&session, "/configuration/callCenters?count=1001")
        .await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(response).await,
        json!({"code": 400, "message": "count must be between 1 and 1000"})
    );
}

#[tokio::test]
async fn campaigns_are_searched_by_service_and_upload_date() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let (from, to) = yesterday_window();
    let url = format!("{}/campaign/campaigns/search", lv.fake.base_url());
    let body = json!({"dateRange": {"from": from, "to": to}, "service": [1001]});
    let page = json_of(lv.post_url(&session, &url, &body).await).await;
    let campaigns = page["campaign"].as_array().unwrap();
    assert_eq!(campaigns.len(), 1);
    assert_eq!(campaigns[0]["serviceId"], 1001);
    assert_eq!(page["next"], "");
}

#[tokio::test]
async fn call_detail_pages_through_the_day_with_next_until_blank() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let (start, end) = yesterday_window();
    let body = json!({"startDate": start, "endDate": end, "filter": {"service": []}});
    let mut url = format!("{}/reporting/callDetail?count=10", lv.fake.base_url());
    let mut calls = Vec::new();
    let mut pages = 0;
    loop {
        let response = lv.post_url(&session, &url, &body).await;
        assert_eq!(response.status(), StatusCode::OK);
        let page = json_of(response).await;
        pages += 1;
        calls.extend(page["callDetail"].as_array().unwrap().iter().cloned());
        match page["next"].as_str() {
            Some("") => break,
            Some(next) => url = next.to_string(),
            None => panic!("a POST list always carries next: {page}"),
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(calls.len(), 36);
    for call in &calls {
        let start_ms = millis(&call["start"]);
        assert!((start..end).contains(&start_ms), "{call}");
        assert!(millis(&call["end"]) > start_ms);
        assert!(
            call["phoneDialed"]
                .as_str()
                .unwrap()
                .starts_with("21255501")
        );
    }
    assert!(
        calls
            .iter()
            .any(|c| c["account"].as_str().unwrap().starts_with("ny14-van-"))
    );
}

fn millis(value: &Value) -> i64 {
    match value {
        Value::Number(n) => n.as_i64().unwrap(),
        Value::String(s) => s.parse().unwrap(),
        other => panic!("not a timestamp: {other}"),
    }
}

#[tokio::test]
async fn call_detail_timestamps_come_as_numbers_and_as_digit_strings() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let (start, end) = yesterday_window();
    let url = format!("{}/reporting/callDetail?count=1000", lv.fake.base_url());
    let body = json!({"startDate": start.to_string(), "endDate": end});
    let page = json_of(lv.post_url(&session, &url, &body).await).await;
    let stamps: Vec<&Value> = page["callDetail"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|c| [&c["start"], &c["end"]])
        .collect();
    assert!(stamps.iter().any(|s| s.is_i64()));
    assert!(stamps.iter().any(|s| {
        s.as_str()
            .is_some_and(|t| t.bytes().all(|b| b.is_ascii_digit()))
    }));
}

#[tokio::test]
async fn call_detail_filters_by_service() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let (start, end) = yesterday_window();
    let url = format!("{}/reporting/callDetail", lv.fake.base_url());
    let body = json!({"startDate": start, "endDate": end, "filter": {"service": [{"id": 1002}]}});
    let page = json_of(lv.post_url(&session, &url, &body).await).await;
    let calls = page["callDetail"].as_array().unwrap();
    assert!(!calls.is_empty());
    assert!(calls.iter().all(|c| c["serviceId"] == 1002));
}

#[tokio::test]
async fn reporting_serves_only_days_before_today() {
    let lv = Lv::start().await;
    let session = lv.session().await;
    let (start, end) = yesterday_window();
    let url = format!("{}/reporting/callDetail", lv.fake.base_url());
    let body = json!({"startDate": start, "endDate": end + 1});
    let response = lv.post_url(&session, &url, &body).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        json_of(response).await,
        json!({"code": 400, "message": "The reporting API serves only days before today"})
    );

    lv.fake
        .with_data(|data| data.today = data.today.tomorrow().unwrap());
    let body = json!({"startDate": start, "endDate": end + 1});
    assert_eq!(
        lv.post_url(&session, &url, &body).await.status(),
        StatusCode::OK
    );
}

#[test]
fn demo_data_is_deterministic() {
    assert_eq!(VanData::demo(), VanData::demo());
    assert_eq!(LiveVoxData::demo(), LiveVoxData::demo());
    let lv = LiveVoxData::demo();
    assert!(lv.call_details.len() >= 30);
    assert!(
        lv.call_details
            .iter()
            .all(|c| c.phone_dialed.len() == 10 && c.phone_dialed[3..].starts_with("55501"))
    );
}
