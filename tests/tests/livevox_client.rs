//! The LiveVox client against the fake LiveVox: one shared session, re-login when a
//! session lapses, paging, term codes, and yesterday's calls flowing into `Call`s.
#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::time::Duration;

use callsync::call::AccountPattern;
use callsync::livevox::{
    CallDetailSource, LiveVoxClient, LiveVoxCredentials, LiveVoxError, LiveVoxOptions, RowOutcome,
    normalise,
};
use callsync::retry::RetryPolicy;
use callsync_tests::demo_data::{LV_ACCESS_TOKEN, LV_CLIENT, LV_PASSWORD, LV_USER, demo_today};
use callsync_tests::fake_livevox::{FakeLiveVox, LiveVoxData, start_of_day_ms};
use jiff::Timestamp;
use jiff::tz::TimeZone;

fn credentials() -> LiveVoxCredentials {
    LiveVoxCredentials {
        access_token: LV_ACCESS_TOKEN.into(),
        client_name: LV_CLIENT.into(),
        user_name: LV_USER.into(),
        password: LV_PASSWORD.into(),
    }
}

fn options() -> LiveVoxOptions {
    LiveVoxOptions {
        // Quick retries: nothing here should need one, and a test must not sit in backoff.
        retry: RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(5),
            max_delay: Duration::from_millis(20),
            deadline: Duration::from_secs(5),
        },
        ..LiveVoxOptions::default()
    }
}

async fn start() -> (FakeLiveVox, LiveVoxClient) {
    let fake = FakeLiveVox::start(LiveVoxData::demo()).await;
    let client = LiveVoxClient::new(&fake.base_url(), credentials(), options()).unwrap();
    (fake, client)
}

/// The whole UTC day before the fake's today: what the reporting API will serve.
fn yesterday() -> (Timestamp, Timestamp) {
    let end = start_of_day_ms(demo_today());
    (
        Timestamp::from_millisecond(end - 86_400_000).unwrap(),
        Timestamp::from_millisecond(end).unwrap(),
    )
}

#[tokio::test]
async fn one_login_serves_many_calls_and_every_request_carries_the_session() {
    let (fake, lv) = start().await;
    assert_eq!(fake.logins(), 0, "the login waits until the first request");

    assert_eq!(lv.call_centers().await.unwrap().len(), 2);
    assert_eq!(lv.services(None).await.unwrap().len(), 3);
    assert_eq!(lv.services(Some(20)).await.unwrap().len(), 1);
    for service in [1001, 1002, 1003] {
        assert!(!lv.term_codes(service).await.unwrap().is_empty());
    }

    assert_eq!(fake.logins(), 1);
    let requests = fake.requests();
    assert_eq!(requests[0].path, "/session/login");
    assert_eq!(
        requests[0].status, 200,
        "the fake accepts only the right LV-Access token"
    );
    for r in &requests[1..] {
        assert!(r.has_session, "{} {} sent no LV-Session", r.method, r.path);
        assert_eq!(r.status, 200, "{} {}", r.method, r.path);
    }
    assert_eq!(lv.requests_made(), requests.len() as u64);
}

#[tokio::test]
async fn tasks_needing_a_session_at_once_share_one_login() {
    let (fake, lv) = start().await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let lv = lv.clone();
            tokio::spawn(async move { lv.services(None).await })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap().unwrap().len(), 3);
    }
    assert_eq!(fake.logins(), 1);
    assert_eq!(fake.count("POST", "/session/login"), 1);
}

#[tokio::test]
async fn an_expired_session_is_replaced_and_the_request_then_succeeds() {
    let (fake, lv) = start().await;
    lv.call_centers().await.unwrap();
    fake.expire_sessions();

    assert_eq!(lv.services(None).await.unwrap().len(), 3);

    assert_eq!(fake.logins(), 2);
    let tries: Vec<u16> = fake
        .requests()
        .iter()
        .filter(|r| r.path == "/configuration/services")
        .map(|r| r.status)
        .collect();
    assert_eq!(
        tries,
        [401, 200],
        "refused once on the old session, then served"
    );
}

#[tokio::test]
async fn a_session_idle_past_the_limit_is_replaced_before_it_is_used() {
    let fake = FakeLiveVox::start(LiveVoxData::demo()).await;
    let lv = LiveVoxClient::new(
        &fake.base_url(),
        credentials(),
        LiveVoxOptions {
            session_idle_limit: Duration::ZERO,
            ..options()
        },
    )
    .unwrap();
    lv.call_centers().await.unwrap();
    lv.call_centers().await.unwrap();

    assert_eq!(fake.logins(), 2, "the second call logged in again first");
    assert!(
        fake.requests().iter().all(|r| r.status != 401),
        "no request was refused"
    );
}

#[tokio::test]
async fn wrong_credentials_fail_once_and_are_not_retried() {
    let fake = FakeLiveVox::start(LiveVoxData::demo()).await;
    for creds in [
        LiveVoxCredentials {
            password: "not-the-password".into(),
            ..credentials()
        },
        LiveVoxCredentials {
            access_token: "not-the-token".into(),
            ..credentials()
        },
    ] {
        let lv = LiveVoxClient::new(&fake.base_url(), creds, options()).unwrap();
        let err = lv.services(None).await.unwrap_err();
        assert!(
            matches!(err, LiveVoxError::Login { status: 401, .. }),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(text.contains("check the access token"), "{text}");
        assert!(
            !text.contains("not-the-password") && !text.contains("not-the-token"),
            "{text}"
        );
        assert_eq!(lv.requests_made(), 1);
    }
    assert_eq!(fake.count("POST", "/session/login"), 2);
    assert_eq!(fake.count("GET", "/configuration"), 0);
    assert_eq!(fake.logins(), 0);
}

#[tokio::test]
async fn lists_are_read_across_pages_by_following_next() {
    let fake = FakeLiveVox::start(LiveVoxData::demo()).await;
    let lv = LiveVoxClient::new(
        &fake.base_url(),
        credentials(),
        LiveVoxOptions {
            page_size: 2,
            ..options()
        },
    )
    .unwrap();

    let services = lv.services(None).await.unwrap();
    let ids: Vec<u64> = services.iter().map(|s| s.service_id).collect();
    assert_eq!(ids, [1001, 1002, 1003]);
    assert_eq!(fake.count("GET", "/configuration/services"), 2);

    let (from, to) = yesterday();
    let details = lv.call_details(from, to, &[]).await.unwrap();
    assert_eq!(details.len(), 36);
    assert_eq!(
        fake.count("POST", "/reporting/callDetail"),
        18,
        "POST pages end on a blank next"
    );
    let mut ids: Vec<_> = details.iter().map(|d| d.call_id.clone().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 36, "no page read twice");
}

#[tokio::test]
async fn term_codes_are_listed_per_service() {
    let (fake, lv) = start().await;
    let want = fake.with_data(|d| d.term_codes.iter().filter(|t| t.service_id == 1002).count());
    let codes = lv.term_codes(1002).await.unwrap();
    assert_eq!(codes.len(), want);
    assert!(codes.iter().all(|c| c.service_id == 1002));
    let names: Vec<&str> = codes.iter().map(|c| c.name.as_str()).collect();
    assert!(
        names.contains(&"Agent Cust 1") && names.contains(&"No Answer"),
        "{names:?}"
    );
    let other = lv.term_codes(1003).await.unwrap();
    assert!(
        other
            .iter()
            .all(|c| !codes.iter().any(|mine| mine.id == c.id))
    );
}

#[tokio::test]
async fn yesterdays_call_details_become_calls_through_the_shared_normalisation() {
    let (fake, lv) = start().await;
    let starts: HashMap<String, i64> = fake.with_data(|d| {
        d.call_details
            .iter()
            .map(|c| (c.call_id.to_string(), c.start.millis()))
            .collect()
    });
    let (from, to) = yesterday();
    let details = lv.call_details(from, to, &[]).await.unwrap();
    assert_eq!(details.len(), 36);

    let zone = TimeZone::get("America/New_York").unwrap();
    let accounts = AccountPattern::default();
    let (mut calls, mut bad, mut tests) = (Vec::new(), Vec::new(), 0);
    for (i, detail) in details.iter().enumerate() {
        match normalise(detail.to_raw(i as u64), &accounts, &zone) {
            RowOutcome::Call(call) => calls.push(call),
            RowOutcome::Bad(err) => bad.push(err),
            RowOutcome::TestAccount => tests += 1,
        }
    }
    assert_eq!((calls.len(), bad.len(), tests), (33, 1, 2));

    // Starts came as numbers and as strings of digits; both must land on the same instant.
    for call in &calls {
        assert_eq!(
            call.started_at.as_millisecond(),
            starts[call.call_id.0.as_str()],
            "{}",
            call.call_id
        );
        assert_eq!(call.local_date.to_string(), "2026-11-03");
        assert!(call.ended_at.unwrap() > call.started_at);
    }
    assert!(
        calls.iter().any(|c| c.agent().is_empty()),
        "system results have no agent"
    );
    assert!(calls.iter().any(|c| c.result.as_str() == "agent cust 1"));

    let err = &bad[0];
    assert_eq!(
        (err.column.as_str(), err.value.as_str()),
        ("account", "walk-in-no-account")
    );
    assert!(err.file.contains("callDetail"), "{err}");
    assert_eq!(
        details[err.line as usize - 1].account.as_deref(),
        Some("walk-in-no-account")
    );
}

#[tokio::test]
async fn call_details_can_be_limited_to_services_and_split_past_150() {
    let (fake, lv) = start().await;
    let (from, to) = yesterday();

    let details = lv.call_details(from, to, &[1001]).await.unwrap();
    assert_eq!(details.len(), 12);
    assert!(
        details
            .iter()
            .all(|d| d.service_id.as_deref() == Some("1001"))
    );
    let body = fake.requests().last().unwrap().body.clone().unwrap();
    assert_eq!(
        body["filter"]["service"],
        serde_json::json!([{ "id": 1001 }])
    );

    let many: Vec<u64> = (1001..1201).collect();
    assert_eq!(lv.call_details(from, to, &many).await.unwrap().len(), 36);
    assert_eq!(
        fake.count("POST", "/reporting/callDetail"),
        3,
        "200 services went as 150 + 50"
    );
}

#[tokio::test]
async fn a_window_reaching_today_is_refused_and_not_retried() {
    let (fake, lv) = start().await;
    let (_, today) = yesterday();
    let err = lv
        .call_details(
            today,
            today
                .checked_add(jiff::SignedDuration::from_hours(1))
                .unwrap(),
            &[],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, LiveVoxError::Api { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("only days before today"), "{err}");
    assert_eq!(fake.count("POST", "/reporting/callDetail"), 1);
}
