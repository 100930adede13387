//! What can go wrong talking to VAN, kept as VAN said it, and whether trying again helps.

use std::fmt;
use std::sync::LazyLock;
use std::time::Duration;

use regex::Regex;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::model::null_as_default;
use crate::retry::{RetryAdvice, Retryable};
use crate::values::DatabaseMode;
use crate::values::VanId;

/// How much of an unexpected body is kept: enough to read an IIS page or an ASP.NET
/// stack trace, small enough for a ledger item.
pub const MAX_KEPT_BODY: usize = 4 * 1024;

/// One entry of VAN's error envelope `{"errors":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VanErrorItem {
    /// Upper snake case (`INVALID_PARAMETER`), or the string `"429"` on a rate limit.
    #[serde(default, deserialize_with = "string_or_number")]
    pub code: String,
    #[serde(default, deserialize_with = "null_as_default")]
    pub text: String,
    /// Paths of the offending fields, e.g. `responses[0].surveyQuestionId`.
    #[serde(
        default,
        deserialize_with = "null_as_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub properties: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_url: Option<String>,
    /// Anything else VAN put in the item, so the envelope can be kept verbatim.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

/// Which part of the conversation failed below HTTP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportKind {
    /// No answer within the connect or request timeout.
    Timeout,
    /// The connection could not be opened.
    Connect,
    /// The connection broke while the request or the answer was on the wire.
    Interrupted,
    /// Anything else (a request that could not even be built).
    Other,
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Interrupted => "interrupted",
            Self::Other => "other",
        })
    }
}

/// A failed VAN request.
///
/// Texts never hold the API key, the request body, or a URL: VAN's own error texts
/// name fields and ids, not people.
#[derive(Debug, thiserror::Error)]
pub enum VanError {
    /// VAN answered with its error envelope.
    #[error("VAN answered {status}: {}", summarise(errors))]
    Api {
        status: u16,
        errors: Vec<VanErrorItem>,
    },
    /// 404 to a post for a person: the database the key opens holds nobody with this id.
    /// Usually the dialer's account number does not carry this database's VAN id, or the
    /// candidate is set to the other database mode. Never retried.
    #[error(
        "VAN has no person with VAN id {van_id} in this database ({}): {}. Check that the dialer's account number holds this person's VAN id, and that the candidate's van.database_mode is the database the id comes from",
        mode_name(*mode),
        summarise(errors)
    )]
    UnknownPerson {
        van_id: VanId,
        mode: DatabaseMode,
        errors: Vec<VanErrorItem>,
    },
    /// 429. VAN sends no Retry-After header; `wait` comes from "Try again in N ms."
    #[error("VAN rate limit exceeded{}", wait.map(|w| format!(", asked to wait {} ms", w.as_millis())).unwrap_or_default())]
    RateLimited {
        wait: Option<Duration>,
        errors: Vec<VanErrorItem>,
    },
    /// An answer that is not VAN's envelope: an IIS HTML page, an ASP.NET exception
    /// object, or a success status with a body that is not JSON. `body` is the raw body,
    /// cut to [`MAX_KEPT_BODY`] bytes.
    #[error("VAN answered {status} with an unexpected {} body", content_type.as_deref().unwrap_or("untyped"))]
    Unexpected {
        status: u16,
        content_type: Option<String>,
        body: String,
    },
    #[error("could not reach VAN ({kind}): {message}")]
    Transport {
        kind: TransportKind,
        message: String,
    },
    /// A success answer whose JSON does not have the expected shape.
    #[error("VAN's {what} answer ({status}) could not be read: {message}")]
    Decode {
        status: u16,
        what: &'static str,
        message: String,
    },
    #[error("VAN client configuration: {0}")]
    Config(String),
    /// The request could not be counted first, so it was not sent (an uncounted request
    /// would let the daily budget overspend). Worth trying again.
    #[error("the VAN request was not sent: it could not be counted ({0})")]
    Uncounted(String),
    /// The key's rate limit has no slot for it within this batch, so it was not sent.
    /// Worth trying again later (the message's next delivery), not within this batch.
    #[error("the VAN request was not sent: {0}")]
    NoSlot(String),
    /// The day's cap on VAN requests is reached, so it was not sent. Not worth trying again
    /// today.
    #[error("the VAN request was not sent: {0}")]
    OverCap(String),
}

fn mode_name(mode: DatabaseMode) -> &'static str {
    match mode {
        DatabaseMode::VoterFile => "voter_file, password suffix |0",
        DatabaseMode::MyCampaign => "my_campaign, password suffix |1",
    }
}

fn summarise(errors: &[VanErrorItem]) -> String {
    if errors.is_empty() {
        return "no error details".into();
    }
    errors
        .iter()
        .map(|e| {
            let mut s = format!("{} {:?}", e.code, e.text);
            if !e.properties.is_empty() {
                s.push_str(&format!(" [{}]", e.properties.join(", ")));
            }
            if let Some(reference) = &e.reference_code {
                s.push_str(&format!(" (reference {reference})"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join("; ")
}

impl VanError {
    /// The HTTP status VAN answered with, if it answered at all.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } | Self::Unexpected { status, .. } => Some(*status),
            Self::UnknownPerson { .. } => Some(404),
            Self::Decode { status, .. } => Some(*status),
            Self::RateLimited { .. } => Some(429),
            Self::Transport { .. }
            | Self::Config(_)
            | Self::Uncounted(_)
            | Self::NoSlot(_)
            | Self::OverCap(_) => None,
        }
    }

    /// VAN's error items, empty when the answer carried none.
    pub fn errors(&self) -> &[VanErrorItem] {
        match self {
            Self::Api { errors, .. }
            | Self::RateLimited { errors, .. }
            | Self::UnknownPerson { errors, .. } => errors,
            _ => &[],
        }
    }

    /// What VAN said, as JSON for the ledger: the `{"errors":[…]}` envelope as received;
    /// for an unexpected answer the raw JSON object (ASP.NET exceptions) or
    /// `{"status","contentType","body"}`. `None` when VAN said nothing (no answer, or a
    /// success answer we could not read).
    pub fn envelope_json(&self) -> Option<Value> {
        Some(match self {
            Self::Api { errors, .. }
            | Self::RateLimited { errors, .. }
            | Self::UnknownPerson { errors, .. } => serde_json::json!({ "errors": errors }),
            Self::Unexpected {
                status,
                content_type,
                body,
            } => match serde_json::from_str::<Value>(body) {
                Ok(value @ Value::Object(_)) => value,
                _ => serde_json::json!({
                    "status": status,
                    "contentType": content_type,
                    "body": body,
                }),
            },
            Self::Transport { .. }
            | Self::Decode { .. }
            | Self::Config(_)
            | Self::Uncounted(_)
            | Self::NoSlot(_)
            | Self::OverCap(_) => {
                return None;
            }
        })
    }

    /// Whether the same request may succeed later: what the client retries at once, and a
    /// request the rate limit had no slot for (left for a later delivery, never retried
    /// within the batch: see [`RetryAdvice`]).
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NoSlot(_)) || self.retry_advice() != RetryAdvice::Never
    }

    /// Turns a non-success answer into the error it stands for. The Content-Type decides
    /// whether the body is read as JSON at all.
    pub(crate) fn from_answer(status: u16, content_type: Option<&str>, body: &[u8]) -> Self {
        let envelope = if is_json(content_type) {
            serde_json::from_slice::<Envelope>(body)
                .ok()
                .and_then(|e| e.errors)
        } else {
            None
        };
        if status == 429 {
            let errors = envelope.unwrap_or_default();
            let wait = errors
                .iter()
                .filter_map(|e| parse_wait_hint(&e.text))
                .max()
                .or_else(|| parse_wait_hint(&String::from_utf8_lossy(body)));
            return Self::RateLimited { wait, errors };
        }
        match envelope {
            Some(errors) => Self::Api { status, errors },
            None => Self::Unexpected {
                status,
                content_type: content_type.map(str::to_owned),
                body: truncate_body(body),
            },
        }
    }

    /// The error a post for `van_id` stands for: VAN's 404 envelope there means the
    /// person is not in the database (an IIS 404 page is a wrong path, and stays as is).
    pub(crate) fn for_person(self, van_id: VanId, mode: DatabaseMode) -> Self {
        match self {
            Self::Api {
                status: 404,
                errors,
            } => Self::UnknownPerson {
                van_id,
                mode,
                errors,
            },
            other => other,
        }
    }

    /// A reqwest failure, without the URL reqwest attaches to its errors.
    pub(crate) fn from_transport(err: reqwest::Error) -> Self {
        let kind = if err.is_timeout() {
            TransportKind::Timeout
        } else if err.is_connect() {
            TransportKind::Connect
        } else if err.is_request() || err.is_body() {
            TransportKind::Interrupted
        } else {
            TransportKind::Other
        };
        Self::Transport {
            kind,
            message: crate::egress::transport_message(err),
        }
    }

    /// A success answer that did not decode. serde quotes the offending value in its
    /// message, which could be a name or a phone number: quoted text is blanked.
    pub(crate) fn decode(status: u16, what: &'static str, err: &serde_json::Error) -> Self {
        static QUOTED: LazyLock<Regex> =
            LazyLock::new(|| Regex::new(r#""[^"]*""#).expect("static regex is valid"));
        Self::Decode {
            status,
            what,
            message: QUOTED.replace_all(&err.to_string(), "\"…\"").into_owned(),
        }
    }
}

impl Retryable for VanError {
    fn retry_advice(&self) -> RetryAdvice {
        match self {
            Self::RateLimited { wait: Some(w), .. } => RetryAdvice::After(*w),
            Self::RateLimited { wait: None, .. } => RetryAdvice::Backoff,
            Self::Api { status, .. } | Self::Unexpected { status, .. } if *status >= 500 => {
                RetryAdvice::Backoff
            }
            // A request cut off after VAN received it may already have been applied;
            // retrying a canvass post inside the retry deadline is still safe because
            // VAN folds identical results posted within about an hour into one.
            Self::Transport {
                kind: TransportKind::Timeout | TransportKind::Connect | TransportKind::Interrupted,
                ..
            } => RetryAdvice::Backoff,
            Self::Uncounted(_) => RetryAdvice::Backoff,
            _ => RetryAdvice::Never,
        }
    }
}

#[derive(Deserialize)]
struct Envelope {
    errors: Option<Vec<VanErrorItem>>,
}

pub(crate) fn is_json(content_type: Option<&str>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct.split(';').next().unwrap_or_default().trim();
        essence.eq_ignore_ascii_case("application/json")
            || essence.eq_ignore_ascii_case("text/json")
            || essence.to_ascii_lowercase().ends_with("+json")
    })
}

fn truncate_body(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    if text.len() <= MAX_KEPT_BODY {
        return text.into_owned();
    }
    let mut end = MAX_KEPT_BODY;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}

/// The longest wait a 429 hint is taken for. VAN's hints are tens of milliseconds; a
/// larger one is read as this, so a garbled or hostile number cannot stall a worker
/// (the retry deadline then decides whether to wait at all).
pub const MAX_WAIT_HINT: Duration = Duration::from_secs(60);

/// The wait VAN asks for in a 429 text: "Rate limit exceeded. Try again in 30 ms."
/// Seconds are understood too, in case the unit ever changes. Any number, however long,
/// gives at most [`MAX_WAIT_HINT`].
pub fn parse_wait_hint(text: &str) -> Option<Duration> {
    static HINT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r"(?i)try\s+again\s+in\s+(\d+(?:\.\d+)?)\s*(ms|milliseconds?|s|secs?|seconds?)\b",
        )
        .expect("static regex is valid")
    });
    let caps = HINT.captures(text)?;
    // A digit string always parses as f64, at worst to infinity; the cap handles both.
    let amount: f64 = caps[1].parse().ok()?;
    let seconds = if caps[2].to_ascii_lowercase().starts_with('m') {
        amount / 1000.0
    } else {
        amount
    };
    let wait = Duration::try_from_secs_f64(seconds).unwrap_or(MAX_WAIT_HINT);
    Some(wait.min(MAX_WAIT_HINT))
}

fn string_or_number<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(match Option::<Value>::deserialize(d)? {
        Some(Value::String(s)) => s,
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn wait_hints_are_read_from_vans_rate_limit_text() {
        for (text, want) in [
            ("Rate limit exceeded. Try again in 30 ms.", Some(30)),
            ("Rate limit exceeded. Try again in 1500 ms.", Some(1500)),
            ("rate limit exceeded. try again in 7ms", Some(7)),
            ("Try again in 2 seconds.", Some(2000)),
            ("Try again in 0.5 s.", Some(500)),
            // Huge numbers saturate at the cap in every unit, never panic.
            ("Rate limit exceeded. Try again in 60000 ms.", Some(60_000)),
            ("Rate limit exceeded. Try again in 60001 ms.", Some(60_000)),
            ("Try again in 99999999999999999999999 ms.", Some(60_000)),
            (
                "Try again in 99999999999999999999999 milliseconds.",
                Some(60_000),
            ),
            ("Try again in 99999999999999999999999 s.", Some(60_000)),
            (
                "Try again in 99999999999999999999999 seconds.",
                Some(60_000),
            ),
            ("Try again in 18446744073709551616 secs.", Some(60_000)),
            ("Try again in 61 s.", Some(60_000)),
            ("Try again in 0 ms.", Some(0)),
            ("Rate limit exceeded. Try again in  ms.", None),
            ("Rate limit exceeded. Try again later.", None),
            ("Rate limit exceeded.", None),
            ("", None),
        ] {
            assert_eq!(
                parse_wait_hint(text),
                want.map(Duration::from_millis),
                "{text:?}"
            );
        }
    }

    const JSON: Option<&str> = Some("application/json; charset=utf-8");

    fn classify(status: u16, content_type: Option<&str>, body: &str) -> VanError {
        VanError::from_answer(status, content_type, body.as_bytes())
    }

    #[test]
    fn a_429_carries_the_hinted_wait_and_is_retried_after_it() {
        let err = classify(
            429,
            JSON,
            r#"{"errors":[{"code":"429","text":"Rate limit exceeded. Try again in 30 ms."}]}"#,
        );
        match &err {
            VanError::RateLimited { wait, errors } => {
                assert_eq!(*wait, Some(Duration::from_millis(30)));
                assert_eq!(errors[0].code, "429");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            err.retry_advice(),
            RetryAdvice::After(Duration::from_millis(30))
        );
        assert_eq!(err.status(), Some(429));
    }

    #[test]
    fn a_wait_hint_of_any_length_is_capped_never_a_panic() {
        let digits = "9".repeat(400);
        for unit in ["ms", "milliseconds", "s", "secs", "seconds"] {
            let text = format!("Rate limit exceeded. Try again in {digits} {unit}.");
            assert_eq!(parse_wait_hint(&text), Some(MAX_WAIT_HINT), "{unit}");
            let text = format!("Try again in {digits}.{digits} {unit}");
            assert_eq!(parse_wait_hint(&text), Some(MAX_WAIT_HINT), "{unit}");
        }
        let err = classify(
            429,
            JSON,
            r#"{"errors":[{"code":"429","text":"Rate limit exceeded. Try again in 99999999999999999999999 ms."}]}"#,
        );
        assert_eq!(err.retry_advice(), RetryAdvice::After(MAX_WAIT_HINT));
    }

    #[test]
    fn a_404_to_a_post_names_the_van_id_and_what_to_check() {
        let not_found = classify(
            404,
            JSON,
            r#"{"errors":[{"code":"NOT_FOUND","text":"The requested resource could not be found."}]}"#,
        );
        let id = VanId::new(18372073).unwrap();
        let err = not_found.for_person(id, DatabaseMode::VoterFile);
        assert!(matches!(err, VanError::UnknownPerson { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.starts_with("VAN has no person with VAN id 18372073 in this database"),
            "{text}"
        );
        assert!(text.contains("NOT_FOUND"), "{text}");
        assert!(
            text.contains("account number") && text.contains("database_mode"),
            "{text}"
        );
        assert_eq!(err.status(), Some(404));
        assert_eq!(err.retry_advice(), RetryAdvice::Never);
        assert_eq!(err.errors()[0].code, "NOT_FOUND");
        assert_eq!(
            err.envelope_json().unwrap()["errors"][0]["code"],
            "NOT_FOUND"
        );
        // Only VAN's 404 envelope means "no such person": others stay what they were.
        let iis = classify(404, Some("text/html"), "<html>404</html>")
            .for_person(id, DatabaseMode::MyCampaign);
        assert!(matches!(iis, VanError::Unexpected { status: 404, .. }));
        let bad = classify(
            400,
            JSON,
            r#"{"errors":[{"code":"INVALID_PARAMETER","text":"x"}]}"#,
        )
        .for_person(id, DatabaseMode::VoterFile);
        assert!(matches!(bad, VanError::Api { status: 400, .. }));
    }

    #[test]
    fn a_429_without_a_hint_backs_off() {
        let err = classify(429, Some("text/html"), "<html>slow down</html>");
        assert!(matches!(err, VanError::RateLimited { wait: None, .. }));
        assert_eq!(err.retry_advice(), RetryAdvice::Backoff);
    }

    #[test]
    fn server_errors_are_retried_whatever_their_body() {
        let envelope = classify(
            500,
            JSON,
            r#"{"errors":[{"code":"INTERNAL_SERVER_ERROR","text":"An unknown error occurred","referenceCode":"1A2B"}]}"#,
        );
        assert!(matches!(envelope, VanError::Api { status: 500, .. }));
        assert_eq!(envelope.errors()[0].reference_code.as_deref(), Some("1A2B"));

        let aspnet = classify(
            500,
            JSON,
            r#"{"message":"An error has occurred.","exceptionMessage":"Object reference not set","exceptionType":"System.NullReferenceException","stackTrace":"   at X.Y()"}"#,
        );
        match &aspnet {
            VanError::Unexpected { status, body, .. } => {
                assert_eq!(*status, 500);
                assert!(body.contains("System.NullReferenceException"), "{body}");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            aspnet.envelope_json().unwrap()["exceptionType"],
            "System.NullReferenceException"
        );

        let html = classify(503, Some("text/html"), "<html>Service Unavailable</html>");
        for err in [envelope, aspnet, html] {
            assert_eq!(err.retry_advice(), RetryAdvice::Backoff, "{err:?}");
            assert!(err.is_retryable());
        }
    }

    #[test]
    fn client_errors_are_never_retried() {
        let bad = classify(
            400,
            JSON,
            r#"{"errors":[{"code":"INVALID_PARAMETER","text":"'resultCodeId' must be a valid result code in the current context.","properties":["resultCodeId"]}]}"#,
        );
        assert_eq!(bad.errors()[0].properties, vec!["resultCodeId"]);
        let unauthorized = classify(
            401,
            JSON,
            r#"{"errors":[{"code":"UNAUTHORIZED","text":"Invalid Database Mode"}]}"#,
        );
        let not_found = classify(
            404,
            JSON,
            r#"{"errors":[{"code":"NOT_FOUND","text":"The specified resource cannot be found.","properties":null}]}"#,
        );
        assert!(not_found.errors()[0].properties.is_empty());
        let iis = classify(
            404,
            Some("text/html"),
            "<!DOCTYPE html><html><body>404 - File or directory not found.</body></html>",
        );
        for err in [bad, unauthorized, not_found, iis] {
            assert_eq!(err.retry_advice(), RetryAdvice::Never, "{err:?}");
            assert!(!err.is_retryable());
        }
    }

    #[test]
    fn an_html_body_is_kept_raw_and_never_parsed_as_json() {
        // JSON-looking text served as HTML must not be taken for an envelope.
        let body = r#"{"errors":[{"code":"X","text":"y"}]}"#;
        let err = classify(400, Some("text/html"), body);
        match &err {
            VanError::Unexpected {
                status,
                content_type,
                body: kept,
            } => {
                assert_eq!(*status, 400);
                assert_eq!(content_type.as_deref(), Some("text/html"));
                assert_eq!(kept, body);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_huge_unexpected_body_is_cut_to_the_kept_size() {
        let body = "é".repeat(5000);
        match classify(500, Some("text/html"), &body) {
            VanError::Unexpected { body, .. } => {
                assert!(
                    body.len() <= MAX_KEPT_BODY + '…'.len_utf8(),
                    "{}",
                    body.len()
                );
                assert!(body.ends_with('…'));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_envelope_is_kept_verbatim_for_the_ledger() {
        let raw = serde_json::json!({"errors":[{
            "code":"INVALID_PARAMETER",
            "text":"'surveyQuestionId' must be a valid Survey Question that is available in the current context.",
            "properties":["responses[0].surveyQuestionId"],
            "hint":"check the id",
            "resourceUrl":"https://docs.ngpvan.com/",
            "somethingNew": {"a": 1}
        }]});
        let err = classify(400, JSON, &raw.to_string());
        assert_eq!(err.envelope_json(), Some(raw));
        assert!(err.to_string().contains("responses[0].surveyQuestionId"));
    }

    #[test]
    fn decode_errors_do_not_repeat_values_from_the_answer() {
        #[derive(Debug, Deserialize)]
        #[allow(dead_code)]
        struct P {
            n: u32,
        }
        let serde_err = serde_json::from_str::<P>(r#"{"n":"Jane Smith"}"#).unwrap_err();
        let err = VanError::decode(200, "person", &serde_err);
        assert!(!err.to_string().contains("Jane"), "{err}");
        assert!(!format!("{err:?}").contains("Jane"), "{err:?}");
        assert_eq!(err.retry_advice(), RetryAdvice::Never);
        assert_eq!(err.envelope_json(), None);
    }

    #[test]
    fn content_types_decide_what_is_json() {
        assert!(is_json(Some("application/json")));
        assert!(is_json(Some("Application/JSON; charset=utf-8")));
        assert!(is_json(Some("application/problem+json")));
        assert!(!is_json(Some("text/html; charset=utf-8")));
        assert!(!is_json(None));
    }
}
