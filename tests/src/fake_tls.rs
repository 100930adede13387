//! A partner system that takes XML over mutual TLS, as an enterprise service bus in front of
//! a CRM does, for the templated HTTP destination's tests. It serves HTTPS with a
//! certificate from a private CA made at test time ([`Pki`]) and refuses any client that does
//! not present a certificate signed by that same CA: no certificate, or one from another CA,
//! ends the TLS handshake before any HTTP is read, and the refusal is counted
//! ([`TlsReceiver::refused_handshakes`]). Every request that gets past the handshake is
//! recorded with the client certificate's common name. What it answers is set by the test:
//! accept with a SOAP envelope, answer 200 with a SOAP fault (a partner that takes the
//! request and rejects its content), fail with a status and an HTML page, or hang up.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Extension;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::TokioIo;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::fake_van::serve::{self, HangUp};

/// Common name of the client certificate [`Pki`] signs.
pub const CLIENT_CN: &str = "callsync-test-client";

/// How long a client gets to finish the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(5);

/// Test certificates made at test time; nothing is committed.
#[derive(Debug, Clone)]
pub struct Pki {
    /// The private CA that signed the server certificate and the good client certificate.
    pub ca_pem: String,
    /// A client certificate signed by the CA (CN [`CLIENT_CN`], client-auth only).
    pub client_cert_pem: String,
    /// Its PKCS#8 private key.
    pub client_key_pem: String,
    ca_der: CertificateDer<'static>,
    client_cert_der: CertificateDer<'static>,
    /// SANs `localhost` and `127.0.0.1`, server-auth only.
    server_cert_der: CertificateDer<'static>,
    server_key_der: Vec<u8>,
}

impl Pki {
    pub fn generate() -> Pki {
        let (ca_cert, ca) = new_ca("callsync test CA");
        let (client_cert, client_key) =
            leaf(&ca, CLIENT_CN, &[], ExtendedKeyUsagePurpose::ClientAuth);
        let (server_cert, server_key) = leaf(
            &ca,
            "localhost",
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        Pki {
            ca_pem: ca_cert.pem(),
            client_cert_pem: client_cert.pem(),
            client_key_pem: client_key.serialize_pem(),
            ca_der: ca_cert.der().clone(),
            client_cert_der: client_cert.der().clone(),
            server_cert_der: server_cert.der().clone(),
            server_key_der: server_key.serialize_der(),
        }
    }

    /// A client certificate and its key (both PEM) signed by a different CA the server does
    /// not trust: a wrong certificate. Its CN is [`CLIENT_CN`] too, so only the signature
    /// tells it apart.
    pub fn stranger_client(&self) -> (String, String) {
        let (_, stranger_ca) = new_ca("callsync stranger CA");
        let (cert, key) = leaf(
            &stranger_ca,
            CLIENT_CN,
            &[],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        (cert.pem(), key.serialize_pem())
    }
}

fn new_ca(name: &str) -> (rcgen::Certificate, Issuer<'static, KeyPair>) {
    let key = KeyPair::generate().expect("generate a CA key");
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let cert = params.self_signed(&key).expect("self-sign the CA");
    (cert, Issuer::new(params, key))
}

fn leaf(
    ca: &Issuer<'_, KeyPair>,
    cn: &str,
    sans: &[&str],
    usage: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let key = KeyPair::generate().expect("generate a key");
    let sans: Vec<String> = sans.iter().map(|s| (*s).to_owned()).collect();
    let mut params = CertificateParams::new(sans).expect("certificate parameters");
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    let cert = params.signed_by(&key, ca).expect("sign a certificate");
    (cert, key)
}

/// What the receiver does with the next requests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// 200, `text/xml`, a SOAP envelope whose body is `<ok/>`.
    Accept,
    /// 200, `text/xml`, a SOAP envelope holding a `soapenv:Fault` (faultcode
    /// `soapenv:Server`, faultstring "CSR rejected the activity").
    Fault,
    /// Answer this status with an HTML error page.
    Fail(u16),
    /// Answer `status` to the next `n` requests, then accept.
    FailFirst { n: usize, status: u16 },
    /// Close the connection without answering.
    HangUp,
}

/// One request as it arrived, past the TLS handshake.
#[derive(Debug, Clone)]
pub struct TlsReceived {
    pub method: String,
    pub path_and_query: String,
    /// Header names lowercased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: String,
    /// Common name of the verified client certificate: [`CLIENT_CN`] for [`Pki`]'s client
    /// certificate, `"unknown"` for any other the CA signed.
    pub client_subject_cn: Option<String>,
    /// What the receiver answered (0: it hung up).
    pub answered: u16,
}

impl TlsReceived {
    /// A header's value by its (lowercase) name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug)]
struct Entry {
    request: TlsReceived,
    /// Answered 2xx with a success envelope.
    delivered: bool,
}

#[derive(Debug)]
struct State {
    behaviour: Behaviour,
    received: Vec<Entry>,
    refused_handshakes: usize,
}

/// The client certificate a connection presented, as the handler sees it.
#[derive(Debug, Clone)]
struct Peer(Option<String>);

#[derive(Debug, Clone)]
pub struct TlsReceiver {
    /// The URL to configure: `https://localhost:{port}/esb/calls`.
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl TlsReceiver {
    /// Listens on 127.0.0.1 on a free port and requires a client certificate signed by
    /// `pki`'s CA (no anonymous clients); serves any method on any path. Accepts everything
    /// until told otherwise.
    pub async fn start(pki: &Pki) -> TlsReceiver {
        let state = Arc::new(Mutex::new(State {
            behaviour: Behaviour::Accept,
            received: Vec::new(),
            refused_handshakes: 0,
        }));
        let shared = Arc::clone(&state);
        let app = axum::Router::new().fallback(
            move |method: Method,
                  uri: Uri,
                  headers: HeaderMap,
                  Extension(peer): Extension<Peer>,
                  body: Bytes| {
                let state = Arc::clone(&shared);
                async move { receive(&state, method, &uri, &headers, peer, &body) }
            },
        );
        let (listener, local) = serve::bind((Ipv4Addr::LOCALHOST, 0).into())
            .await
            .expect("bind a local port");
        let acceptor = TlsAcceptor::from(Arc::new(server_config(pki)));
        tokio::spawn(accept_loop(
            listener,
            acceptor,
            app,
            pki.client_cert_der.clone(),
            Arc::clone(&state),
        ));
        TlsReceiver {
            url: format!("https://localhost:{}/esb/calls", local.port()),
            state,
        }
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.lock().behaviour = behaviour;
    }

    /// Every HTTP request that got past the handshake, in arrival order.
    pub fn received(&self) -> Vec<TlsReceived> {
        self.lock()
            .received
            .iter()
            .map(|e| e.request.clone())
            .collect()
    }

    /// The requests answered 2xx with a success envelope (not a fault).
    pub fn delivered(&self) -> Vec<TlsReceived> {
        self.lock()
            .received
            .iter()
            .filter(|e| e.delivered)
            .map(|e| e.request.clone())
            .collect()
    }

    /// TLS handshakes the server refused because of the client (no client certificate, one
    /// from another CA, not TLS at all, ...), counted. Handshakes the client gave up on (it
    /// did not trust the server, or went quiet) are not counted.
    pub fn refused_handshakes(&self) -> usize {
        self.lock().refused_handshakes
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn server_config(pki: &Pki) -> rustls::ServerConfig {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pki.ca_der.clone())
        .expect("trust the test CA for clients");
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::clone(&provider),
    )
    .build()
    .expect("a client certificate verifier");
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(pki.server_key_der.clone()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions the provider supports")
        .with_client_cert_verifier(verifier)
        .with_single_cert(vec![pki.server_cert_der.clone()], key)
        .expect("the server certificate and key");
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    config
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    app: axum::Router,
    known_client: CertificateDer<'static>,
    state: Arc<Mutex<State>>,
) {
    loop {
        let tcp = match listener.accept().await {
            Ok((tcp, _)) => tcp,
            Err(_) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        let acceptor = acceptor.clone();
        let app = app.clone();
        let known_client = known_client.clone();
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    if refused_by_server(&e) {
                        state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .refused_handshakes += 1;
                    }
                    return;
                }
                // A client stuck mid-handshake: drop it.
                Err(_) => return,
            };
            let cn = tls
                .get_ref()
                .1
                .peer_certificates()
                .and_then(|chain| chain.first())
                .map(|presented| {
                    if *presented == known_client {
                        CLIENT_CN.to_owned()
                    } else {
                        "unknown".to_owned()
                    }
                });
            let app = app.layer(Extension(Peer(cn)));
            serve::serve_connection(TokioIo::new(tls), app).await;
        });
    }
}

/// Whether a failed handshake is the server turning the client down, rather than the client
/// giving up (it sent an alert) or the connection dropping.
fn refused_by_server(e: &std::io::Error) -> bool {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(rustls::Error::AlertReceived(_)) | None => false,
        Some(_) => true,
    }
}

fn receive(
    state: &Arc<Mutex<State>>,
    method: Method,
    uri: &Uri,
    headers: &HeaderMap,
    peer: Peer,
    body: &Bytes,
) -> Response {
    let behaviour = {
        let mut s = state.lock().unwrap_or_else(|p| p.into_inner());
        match s.behaviour.clone() {
            Behaviour::FailFirst { n, status } => {
                s.behaviour = if n <= 1 {
                    Behaviour::Accept
                } else {
                    Behaviour::FailFirst { n: n - 1, status }
                };
                Behaviour::Fail(status)
            }
            other => other,
        }
    };
    let mut request = TlsReceived {
        method: method.to_string(),
        path_and_query: uri
            .path_and_query()
            .map_or_else(|| uri.path().to_owned(), ToString::to_string),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_ascii_lowercase(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(body).into_owned(),
        client_subject_cn: peer.0,
        answered: 0,
    };
    let mut delivered = false;
    let response = match behaviour {
        Behaviour::Accept | Behaviour::FailFirst { .. } => {
            request.answered = 200;
            delivered = true;
            xml(StatusCode::OK, ACCEPTED)
        }
        Behaviour::Fault => {
            request.answered = 200;
            xml(StatusCode::OK, FAULT)
        }
        Behaviour::Fail(status) => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY);
            request.answered = status.as_u16();
            let reason = status.canonical_reason().unwrap_or("Error");
            let page = format!(
                "<html><head><title>{code} {reason}</title></head>\
                 <body><h1>{code} {reason}</h1></body></html>",
                code = status.as_u16()
            );
            (status, [("content-type", "text/html")], page).into_response()
        }
        Behaviour::HangUp => {
            let mut r = StatusCode::OK.into_response();
            r.extensions_mut().insert(HangUp);
            r
        }
    };
    state
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .received
        .push(Entry { request, delivered });
    response
}

fn xml(status: StatusCode, body: &'static str) -> Response {
    (status, [("content-type", "text/xml; charset=utf-8")], body).into_response()
}

const ACCEPTED: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Body>
    <ok/>
  </soapenv:Body>
</soapenv:Envelope>
"#;

const FAULT: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
  <soapenv:Body>
    <soapenv:Fault>
      <faultcode>soapenv:Server</faultcode>
      <faultstring>CSR rejected the activity</faultstring>
    </soapenv:Fault>
  </soapenv:Body>
</soapenv:Envelope>
"#;
