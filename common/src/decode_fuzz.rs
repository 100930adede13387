//! A bounded, seeded fuzz of every decoder of what VAN, LiveVox and the sync queue send us:
//! real sample answers, mutated (byte flips, truncations, huge numbers, deep nesting, odd
//! unicode, invalid UTF-8), fed to each decoder. Nothing may panic; a failure is an error
//! value. Seeded, so a failure repeats; small, so it runs with every test run.
#![allow(clippy::unwrap_used)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use crate::livevox::model::{ErrorBody, LoginResponse};
use crate::livevox::{CallCenter, CallDetail, Service, TermCode};
use crate::ports::SyncMessage;
use crate::retry::{RetryAdvice, Retryable};
use crate::van::model::{FindAnswer, read_list};
use crate::van::{
    ActivistCode, ContactType, InputType, MAX_WAIT_HINT, Person, ResultCode, SurveyQuestion,
    VanError, parse_wait_hint,
};

const ITERATIONS: usize = 2_000;
const SEED: u64 = 0x00ca_115e_7c0d_e5ee;

/// Answers as VAN sends them (shared/reference/van-api.md).
const VAN_SAMPLES: &[&str] = &[
    r#"{"items":[{"surveyQuestionId":2300,"type":"Candidate","cycle":2026,"name":"Support for Smith","mediumName":"Support for","shortName":"Support","scriptQuestion":"Support for Smith?","status":"Active","responses":[{"surveyResponseId":9100,"name":"Strong support","mediumName":"Strong","shortName":"SS"}]}],"nextPageLink":"https://api.securevan.com/v4/surveyQuestions?$top=50&$skip=50","count":30}"#,
    r#"{"items":[{"activistCodeId":4400,"type":"Volunteer","name":"Volunteer prospect","mediumName":"Volunteer","shortName":"VP","description":null,"scriptQuestion":"Mark","status":"Active"}],"nextPageLink":null,"count":1}"#,
    r#"[{"contactTypeId":1,"name":"Phone","channelTypeName":"Phone"},{"contactTypeId":67,"name":"Phone Bank","channelTypeName":"Phone"}]"#,
    r#"[{"inputTypeId":11,"name":"API"},{"inputTypeId":4,"name":"Bulk"}]"#,
    r#"[{"resultCodeId":18,"name":"Busy","mediumName":"Busy","shortName":"BZ"},{"resultCodeId":20,"name":"Wrong Number","mediumName":null,"shortName":"WN"}]"#,
    r#"{"vanId":18372073,"firstName":"Alex","lastName":"Sample","phones":[{"phoneId":5000001,"phoneNumber":"2125550101","phoneType":"Cell","isPreferred":true,"dialingPrefix":"1"}],"emails":null}"#,
    r#"{"vanId":18372073,"status":"Matched"}"#,
    r#"{"vanId":null,"status":"Unmatched"}"#,
    r#"{"errors":[{"code":"INVALID_PARAMETER","text":"'resultCodeId' must be a valid result code in the current context.","properties":["resultCodeId"]}]}"#,
    r#"{"errors":[{"code":"NOT_FOUND","text":"The requested resource could not be found.","properties":null}]}"#,
    r#"{"errors":[{"code":"429","text":"Rate limit exceeded. Try again in 30 ms."}]}"#,
    r#"{"errors":[{"code":"INTERNAL_SERVER_ERROR","text":"An unknown error occurred","referenceCode":"1A2B-3C4D"}]}"#,
    r#"{"message":"An error has occurred.","exceptionMessage":"Object reference not set to an instance of an object.","exceptionType":"System.NullReferenceException","stackTrace":"   at Van.Api.Controllers.PeopleController.PostCanvassResponses(Int32 vanId)"}"#,
    "<!DOCTYPE html><html><head><title>404 - File or directory not found.</title></head><body><h2>404 - File or directory not found.</h2></body></html>",
    "https://api.securevan.com/v4/people/18372073",
];

/// Answers as the LiveVox API sends them (shared/reference/livevox-api.md).
const LIVEVOX_SAMPLES: &[&str] = &[
    r#"{"callCenter":[{"callCenterId":10,"name":"Main Call Center"}],"next":"/configuration/callCenters?count=1000&offset=1000"}"#,
    r#"{"service":[{"serviceId":1001,"name":"NY-14 Persuasion","callCenterId":10}],"next":null}"#,
    r#"{"termCode":[{"id":167,"name":"Agent Cust 1","serviceId":1001,"termCategoryId":1,"lvResultId":700,"reportOrder":1}]}"#,
    r#"{"callDetail":[{"callId":"101312525040","account":"ny14-van-18372073","firstName":"Alex","lastName":"Sample","phoneDialed":"2125550101","start":1763766245000,"end":"1763766290000","agentLogin":"agent01","termCodeId":167,"result":"Agent Cust 1","serviceId":1001,"campaignId":50000}],"next":""}"#,
    r#"{"sessionId":"a1b2c3d4-session","userId":42,"clientId":7,"daysUntilPasswordExpires":12}"#,
    r#"{"code":401,"message":"Session is invalid or has expired"}"#,
    r#"{"code":"not a number","message":null}"#,
];

/// Bodies of the SQS messages `sync-call` reads.
const QUEUE_SAMPLES: &[&str] = &[
    r#"{"candidate":"demo","date":"2026-11-03","call_id":"101312525040"}"#,
    r#"{"candidate":"ny-14","date":"2028-02-29","call_id":"row:inbox/demo/a.csv:10"}"#,
];

const HUGE_NUMBERS: &[&str] = &[
    "99999999999999999999999",
    "18446744073709551616",
    "-9223372036854775809",
    "1e400",
    "-1e400",
    "1.7976931348623157e309",
    "0.000000000000000000000000000001",
    "-0",
    "4294967296",
    "2147483648",
];

const ODD_TEXT: &[&str] = &[
    "\u{0}",
    "\u{feff}",
    "\u{202e}",
    "\u{10ffff}",
    "é",
    "👩‍👩‍👧",
    "\\u0000",
    "\\ud800",
    "\\udfff\\ud800",
    "\"",
    "\\",
    "Try again in 99999999999999999999999 ms.",
    "Try again in 1e9 s.",
];

const INVALID_UTF8: &[&[u8]] = &[
    b"\xff",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xf4\x90\x80\x80",
];

fn mutate(rng: &mut fastrand::Rng, sample: &[u8]) -> Vec<u8> {
    let mut bytes = sample.to_vec();
    for _ in 0..rng.usize(1..=3) {
        let at = rng.usize(0..=bytes.len());
        match rng.u8(0..9) {
            0 => {
                if !bytes.is_empty() {
                    let i = rng.usize(0..bytes.len());
                    bytes[i] ^= 1 << rng.u8(0..8);
                }
            }
            1 => bytes.truncate(at),
            2 => {
                let n = HUGE_NUMBERS[rng.usize(0..HUGE_NUMBERS.len())];
                bytes.splice(at..at, n.bytes());
            }
            3 => {
                // A number replaced by a huge one, keeping the JSON valid around it.
                if let Some(start) = (at..bytes.len()).find(|&i| bytes[i].is_ascii_digit()) {
                    let end = (start..bytes.len())
                        .find(|&i| !bytes[i].is_ascii_digit())
                        .unwrap_or(bytes.len());
                    let n = HUGE_NUMBERS[rng.usize(0..HUGE_NUMBERS.len())];
                    bytes.splice(start..end, n.bytes());
                }
            }
            4 => {
                // serde_json refuses nesting beyond 128 levels; go past it.
                let depth = rng.usize(1..200);
                let (open, close) = if rng.bool() {
                    (b'[', b']')
                } else {
                    (b'{', b'}')
                };
                let mut nested = Vec::with_capacity(bytes.len() + 2 * depth);
                for _ in 0..depth {
                    nested.push(open);
                    if open == b'{' {
                        nested.extend_from_slice(br#""a":"#);
                    }
                }
                nested.extend_from_slice(&bytes);
                nested.extend(std::iter::repeat_n(close, depth));
                bytes = nested;
            }
            5 => {
                let t = ODD_TEXT[rng.usize(0..ODD_TEXT.len())];
                bytes.splice(at..at, t.bytes());
            }
            6 => {
                let t = INVALID_UTF8[rng.usize(0..INVALID_UTF8.len())];
                bytes.splice(at..at, t.iter().copied());
            }
            7 => {
                // A chunk of the answer repeated elsewhere in it.
                if !bytes.is_empty() {
                    let from = rng.usize(0..bytes.len());
                    let to = rng.usize(from..=bytes.len().min(from + 64));
                    let chunk = bytes[from..to].to_vec();
                    bytes.splice(at..at, chunk);
                }
            }
            _ => {
                if at < bytes.len() {
                    bytes.remove(at);
                }
            }
        }
    }
    bytes
}

/// `T` decoded from the bytes and from a value, as the clients do; either way a result.
fn typed<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Option<T> {
    let direct = serde_json::from_slice::<T>(bytes).ok();
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        let _ = serde_json::from_value::<T>(value);
    }
    direct
}

fn van_decoders(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    const JSON: Option<&str> = Some("application/json; charset=utf-8");
    const HTML: Option<&str> = Some("text/html");
    // The 429 classification reads the wait hint from the items or the whole body.
    for (status, content_type) in [(404, JSON), (429, JSON), (500, HTML)] {
        let err = VanError::from_answer(status, content_type, bytes);
        assert!(!err.to_string().is_empty());
        let _ = err.envelope_json();
        let _ = err.errors();
        if let RetryAdvice::After(wait) = err.retry_advice() {
            assert!(wait <= MAX_WAIT_HINT, "{wait:?}");
        }
        if let Ok(id) = crate::values::VanId::new(18_372_073) {
            let person = err.for_person(id, crate::van::DatabaseMode::VoterFile);
            assert!(!person.to_string().is_empty());
        }
    }
    if let Some(wait) = parse_wait_hint(&text) {
        assert!(wait <= MAX_WAIT_HINT, "{wait:?}");
    }
    if let Ok(value) = serde_json::from_slice::<Value>(bytes) {
        let _ = read_list::<SurveyQuestion>(value.clone());
        let _ = read_list::<ActivistCode>(value.clone());
        let _ = read_list::<ContactType>(value.clone());
        let _ = read_list::<InputType>(value.clone());
        let _ = read_list::<ResultCode>(value);
    }
    if let Err(e) = serde_json::from_slice::<SurveyQuestion>(bytes) {
        assert!(
            !VanError::decode(200, "survey question", &e)
                .to_string()
                .is_empty()
        );
    }
    let _ = typed::<ActivistCode>(bytes);
    if let Some(person) = typed::<Person>(bytes) {
        let _ = format!("{person:?}");
        for phone in person.phones.iter().flatten() {
            let _ = phone.number();
            let _ = format!("{phone:?}");
        }
        if let Ok(phone) = crate::values::PhoneNumber::parse("2125550101") {
            let _ = person.phone_id_for(&phone);
        }
    }
    let _ = typed::<FindAnswer>(bytes);
    let _ = crate::van::client::van_id_from_location(&text);
}

fn livevox_decoders(bytes: &[u8]) {
    let _ = crate::livevox::client::error_envelope(reqwest::StatusCode::UNAUTHORIZED, bytes);
    let _ = crate::livevox::client::error_envelope(reqwest::StatusCode::ACCEPTED, bytes);
    let _ = typed::<LoginResponse>(bytes);
    let _ = typed::<ErrorBody>(bytes);
    // The client reads a page as JSON, then the list under its key, then `next`.
    let Ok(mut page) = serde_json::from_slice::<Value>(bytes) else {
        return;
    };
    let _ = page.get("next").and_then(Value::as_str).map(|next| {
        reqwest::Url::parse("https://api.livevox.com/reporting/callDetail")
            .ok()
            .map(|base| base.join(next.trim()))
    });
    for key in ["callCenter", "service", "termCode"] {
        if let Some(list) = page.get(key).cloned() {
            let _ = Vec::<CallCenter>::deserialize(list.clone());
            let _ = Vec::<Service>::deserialize(list.clone());
            let _ = Vec::<TermCode>::deserialize(list);
        }
    }
    if let Some(list) = page.get_mut("callDetail").map(Value::take)
        && let Ok(calls) = Vec::<CallDetail>::deserialize(list)
    {
        for (i, call) in calls.iter().enumerate() {
            let _ = call.to_raw(i as u64);
            let _ = format!("{call:?}");
        }
    }
    let _ = typed::<CallDetail>(bytes);
}

fn queue_decoders(bytes: &[u8]) {
    let text = String::from_utf8_lossy(bytes);
    if let Err(e) = serde_json::from_str::<SyncMessage>(&text) {
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn no_answer_of_van_livevox_or_the_queue_panics_a_decoder() {
    let started = Instant::now();
    let mut rng = fastrand::Rng::with_seed(SEED);
    let samples: Vec<&str> = VAN_SAMPLES
        .iter()
        .chain(LIVEVOX_SAMPLES)
        .chain(QUEUE_SAMPLES)
        .copied()
        .collect();
    // The samples themselves first, then their mutations.
    let inputs = samples
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .chain((0..ITERATIONS).map(|_| {
            let sample = samples[rng.usize(0..samples.len())];
            mutate(&mut rng, sample.as_bytes())
        }));
    for (i, input) in inputs.enumerate() {
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            van_decoders(&input);
            livevox_decoders(&input);
            queue_decoders(&input);
        }));
        assert!(
            outcome.is_ok(),
            "input {i} (seed {SEED:#x}) panicked a decoder: {:?}",
            String::from_utf8_lossy(&input)
        );
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the fuzz loop took {:?}",
        started.elapsed()
    );
}

#[test]
fn the_samples_decode_so_the_fuzz_starts_from_real_answers() {
    let page = serde_json::from_str::<Value>(VAN_SAMPLES[0]).unwrap();
    assert_eq!(read_list::<SurveyQuestion>(page).unwrap().0.len(), 1);
    let person: Person = serde_json::from_str(VAN_SAMPLES[5]).unwrap();
    assert_eq!(person.phones.unwrap()[0].phone_id, 5_000_001);
    let err = VanError::from_answer(429, Some("application/json"), VAN_SAMPLES[10].as_bytes());
    assert_eq!(
        err.retry_advice(),
        RetryAdvice::After(Duration::from_millis(30))
    );
    let page: Value = serde_json::from_str(LIVEVOX_SAMPLES[3]).unwrap();
    let calls = Vec::<CallDetail>::deserialize(page["callDetail"].clone()).unwrap();
    assert_eq!(calls[0].account.as_deref(), Some("ny14-van-18372073"));
    let login: LoginResponse = serde_json::from_str(LIVEVOX_SAMPLES[4]).unwrap();
    assert_eq!(login.session_id, "a1b2c3d4-session");
    for body in QUEUE_SAMPLES {
        serde_json::from_str::<SyncMessage>(body).unwrap();
    }
}
