//! A webhook receiver as campaigns run them, for the webhook destination's tests: it
//! verifies each request's signature the way the README tells receivers to (HMAC-SHA256 of
//! `"{timestamp}.{raw body}"`, constant-time compare, at most five minutes from its own
//! clock), refuses a bad one with 401 as a careful receiver does, and records every request.
//! What it answers is set by the test: accept, fail with a status (and an HTML body, as a
//! load balancer in front of a dead app does), hang up without answering, answer slowly, or
//! stall past any client timeout. An answered 2xx is a delivery; [`Receiver::delivered`]
//! lists them, so a test can see that nothing arrived twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use hmac::{KeyInit, Mac};
use serde_json::Value;

use crate::fake_van::serve::{self, HangUp};

/// Largest gap between a request's timestamp and the receiver's clock.
pub const TOLERANCE_SECS: i64 = 300;

/// What the receiver does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// 200 with `{"ok": true}`.
    Accept,
    /// Answer this status with an HTML error page.
    Fail(u16),
    /// Answer `status` to the next `n` requests, then accept.
    FailFirst { n: usize, status: u16 },
    /// Close the connection without answering (a receiver that is down).
    HangUp,
    /// Accept, after this long.
    Slow(Duration),
    /// Never answer within any sane timeout.
    Stall,
    /// A receiver having a bad night, the same way every time: of each twelve requests,
    /// two are answered 503, one is hung up on, two are accepted after 150 ms, and the
    /// rest are accepted at once.
    Flaky,
}

/// One request as it arrived.
#[derive(Debug, Clone)]
pub struct Received {
    pub content_type: Option<String>,
    pub idempotency_key: Option<String>,
    pub timestamp: Option<String>,
    pub signature: Option<String>,
    /// Whether the signature checked out with the receiver's secret and clock.
    pub verified: bool,
    pub body: Value,
    /// What the receiver answered (0: it hung up or stalled).
    pub answered: u16,
}

#[derive(Debug)]
struct State {
    secret: String,
    behaviour: Behaviour,
    received: Vec<Received>,
    /// Requests seen, for [`Behaviour::Flaky`]'s pattern.
    seen: u64,
}

#[derive(Debug, Clone)]
pub struct Receiver {
    /// The URL to configure: `http://127.0.0.1:{port}/calls`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Receiver {
    /// A receiver verifying with `secret`, accepting everything.
    pub async fn start(secret: &str) -> Receiver {
        let state = Arc::new(Mutex::new(State {
            secret: secret.to_owned(),
            behaviour: Behaviour::Accept,
            received: Vec::new(),
            seen: 0,
        }));
        let shared = Arc::clone(&state);
        let app = axum::Router::new().route(
            "/calls",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let state = Arc::clone(&shared);
                async move { receive(&state, &headers, &body).await }
            }),
        );
        let (listener, local) = serve::bind(([127, 0, 0, 1], 0).into())
            .await
            .expect("bind a local port");
        serve::spawn(listener, app);
        Receiver {
            url: format!("http://{local}/calls"),
            state,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// Every request, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.lock().received.clone()
    }

    /// The requests it accepted (answered 2xx).
    pub fn delivered(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.answered))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The receiver's side of the contract, as the README shows it.
pub fn verify(secret: &str, timestamp: &str, signature: &str, body: &[u8], now: i64) -> bool {
    let Ok(ts) = timestamp.parse::<i64>() else {
        return false;
    };
    if (now - ts).abs() > TOLERANCE_SECS {
        return false;
    }
    let Some(hex) = signature.strip_prefix("v1=") else {
        return false;
    };
    let Some(given) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    // `verify_slice` compares in constant time.
    mac.verify_slice(&given).is_ok()
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

async fn receive(state: &Arc<Mutex<State>>, headers: &HeaderMap, body: &Bytes) -> Response {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let now = jiff::Timestamp::now().as_second();
    let (secret, behaviour) = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        let behaviour = s.behaviour.clone();
        s.seen += 1;
        let behaviour = if behaviour == Behaviour::Flaky {
            match s.seen % 12 {
                1 | 6 => Behaviour::Fail(503),
                9 => Behaviour::HangUp,
                3 | 11 => Behaviour::Slow(Duration::from_millis(150)),
                _ => Behaviour::Accept,
            }
        } else {
            behaviour
        };
        if let Behaviour::FailFirst { n, status } = behaviour {
            s.behaviour = if n <= 1 {
                Behaviour::Accept
            } else {
                Behaviour::FailFirst { n: n - 1, status }
            };
            (s.secret.clone(), Behaviour::Fail(status))
        } else {
            (s.secret.clone(), behaviour)
        }
    };
    let verified = match (
        header("x-callsync-timestamp"),
        header("x-callsync-signature"),
    ) {
        (Some(ts), Some(sig)) => verify(&secret, &ts, &sig, body, now),
        _ => false,
    };
    let mut received = Received {
        content_type: header("content-type"),
        idempotency_key: header("idempotency-key"),
        timestamp: header("x-callsync-timestamp"),
        signature: header("x-callsync-signature"),
        verified,
        body: serde_json::from_slice(body).unwrap_or(Value::Null),
        answered: 0,
    };
    let response = if !verified {
        received.answered = 401;
        (StatusCode::UNAUTHORIZED, "signature does not verify").into_response()
    } else {
        match behaviour {
            Behaviour::Accept | Behaviour::FailFirst { .. } | Behaviour::Flaky => {
                accept(&mut received)
            }
            Behaviour::Slow(wait) => {
                tokio::time::sleep(wait).await;
                accept(&mut received)
            }
            Behaviour::Fail(status) => {
                received.answered = status;
                let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
                (
                    status,
                    [("content-type", "text/html")],
                    "<html><body><h1>502 Bad Gateway</h1></body></html>",
                )
                    .into_response()
            }
            Behaviour::HangUp => {
                let mut r = StatusCode::OK.into_response();
                r.extensions_mut().insert(HangUp);
                r
            }
            Behaviour::Stall => {
                state
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .received
                    .push(received);
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return StatusCode::GATEWAY_TIMEOUT.into_response();
            }
        }
    };
    state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .received
        .push(received);
    response
}

fn accept(received: &mut Received) -> Response {
    received.answered = 200;
    axum::Json(serde_json::json!({"ok": true})).into_response()
}
