//! The mutual-TLS partner fake: it takes requests only from a client certificate its CA
//! signed, records what got through with the certificate's name, answers as told, and counts
//! the handshakes it refused. Also pins down how a refused client certificate surfaces on the
//! client's side (which `rustls::Error`, and where in reqwest's error chain).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use callsync_tests::fake_tls::{Behaviour, CLIENT_CN, Pki, TlsReceiver};
use reqwest::{Certificate, Client, ClientBuilder, Identity};

const SOAP: &str = r#"<?xml version="1.0"?><soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><logCall><id>42</id></logCall></soapenv:Body></soapenv:Envelope>"#;

fn base() -> ClientBuilder {
    Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
}

fn trusting(pki: &Pki) -> ClientBuilder {
    base().tls_certs_only([Certificate::from_pem(pki.ca_pem.as_bytes()).unwrap()])
}

fn identity(cert: &str, key: &str) -> Identity {
    Identity::from_pem(format!("{cert}{key}").as_bytes()).unwrap()
}

fn good_client(pki: &Pki) -> Client {
    trusting(pki)
        .identity(identity(&pki.client_cert_pem, &pki.client_key_pem))
        .build()
        .unwrap()
}

async fn post(client: &Client, url: &str) -> reqwest::Result<reqwest::Response> {
    client
        .post(url)
        .header("content-type", "text/xml; charset=utf-8")
        .header("soapaction", "urn:logCall")
        .body(SOAP)
        .send()
        .await
}

/// The server counts a refusal just after sending its alert, which the client may read first.
async fn refused_after(receiver: &TlsReceiver, expected: usize) -> usize {
    for _ in 0..100 {
        if receiver.refused_handshakes() >= expected {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Give a wrongly counted extra refusal the chance to show up too.
    tokio::time::sleep(Duration::from_millis(50)).await;
    receiver.refused_handshakes()
}

/// Where a `rustls::Error` sits in an error chain.
#[derive(Debug)]
struct Found {
    /// 0 is the `reqwest::Error` itself, 1 its `source()`, and so on.
    level: usize,
    /// How many `std::io::Error` payloads (`get_ref()`) down from the cause at `level`: 0 is
    /// the cause itself. `io::Error::source()` skips its payload, so walking `source()` alone
    /// never reaches it.
    io_unwraps: usize,
    error: rustls::Error,
}

/// Walks `source()`, and at each cause down through nested `std::io::Error` payloads;
/// returns the chain as text and the first `rustls::Error` found.
fn dissect(err: &reqwest::Error) -> (String, Option<Found>) {
    let mut text = String::new();
    let mut found = None;
    let mut level = 0;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cause {
        text.push_str(&format!("  [{level}] {e}\n      {e:?}\n"));
        let mut inner = e;
        let mut io_unwraps = 0;
        while found.is_none() {
            if let Some(r) = inner.downcast_ref::<rustls::Error>() {
                found = Some(Found {
                    level,
                    io_unwraps,
                    error: r.clone(),
                });
            } else if let Some(payload) = inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
            {
                inner = payload;
                io_unwraps += 1;
            } else {
                break;
            }
        }
        cause = e.source();
        level += 1;
    }
    (text, found)
}

fn report(case: &str, err: &reqwest::Error) -> Option<Found> {
    let (text, found) = dissect(err);
    println!(
        "{case}: is_connect={} is_request={} is_timeout={}\n{text}  rustls::Error: {found:?}",
        err.is_connect(),
        err.is_request(),
        err.is_timeout()
    );
    found
}

#[tokio::test]
async fn the_good_client_certificate_is_let_in_and_recorded() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    assert!(receiver.url.starts_with("https://localhost:"));
    assert!(receiver.url.ends_with("/esb/calls"));

    let response = post(&good_client(&pki), &format!("{}?tenant=demo", receiver.url))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/xml")
    );
    let answer = response.text().await.unwrap();
    assert!(answer.contains("<ok/>"), "{answer}");
    assert!(!answer.contains("Fault"), "{answer}");

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path_and_query, "/esb/calls?tenant=demo");
    assert_eq!(r.body, SOAP);
    assert_eq!(r.header("content-type"), Some("text/xml; charset=utf-8"));
    assert_eq!(r.header("soapaction"), Some("urn:logCall"));
    assert!(r.headers.iter().all(|(n, _)| *n == n.to_ascii_lowercase()));
    assert_eq!(r.client_subject_cn.as_deref(), Some(CLIENT_CN));
    assert_eq!(r.answered, 200);
    assert_eq!(receiver.delivered().len(), 1);
    assert_eq!(receiver.refused_handshakes(), 0);

    // Any method on any path.
    let client = good_client(&pki);
    let other = receiver.url.replace("/esb/calls", "/other/path");
    assert_eq!(client.get(&other).send().await.unwrap().status(), 200);
    let received = receiver.received();
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].method, "GET");
    assert_eq!(received[1].path_and_query, "/other/path");
    assert_eq!(received[1].body, "");
}

// How the refusals surface with the stack as locked (reqwest 0.13.5, hyper-util 0.1,
// rustls 0.23.46). Over TLS 1.3 (what these two negotiate) the client has finished its side
// of the handshake before the server looks at the client certificate, so the client learns of
// the refusal from the server's alert while waiting for the answer: reqwest reports a request
// error, `is_connect()` false.
//   [0] reqwest::Error         "error sending request for url (https://localhost:{port}/esb/calls)"
//   [1] hyper_util Error       "client error (SendRequest)"
//   [2] hyper::Error(Io)       "connection error"
//   [3] std::io::Error         "received fatal alert: CertificateRequired"  (no certificate)
//                              "received fatal alert: UnknownCA"            (stranger's certificate)
//       InvalidData, payload rustls::Error::AlertReceived(CertificateRequired | UnknownCA)
// `source()` ends at [3]; the variant is only reached by `io_err.get_ref()` and
// `downcast_ref::<rustls::Error>()` there.
// Over TLS 1.2, and when the client does not trust the server's certificate, the handshake
// fails while connecting: `is_connect()` true, and the rustls error sits two io::Error
// payloads deep:
//   [0] reqwest::Error         "error sending request for url (...)"
//   [1] hyper_util Error       "client error (Connect)"
//   [2] std::io::Error(Other)  "received fatal alert: CertificateRequired" / "... UnknownCA"
//                              / "invalid peer certificate: UnknownIssuer" (server not trusted)
//       payload std::io::Error(InvalidData), its payload rustls::Error::AlertReceived(..)
//       or rustls::Error::InvalidCertificate(UnknownIssuer)
// The tests below print the exact chains (run with `--no-capture` to see them).

#[tokio::test]
async fn no_client_certificate_is_refused_in_the_handshake() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    let anonymous = trusting(&pki).build().unwrap();

    let err = post(&anonymous, &receiver.url).await.unwrap_err();
    let found = report("no client certificate", &err).expect("a rustls::Error in the chain");
    assert!(!err.is_connect() && err.is_request(), "{err:?}");
    assert_eq!(
        found.error,
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        "{found:?}"
    );
    assert_eq!((found.level, found.io_unwraps), (3, 1), "{found:?}");

    assert_eq!(refused_after(&receiver, 1).await, 1);
    assert!(receiver.received().is_empty());
    assert!(receiver.delivered().is_empty());
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_in_the_handshake() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    let (cert, key) = pki.stranger_client();
    let stranger = trusting(&pki)
        .identity(identity(&cert, &key))
        .build()
        .unwrap();

    let err = post(&stranger, &receiver.url).await.unwrap_err();
    let found = report("stranger's certificate", &err).expect("a rustls::Error in the chain");
    assert!(!err.is_connect() && err.is_request(), "{err:?}");
    assert_eq!(
        found.error,
        rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        "{found:?}"
    );
    assert_eq!((found.level, found.io_unwraps), (3, 1), "{found:?}");

    assert_eq!(refused_after(&receiver, 1).await, 1);
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn a_client_not_trusting_the_private_ca_does_not_connect() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    // Default roots only; the right client certificate does not help.
    let untrusting = base()
        .identity(identity(&pki.client_cert_pem, &pki.client_key_pem))
        .build()
        .unwrap();

    let err = post(&untrusting, &receiver.url).await.unwrap_err();
    let found = report("server certificate not trusted", &err);
    assert!(err.is_connect(), "{err:?}");
    let found = found.expect("a rustls::Error in the chain");
    // UnknownIssuer here; the platform verifier's exact reason may vary with the system.
    assert!(
        matches!(found.error, rustls::Error::InvalidCertificate(_)),
        "{found:?}"
    );
    assert_eq!((found.level, found.io_unwraps), (2, 2), "{found:?}");

    // The client gave up, the server did not refuse anyone.
    assert_eq!(refused_after(&receiver, 0).await, 0);
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn over_tls_1_2_the_refusal_is_a_connect_error() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    let old = |b: ClientBuilder| b.tls_version_max(reqwest::tls::Version::TLS_1_2);

    let anonymous = old(trusting(&pki)).build().unwrap();
    let err = post(&anonymous, &receiver.url).await.unwrap_err();
    let found = report("no client certificate, TLS 1.2", &err).expect("a rustls::Error");
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(
        found.error,
        rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired),
        "{found:?}"
    );
    assert_eq!((found.level, found.io_unwraps), (2, 2), "{found:?}");

    let (cert, key) = pki.stranger_client();
    let stranger = old(trusting(&pki))
        .identity(identity(&cert, &key))
        .build()
        .unwrap();
    let err = post(&stranger, &receiver.url).await.unwrap_err();
    let found = report("stranger's certificate, TLS 1.2", &err).expect("a rustls::Error");
    assert!(err.is_connect(), "{err:?}");
    assert_eq!(
        found.error,
        rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA),
        "{found:?}"
    );
    assert_eq!((found.level, found.io_unwraps), (2, 2), "{found:?}");

    assert_eq!(refused_after(&receiver, 2).await, 2);
    assert!(receiver.received().is_empty());

    // The good certificate still works over TLS 1.2.
    let good = old(trusting(&pki))
        .identity(identity(&pki.client_cert_pem, &pki.client_key_pem))
        .build()
        .unwrap();
    assert_eq!(post(&good, &receiver.url).await.unwrap().status(), 200);
    assert_eq!(
        receiver.delivered()[0].client_subject_cn.as_deref(),
        Some(CLIENT_CN)
    );
}

#[tokio::test]
async fn a_fault_is_answered_200_but_not_delivered() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    receiver.set(Behaviour::Fault);

    let response = post(&good_client(&pki), &receiver.url).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.text().await.unwrap();
    assert!(body.contains("<soapenv:Fault>"), "{body}");
    assert!(
        body.contains("<faultcode>soapenv:Server</faultcode>"),
        "{body}"
    );
    assert!(body.contains("CSR rejected the activity"), "{body}");

    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].answered, 200);
    assert!(receiver.delivered().is_empty());
}

#[tokio::test]
async fn fail_first_then_accept() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    receiver.set(Behaviour::FailFirst { n: 1, status: 503 });
    let client = good_client(&pki);

    let first = post(&client, &receiver.url).await.unwrap();
    assert_eq!(first.status(), 503);
    assert!(
        first
            .headers()
            .get("content-type")
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(first.text().await.unwrap().contains("<html>"));

    let second = post(&client, &receiver.url).await.unwrap();
    assert_eq!(second.status(), 200);
    assert!(second.text().await.unwrap().contains("<ok/>"));

    let answered: Vec<u16> = receiver.received().iter().map(|r| r.answered).collect();
    assert_eq!(answered, [503, 200]);
    assert_eq!(receiver.delivered().len(), 1);
}

#[tokio::test]
async fn fail_and_hang_up() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    let client = good_client(&pki);

    receiver.set(Behaviour::Fail(500));
    assert_eq!(post(&client, &receiver.url).await.unwrap().status(), 500);

    receiver.set(Behaviour::HangUp);
    let err = post(&client, &receiver.url).await.unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");

    let answered: Vec<u16> = receiver.received().iter().map(|r| r.answered).collect();
    assert_eq!(answered, [500, 0]);
    assert!(receiver.delivered().is_empty());
    assert_eq!(receiver.refused_handshakes(), 0);
}

#[tokio::test]
async fn a_client_that_never_speaks_tls_is_dropped() {
    let pki = Pki::generate();
    let receiver = TlsReceiver::start(&pki).await;
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap();

    // Plain HTTP on the TLS port: the server refuses it as not TLS.
    let plain = base().build().unwrap();
    let err = plain
        .post(format!("http://127.0.0.1:{port}/esb/calls"))
        .body(SOAP)
        .send()
        .await
        .unwrap_err();
    assert!(!err.is_timeout(), "{err:?}");
    assert_eq!(refused_after(&receiver, 1).await, 1);
    assert!(receiver.received().is_empty());
}
