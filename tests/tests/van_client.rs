//! The VAN client against the fake VAN: every endpoint, paging, the error envelopes and
//! raw bodies VAN answers with, what is retried and what is not, and the request counts.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use callsync::retry::RetryPolicy;
use callsync::values::{PhoneNumber, VanId};
use callsync::van::{
    ActivistAction, CanvassContext, CanvassOutcome, CanvassResponse, ClientOptions, DatabaseMode,
    FindPerson, ResponseItem, TransportKind, VanClient, VanCredentials, VanError, VanErrorItem,
};
use callsync_tests::demo_data::{VAN_APPLICATION, VAN_MYCAMPAIGN_KEY, VAN_VOTERFILE_KEY};
use callsync_tests::fake_van::{
    FakeVan, Fault, FaultKind, RateLimit, RecordedRequest, Status, VanData,
};
use serde_json::json;

/// Small delays keep retries fast; the deadline is generous so only attempts bound them.
fn options() -> ClientOptions {
    ClientOptions {
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(40),
            deadline: Duration::from_secs(10),
        },
        request_timeout: Duration::from_secs(5),
        connect_timeout: Duration::from_secs(2),
        page_size: 200,
    }
}

fn client_with(van: &FakeVan, key: &str, mode: DatabaseMode, options: ClientOptions) -> VanClient {
    let credentials = VanCredentials {
        application_name: VAN_APPLICATION.into(),
        api_key: key.into(),
    };
    VanClient::new(&van.base_url(), credentials, mode, options).unwrap()
}

fn client(van: &FakeVan) -> VanClient {
    client_with(van, VAN_VOTERFILE_KEY, DatabaseMode::VoterFile, options())
}

fn paged(van: &FakeVan, page_size: u32) -> VanClient {
    client_with(
        van,
        VAN_VOTERFILE_KEY,
        DatabaseMode::VoterFile,
        ClientOptions {
            page_size,
            ..options()
        },
    )
}

fn query<'a>(request: &'a RecordedRequest, key: &str) -> Option<&'a str> {
    request
        .query
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Checks one request per page was made for `total` items, each with `$top` = `size`
/// and the `$skip` of its page.
fn assert_pages_requested(van: &FakeVan, path: &str, size: usize, total: usize) {
    let requests = van.requests();
    assert_eq!(requests.len(), total.div_ceil(size));
    for (i, request) in requests.iter().enumerate() {
        assert_eq!(request.path, path);
        let (top, skip) = (size.to_string(), (size * i).to_string());
        assert_eq!(query(request, "$top"), Some(top.as_str()), "page {i}");
        assert_eq!(query(request, "$skip"), Some(skip.as_str()), "page {i}");
    }
}

/// VAN's error items, after checking the error is its envelope with this status.
fn envelope(err: &VanError, want: u16) -> &[VanErrorItem] {
    match err {
        VanError::Api { status, errors } if *status == want => errors,
        other => panic!("expected VAN's {want} envelope, got {other:?}"),
    }
}

/// Checks the error keeps a non-envelope answer as it came.
fn assert_kept_raw(err: &VanError, want: u16, content_type_prefix: &str, needle: &str) {
    match err {
        VanError::Unexpected {
            status,
            content_type,
            body,
        } => {
            assert_eq!(*status, want);
            let content_type = content_type.as_deref().unwrap();
            assert!(
                content_type.starts_with(content_type_prefix),
                "{content_type}"
            );
            assert!(body.contains(needle), "{body}");
        }
        other => panic!("expected the raw {want} answer, got {other:?}"),
    }
}

fn busy_call() -> CanvassResponse {
    CanvassResponse {
        context: CanvassContext {
            contact_type_id: 1,
            input_type_id: 11,
            date_canvassed: "2026-11-03T18:04:11-05:00".into(),
            phone: Some(PhoneNumber::parse("212-555-0101").unwrap()),
            phone_id: None,
            omit_activist_code_contact_history: false,
        },
        outcome: CanvassOutcome::ResultCode(18),
    }
}

fn van_id(id: u64) -> VanId {
    VanId::new(id).unwrap()
}

#[tokio::test]
async fn echo_sends_basic_auth_with_the_key_and_database_mode() {
    let van = FakeVan::start(VanData::demo()).await;
    let body = json!({"hello": "VAN", "n": [1, 2, 3]});
    assert_eq!(client(&van).echo(&body).await.unwrap(), body);

    let myc = client_with(
        &van,
        VAN_MYCAMPAIGN_KEY,
        DatabaseMode::MyCampaign,
        options(),
    );
    assert_eq!(myc.echo(&body).await.unwrap(), body);

    let requests = van.requests();
    assert_eq!(requests.len(), 2);
    for (request, mode) in requests.iter().zip(["0", "1"]) {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/echoes");
        assert_eq!(request.application_name.as_deref(), Some(VAN_APPLICATION));
        assert_eq!(request.db_mode.as_deref(), Some(mode));
        assert_eq!(request.body.as_ref(), Some(&body));
        assert_eq!(request.status, 200);
    }
}

#[tokio::test]
async fn a_key_in_the_wrong_mode_is_refused_once_and_the_envelope_kept() {
    let van = FakeVan::start(VanData::demo()).await;
    let wrong = client_with(&van, VAN_VOTERFILE_KEY, DatabaseMode::MyCampaign, options());
    let err = wrong.echo(&json!({})).await.unwrap_err();
    let errors = envelope(&err, 401);
    assert_eq!(errors[0].code, "UNAUTHORIZED");
    assert_eq!(errors[0].text, "Invalid Database Mode");
    assert!(!err.is_retryable());
    assert_eq!(
        err.envelope_json(),
        Some(json!({"errors":[{"code":"UNAUTHORIZED","text":"Invalid Database Mode"}]}))
    );
    assert!(!err.to_string().contains(VAN_VOTERFILE_KEY));
    assert!(!format!("{err:?}").contains(VAN_VOTERFILE_KEY));
    assert_eq!(van.requests().len(), 1, "a 401 must not be retried");
    assert_eq!(wrong.requests_made(), 1);
}

#[tokio::test]
async fn survey_questions_arrive_from_every_page() {
    let van = FakeVan::start(VanData::demo()).await;
    let want: Vec<u32> = van.with_data(|d| {
        d.survey_questions
            .iter()
            .map(|q| q.survey_question_id as u32)
            .collect()
    });
    assert!(want.len() > 14, "the demo must need several pages of 7");

    let questions = paged(&van, 7).survey_questions(None).await.unwrap();
    let got: Vec<u32> = questions.iter().map(|q| q.survey_question_id).collect();
    assert_eq!(got, want);
    let q2301 = questions
        .iter()
        .find(|q| q.survey_question_id == 2301)
        .unwrap();
    assert!(!q2301.name.is_empty());
    assert!(q2301.responses.iter().any(|r| r.survey_response_id == 9120));

    assert_pages_requested(&van, "/surveyQuestions", 7, want.len());
}

#[tokio::test]
async fn a_status_filter_is_kept_on_every_page() {
    let van = FakeVan::start(VanData::demo()).await;
    let active = van.with_data(|d| {
        d.survey_questions
            .iter()
            .filter(|q| q.status == Status::Active)
            .count()
    });
    let questions = paged(&van, 10)
        .survey_questions(Some("Active"))
        .await
        .unwrap();
    assert_eq!(questions.len(), active);
    assert!(
        questions
            .iter()
            .all(|q| q.status.as_deref() == Some("Active"))
    );
    let requests = van.requests();
    assert_eq!(requests.len(), active.div_ceil(10));
    assert!(requests.len() > 1);
    for request in &requests {
        assert_eq!(query(request, "statuses"), Some("Active"));
    }
}

#[tokio::test]
async fn activist_codes_arrive_from_every_page() {
    let van = FakeVan::start(VanData::demo()).await;
    let want: Vec<u32> = van.with_data(|d| {
        d.activist_codes
            .iter()
            .map(|c| c.activist_code_id as u32)
            .collect()
    });
    let codes = paged(&van, 6).activist_codes(None).await.unwrap();
    let got: Vec<u32> = codes.iter().map(|c| c.activist_code_id).collect();
    assert_eq!(got, want);
    assert!(want.len() > 12, "the demo must need several pages of 6");
    assert_pages_requested(&van, "/activistCodes", 6, want.len());
}

#[tokio::test]
async fn one_survey_question_and_one_activist_code_are_read_by_id() {
    let van = FakeVan::start(VanData::demo()).await;
    let van_client = client(&van);
    let question = van_client.survey_question(2301).await.unwrap();
    assert_eq!(question.survey_question_id, 2301);
    assert!(
        question
            .responses
            .iter()
            .any(|r| r.survey_response_id == 9120)
    );
    let code = van_client.activist_code(4411).await.unwrap();
    assert_eq!(code.activist_code_id, 4411);
    assert!(code.status.is_some());
    let paths: Vec<String> = van.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(paths, ["/surveyQuestions/2301", "/activistCodes/4411"]);
}

#[tokio::test]
async fn an_unknown_id_keeps_vans_not_found_envelope_and_is_not_retried() {
    let van = FakeVan::start(VanData::demo()).await;
    let err = client(&van).survey_question(9999).await.unwrap_err();
    assert_eq!(envelope(&err, 404)[0].code, "NOT_FOUND");
    assert!(!err.is_retryable());
    assert_eq!(van.requests().len(), 1);
}

#[tokio::test]
async fn an_out_of_range_id_gets_the_iis_page_kept_raw() {
    let van = FakeVan::start(VanData::demo()).await;
    let err = client(&van).activist_code(u32::MAX).await.unwrap_err();
    assert_kept_raw(&err, 404, "text/html", "404 - File or directory not found.");
    assert_eq!(van.requests().len(), 1);
}

#[tokio::test]
async fn the_canvass_lookups_read_bare_arrays() {
    let van = FakeVan::start(VanData::demo()).await;
    let van_client = client(&van);

    let results = van_client.result_codes().await.unwrap();
    let named = |name: &str| {
        results
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.result_code_id)
    };
    assert_eq!(named("Busy"), Some(18));
    assert_eq!(named("Wrong Number"), Some(20));
    assert_eq!(results.len(), van.with_data(|d| d.result_codes.len()));

    let contact_types = van_client.contact_types().await.unwrap();
    let phone = contact_types.iter().find(|t| t.name == "Phone").unwrap();
    assert_eq!(phone.contact_type_id, 1);
    assert!(phone.channel_type_name.is_some());

    let input_types = van_client.input_types().await.unwrap();
    assert!(
        input_types
            .iter()
            .any(|t| t.name == "API" && t.input_type_id == 11)
    );

    let filtered = van_client.result_codes_in(Some(1), Some(11)).await.unwrap();
    assert!(!filtered.is_empty());

    let requests = van.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/canvassResponses/resultCodes",
            "/canvassResponses/contactTypes",
            "/canvassResponses/inputTypes",
            "/canvassResponses/resultCodes",
        ]
    );
    assert!(
        requests[0].query.is_empty(),
        "bare-array lookups are not paged"
    );
    assert_eq!(query(&requests[3], "contactTypeId"), Some("1"));
    assert_eq!(query(&requests[3], "inputTypeId"), Some("11"));
}

#[tokio::test]
async fn a_result_code_is_posted_as_the_reference_body_and_answered_204() {
    let van = FakeVan::start(VanData::demo()).await;
    let body = busy_call();
    let receipt = client(&van)
        .post_canvass_response(van_id(18372073), &body)
        .await
        .unwrap();
    assert_eq!((receipt.status, receipt.attempts), (204, 1));
    assert_eq!(
        van.canvass_posts(),
        vec![(
            18372073,
            json!({"canvassContext":{"contactTypeId":1,"inputTypeId":11,
                   "dateCanvassed":"2026-11-03T18:04:11-05:00",
                   "phone":{"dialingPrefix":"1","phoneNumber":"2125550101"},
                   "omitActivistCodeContactHistory":false},
                   "resultCodeId":18,"responses":null})
        )]
    );
    assert_eq!(van.count("POST", "/people/18372073/canvassResponses"), 1);
}

#[tokio::test]
async fn responses_are_posted_with_a_null_result_code() {
    let van = FakeVan::start(VanData::demo()).await;
    let body = CanvassResponse {
        context: CanvassContext {
            phone_id: Some(5_000_001),
            ..busy_call().context
        },
        outcome: CanvassOutcome::Responses(vec![
            ResponseItem::Survey {
                question_id: 2301,
                response_id: 9120,
            },
            ResponseItem::ActivistCode {
                activist_code_id: 4411,
                action: ActivistAction::Apply,
            },
        ]),
    };
    let receipt = client(&van)
        .post_canvass_response(van_id(18372073), &body)
        .await
        .unwrap();
    assert_eq!(receipt.status, 204);
    let posts = van.canvass_posts();
    assert_eq!(posts.len(), 1);
    let sent = &posts[0].1;
    assert_eq!(sent["resultCodeId"], json!(null));
    assert_eq!(sent["canvassContext"]["phoneId"], json!(5_000_001));
    assert_eq!(
        sent["responses"],
        json!([{"type":"SurveyResponse","surveyQuestionId":2301,"surveyResponseId":9120},
               {"type":"ActivistCode","activistCodeId":4411,"action":"Apply"}])
    );
}

#[tokio::test]
async fn a_rejected_post_keeps_vans_reason_and_is_not_retried() {
    let van = FakeVan::start(VanData::demo()).await;
    let van_client = client(&van);
    let body = CanvassResponse {
        outcome: CanvassOutcome::ResultCode(999),
        ..busy_call()
    };
    let err = van_client
        .post_canvass_response(van_id(18372073), &body)
        .await
        .unwrap_err();
    let errors = envelope(&err, 400);
    assert_eq!(errors[0].code, "INVALID_PARAMETER");
    assert_eq!(errors[0].properties, ["resultCodeId"]);
    assert!(!err.is_retryable());
    assert_eq!(van.requests().len(), 1);
    assert_eq!(van_client.requests_made(), 1);
    assert!(van.canvass_posts().is_empty());
}

#[tokio::test]
async fn a_post_for_an_unknown_person_is_a_404() {
    let van = FakeVan::start(VanData::demo()).await;
    let err = client(&van)
        .post_canvass_response(van_id(950_000_000), &busy_call())
        .await
        .unwrap_err();
    assert_eq!(err.status(), Some(404));
    assert!(!err.is_retryable());
    assert_eq!(van.requests().len(), 1);
    assert!(matches!(err, VanError::UnknownPerson { .. }), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with("VAN has no person with VAN id 950000000 in this database (voter_file"),
        "{text}"
    );
    assert!(text.contains("account number"), "{text}");
    assert_eq!(
        err.envelope_json().unwrap()["errors"][0]["code"],
        "NOT_FOUND"
    );
}

#[tokio::test]
async fn a_client_sending_another_user_name_is_let_in_by_key_and_mode() {
    let van = FakeVan::start(VanData::demo()).await;
    let other = VanClient::new(
        &van.base_url(),
        VanCredentials {
            application_name: "default".into(),
            api_key: VAN_VOTERFILE_KEY.into(),
        },
        DatabaseMode::VoterFile,
        options(),
    )
    .unwrap();
    assert_eq!(other.echo(&json!({"x": 1})).await.unwrap(), json!({"x": 1}));
    assert_eq!(
        van.requests()[0].application_name.as_deref(),
        Some("default")
    );
}

#[tokio::test]
async fn a_429_is_retried_after_the_wait_van_hinted() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(
        Fault::once(
            "canvassResponses",
            FaultKind::TooManyRequests { wait_ms: 150 },
        )
        .for_method("POST"),
    );
    let van_client = client(&van);
    let receipt = van_client
        .post_canvass_response(van_id(18372073), &busy_call())
        .await
        .unwrap();
    assert_eq!((receipt.status, receipt.attempts), (204, 2));

    let requests = van.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!((requests[0].status, requests[1].status), (429, 204));
    let waited = requests[1]
        .received_at
        .duration_since(requests[0].answered_at);
    assert!(
        waited >= Duration::from_millis(150),
        "retried after {waited:?}"
    );
    assert_eq!(van_client.rate_limited(), 1);
    assert_eq!(van_client.requests_made(), 2);
    assert_eq!(van.canvass_posts().len(), 1);
}

#[tokio::test]
async fn the_key_rate_limit_is_waited_out_and_counted() {
    let van = FakeVan::start(VanData::demo()).await;
    van.set_rate_limit(Some(RateLimit {
        burst: 2,
        per_second: 20,
    }));
    let van_client = client_with(
        &van,
        VAN_VOTERFILE_KEY,
        DatabaseMode::VoterFile,
        ClientOptions {
            retry: RetryPolicy {
                max_attempts: 10,
                ..options().retry
            },
            ..options()
        },
    );
    for n in 0..6 {
        assert_eq!(
            van_client.echo(&json!({ "n": n })).await.unwrap(),
            json!({ "n": n })
        );
    }
    let requests = van.requests();
    let limited = requests.iter().filter(|r| r.status == 429).count() as u64;
    assert!(
        limited >= 1,
        "a burst of 2 must be exceeded by 6 quick requests"
    );
    assert_eq!(van_client.rate_limited(), limited);
    assert_eq!(van_client.requests_made(), requests.len() as u64);
    assert_eq!(van_client.requests_made(), 6 + limited);
}

#[tokio::test]
async fn a_server_error_is_retried_until_it_succeeds() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once("surveyQuestions/2301", FaultKind::ServerError));
    van.inject(Fault::once("surveyQuestions/2301", FaultKind::AspNetError));
    let van_client = client(&van);
    let question = van_client.survey_question(2301).await.unwrap();
    assert_eq!(question.survey_question_id, 2301);
    let statuses: Vec<u16> = van.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [500, 500, 200]);
    assert_eq!(van_client.requests_made(), 3);
    assert_eq!(van_client.rate_limited(), 0);
}

#[tokio::test]
async fn server_errors_give_up_after_the_last_attempt_with_what_van_said() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once("echoes", FaultKind::ServerError).times(10));
    let van_client = client(&van);
    let err = van_client.echo(&json!({})).await.unwrap_err();
    let errors = envelope(&err, 500);
    assert_eq!(errors[0].code, "INTERNAL_SERVER_ERROR");
    assert!(errors[0].reference_code.is_some());
    assert!(err.is_retryable());
    assert_eq!(van.requests().len(), 4, "max_attempts is 4");
    assert_eq!(van_client.requests_made(), 4);
}

#[tokio::test]
async fn an_aspnet_exception_is_kept_as_its_raw_object() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once("canvassResponses", FaultKind::AspNetError).times(10));
    let err = client(&van)
        .post_canvass_response(van_id(18372073), &busy_call())
        .await
        .unwrap_err();
    assert_kept_raw(
        &err,
        500,
        "application/json",
        "System.NullReferenceException",
    );
    assert_eq!(
        err.envelope_json().unwrap()["exceptionType"],
        "System.NullReferenceException"
    );
    assert_eq!(van.requests().len(), 4);
    assert!(van.canvass_posts().is_empty());
}

#[tokio::test]
async fn an_html_bad_request_is_kept_raw_and_not_retried() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once("canvassResponses", FaultKind::HtmlBadRequest));
    let err = client(&van)
        .post_canvass_response(van_id(18372073), &busy_call())
        .await
        .unwrap_err();
    assert_kept_raw(
        &err,
        400,
        "text/html",
        "HTTP Error 400. The request URL is invalid.",
    );
    assert!(!err.is_retryable());
    assert_eq!(van.requests().len(), 1);
}

#[tokio::test]
async fn a_dropped_connection_is_retried() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once("canvassResponses", FaultKind::DropConnection).for_method("POST"));
    let van_client = client(&van);
    let receipt = van_client
        .post_canvass_response(van_id(18372073), &busy_call())
        .await
        .unwrap();
    assert_eq!((receipt.status, receipt.attempts), (204, 2));
    let statuses: Vec<u16> = van.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [0, 204], "the fake records a hang-up as status 0");
    assert_eq!(van.canvass_posts().len(), 1);
}

#[tokio::test]
async fn a_connection_that_always_drops_ends_as_a_transport_error() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once("echoes", FaultKind::DropConnection).times(10));
    let err = client(&van).echo(&json!({})).await.unwrap_err();
    match &err {
        VanError::Transport { kind, message } => {
            assert_eq!(*kind, TransportKind::Interrupted, "{message}");
            assert!(
                !message.contains("127.0.0.1"),
                "no URL in the text: {message}"
            );
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(err.is_retryable());
    assert_eq!(van.requests().len(), 4);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_retried() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once(
        "echoes",
        FaultKind::Delay(Duration::from_millis(600)),
    ));
    let van_client = client_with(
        &van,
        VAN_VOTERFILE_KEY,
        DatabaseMode::VoterFile,
        ClientOptions {
            request_timeout: Duration::from_millis(200),
            ..options()
        },
    );
    let body = json!({"slow": true});
    assert_eq!(van_client.echo(&body).await.unwrap(), body);
    assert_eq!(van_client.requests_made(), 2);
    assert_eq!(van.count("POST", "/echoes"), 2);
}

#[tokio::test]
async fn nothing_listening_is_a_connect_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let van_client = VanClient::new(
        &format!("http://127.0.0.1:{port}/v4"),
        VanCredentials {
            application_name: VAN_APPLICATION.into(),
            api_key: VAN_VOTERFILE_KEY.into(),
        },
        DatabaseMode::VoterFile,
        ClientOptions {
            retry: RetryPolicy {
                max_attempts: 2,
                ..options().retry
            },
            ..options()
        },
    )
    .unwrap();
    let err = van_client.echo(&json!({})).await.unwrap_err();
    assert!(
        matches!(
            err,
            VanError::Transport {
                kind: TransportKind::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        van_client.requests_made(),
        2,
        "connect failures are retried"
    );
}

#[tokio::test]
async fn find_returns_the_matched_van_id_without_following_the_redirect() {
    let van = FakeVan::start(VanData::demo()).await;
    let van_client = client(&van);
    let by_phone = FindPerson {
        first_name: Some("Alex".into()),
        last_name: Some("Sample".into()),
        phone: Some(PhoneNumber::parse("(212) 555-0101").unwrap()),
        ..FindPerson::default()
    };
    assert_eq!(
        van_client.find_person(&by_phone).await.unwrap(),
        Some(van_id(18372073))
    );
    let by_email = FindPerson {
        email: Some("jordan.example@example.com".into()),
        ..FindPerson::default()
    };
    assert_eq!(
        van_client.find_person(&by_email).await.unwrap(),
        Some(van_id(18372080))
    );

    let requests = van.requests();
    assert_eq!(requests.len(), 2, "the 302 must not be followed");
    assert!(
        requests
            .iter()
            .all(|r| r.status == 302 && r.method == "POST")
    );
    assert_eq!(van.count("GET", "/people"), 0);
    assert_eq!(
        requests[0].body,
        Some(json!({"firstName":"Alex","lastName":"Sample",
                    "phones":[{"phoneNumber":"2125550101"}]}))
    );
}

#[tokio::test]
async fn find_without_a_match_is_none() {
    let van = FakeVan::start(VanData::demo()).await;
    let nobody = FindPerson {
        first_name: Some("Nobody".into()),
        last_name: Some("Known".into()),
        phone: Some(PhoneNumber::parse("2125550199").unwrap()),
        ..FindPerson::default()
    };
    assert_eq!(client(&van).find_person(&nobody).await.unwrap(), None);
    let requests = van.requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].status, 404);
}

#[tokio::test]
async fn find_with_too_little_to_match_on_is_vans_400() {
    let van = FakeVan::start(VanData::demo()).await;
    let thin = FindPerson {
        first_name: Some("Alex".into()),
        ..FindPerson::default()
    };
    let err = client(&van).find_person(&thin).await.unwrap_err();
    assert_eq!(err.status(), Some(400));
    assert!(!err.is_retryable());
    assert_eq!(van.requests().len(), 1);
}

#[tokio::test]
async fn a_person_is_read_with_their_phone_ids() {
    let van = FakeVan::start(VanData::demo()).await;
    let person = client(&van)
        .person_with_phones(van_id(18372073))
        .await
        .unwrap();
    assert_eq!(person.van_id, van_id(18372073));
    let phones = person.phones.as_deref().unwrap();
    assert_eq!(phones[0].phone_id, 5_000_001);
    assert_eq!(
        person.phone_id_for(&PhoneNumber::parse("212-555-0101").unwrap()),
        Some(5_000_001)
    );
    let debug = format!("{person:?}");
    assert!(
        !debug.contains("Alex") && !debug.contains("2125550101"),
        "{debug}"
    );
    let requests = van.requests();
    assert_eq!(requests[0].path, "/people/18372073");
    assert_eq!(query(&requests[0], "$expand"), Some("phones"));
}

#[tokio::test]
async fn an_unknown_person_is_a_404() {
    let van = FakeVan::start(VanData::demo()).await;
    let err = client(&van)
        .person_with_phones(van_id(950_000_000))
        .await
        .unwrap_err();
    assert_eq!(envelope(&err, 404)[0].code, "NOT_FOUND");
}

#[tokio::test]
async fn clones_share_one_set_of_counters() {
    let van = FakeVan::start(VanData::demo()).await;
    van.inject(Fault::once(
        "echoes",
        FaultKind::TooManyRequests { wait_ms: 1 },
    ));
    let first = client(&van);
    let second = first.clone();
    let (one, two) = (json!(1), json!(2));
    let (a, b) = tokio::join!(first.echo(&one), second.echo(&two));
    assert_eq!((a.unwrap(), b.unwrap()), (json!(1), json!(2)));
    assert_eq!(first.requests_made(), 3);
    assert_eq!(second.requests_made(), 3);
    assert_eq!(second.rate_limited(), 1);
    assert_eq!(van.requests().len(), 3);
}
