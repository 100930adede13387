//! The templated HTTP destination: one request per call, its method, URL, headers and body
//! rendered from templates in the candidate document ([`super::template`]), for partner
//! systems that take XML (a SOAP bus) or JSON, optionally over mutual TLS.
//!
//! - Which calls: the selection rule, then `result_codes`: a call whose result has no code
//!   is `ignored` with the reason, never an aborted night.
//! - What is stored: the rendered request is the delivery's payload, so the dry run shows
//!   it and a send repeats exactly what was planned.
//! - TLS: the server's certificate is always verified — against the public roots, or only
//!   against the secret's `ca_bundle` when it has one. The secret (`secret_name`, under the
//!   candidate's own prefix) holds `{"client_certificate": PEM, "client_key": PEM,
//!   "ca_bundle": PEM}`; any of the three may be left out, the certificate and key go
//!   together.
//! - Answers: 2xx is success unless its body matches `failure_pattern` (a SOAP fault comes
//!   with 200 from some buses): that, and any 4xx but 408/429, is final (`attempted_error`,
//!   the answer kept). 5xx, 408, 429, timeouts and lost connections are tried again later. A
//!   TLS refusal — the server refusing the client certificate, or a server certificate that
//!   does not verify — is a setup error: nothing reached the partner, and nothing will
//!   until the secret or the bundle is fixed (then `POST /retry` with the destination).
//! - Egress: the URL's scheme and host are literal in the template and follow the rules of
//!   `notify.webhook_url` (https, a public host, resolved and checked at every send, no
//!   redirect followed).

use std::time::Duration;

use async_trait::async_trait;
use serde::Deserialize;
use serde_json::Value;

use super::template::{HttpTemplate, HttpTemplateSettings, Method, RenderedRequest};
use super::webhook::{clip, idempotency_key};
use super::{
    DeliverContext, DeliveryError, Destination, Metadata, own_secret, payload, pinned_client,
    settings, transport_error,
};
use crate::call::Call;
use crate::candidate::{self, Candidate};
use crate::egress::Egress;
use crate::ledger::{DeliveryPlan, DeliveryRecord, Receipt};
use crate::mapping::{FieldError, ResultRow};
use crate::planning::PlanError;
use crate::values::{CandidateSlug, sha256_hex};

pub const METADATA: Metadata = Metadata {
    kind: "http_template",
    description: "an HTTP request per call rendered from the document's templates (XML, JSON or text), optionally over mutual TLS",
    spends_money: false,
    default_rate_limit: 5.0,
    // A partner system that takes one message per activity would file a second one.
    resends_updates: false,
    configurable: true,
    batches: false,
    waits_for_call: false,
    codes: super::DESTINATION_CODES,
    retry: super::Retry::Backoff,
};

const DEFAULT_TIMEOUT: Duration = Duration::from_secs(15);
/// The most of an answer read, to look for `failure_pattern` and keep as the answer.
const MAX_ANSWER_BYTES: usize = 256 * 1024;

/// The secret's JSON.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSecret {
    #[serde(default)]
    client_certificate: Option<String>,
    #[serde(default)]
    client_key: Option<String>,
    #[serde(default)]
    ca_bundle: Option<String>,
}

/// What the client presents and trusts.
struct Tls {
    identity: Option<reqwest::Identity>,
    roots: Option<Vec<reqwest::Certificate>>,
}

#[derive(Debug, Clone)]
pub struct HttpDestination {
    template: HttpTemplate,
    /// `scheme://host:port` every rendered URL must keep.
    origin: url::Origin,
    secret_name: Option<String>,
    timeout: Duration,
}

impl HttpDestination {
    pub(super) fn from_doc(
        doc: &serde_json::Map<String, Value>,
        at: &str,
        slug: Option<&CandidateSlug>,
        egress: Egress,
        errors: &mut Vec<FieldError>,
    ) -> Option<Self> {
        let s: HttpTemplateSettings = settings(doc, at, errors)?;
        let before = errors.len();
        if let Some(name) = &s.secret_name {
            candidate::check_secret(
                &format!("{at}.secret_name"),
                name,
                "the TLS client certificate and CA bundle ({\"client_certificate\", \"client_key\", \"ca_bundle\"})",
                slug,
                errors,
            );
        }
        let template = match HttpTemplate::compile(&s, at) {
            Ok(t) => t,
            Err(mut es) => {
                errors.append(&mut es);
                return None;
            }
        };
        let origin = match egress.check_url(template.sample_url()) {
            Ok(url) => Some(url.origin()),
            Err(e) => {
                errors.push(FieldError::new(format!("{at}.url"), e.to_string()));
                None
            }
        };
        let origin = origin.filter(|_| errors.len() == before)?;
        Some(Self {
            timeout: s.timeout_secs.map_or(DEFAULT_TIMEOUT, Duration::from_secs),
            secret_name: s.secret_name,
            template,
            origin,
        })
    }

    /// The client certificate and trusted roots from the destination's secret.
    async fn tls(&self, ctx: DeliverContext<'_>) -> Result<Tls, DeliveryError> {
        let Some(name) = &self.secret_name else {
            return Ok(Tls {
                identity: None,
                roots: None,
            });
        };
        let secret: TlsSecret = own_secret(ctx, name).await?;
        let identity = match (&secret.client_certificate, &secret.client_key) {
            (None, None) => None,
            (Some(cert), Some(key)) => {
                check_identity(cert, key, jiff::Timestamp::now())
                    .map_err(|why| DeliveryError::Setup(format!("secret {name:?}: {why}")))?;
                let pem = format!("{}\n{}\n", cert.trim(), key.trim());
                Some(reqwest::Identity::from_pem(pem.as_bytes()).map_err(|_| {
                    DeliveryError::Setup(format!(
                        "secret {name:?}: client_certificate and client_key are not a PEM certificate and its PKCS#8, RSA or EC private key"
                    ))
                })?)
            }
            _ => {
                return Err(DeliveryError::Setup(format!(
                    "secret {name:?} holds one of client_certificate and client_key: give both, or neither"
                )));
            }
        };
        let roots = match &secret.ca_bundle {
            None => None,
            Some(pem) => match reqwest::Certificate::from_pem_bundle(pem.as_bytes()) {
                Ok(certs) if !certs.is_empty() => Some(certs),
                _ => {
                    return Err(DeliveryError::Setup(format!(
                        "secret {name:?}: ca_bundle holds no PEM certificate (-----BEGIN CERTIFICATE-----)"
                    )));
                }
            },
        };
        Ok(Tls { identity, roots })
    }

    /// The checked URL and a client bound to its addresses, presenting and trusting what
    /// the secret says.
    async fn client(
        &self,
        ctx: DeliverContext<'_>,
        raw_url: &str,
    ) -> Result<(url::Url, reqwest::Client), DeliveryError> {
        let (url, mut builder) =
            pinned_client(ctx.egress(), raw_url, self.timeout, "the destination's URL").await?;
        if url.origin() != self.origin {
            return Err(DeliveryError::Setup(
                "the planned request's URL is not on the template's host: plan the day again with POST /retry".into(),
            ));
        }
        let tls = self.tls(ctx).await?;
        if let Some(identity) = tls.identity {
            builder = builder.identity(identity);
        }
        if let Some(roots) = tls.roots {
            builder = builder.tls_certs_only(roots);
        }
        let client = builder
            .build()
            .map_err(|e| DeliveryError::Setup(format!("no HTTP client: {e}")))?;
        Ok((url, client))
    }
}

/// What is wrong with a client certificate and key, naming the field: not PEM, the other
/// field's kind, not X.509, outside its validity at `now`, or a key that is not the
/// certificate's.
fn check_identity(cert: &str, key: &str, now: jiff::Timestamp) -> Result<(), String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap_or_default();
    let Some(leaf) = certs.first() else {
        return Err(if cert.contains("PRIVATE KEY-----") {
            "client_certificate holds a private key: put the certificate (-----BEGIN CERTIFICATE-----) there and the key in client_key".to_owned()
        } else {
            "client_certificate is not a PEM certificate (-----BEGIN CERTIFICATE-----…)".to_owned()
        });
    };
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).map_err(|_| {
        if key.contains("BEGIN CERTIFICATE-----") {
            "client_key holds a certificate: put the private key the certificate was issued for there".to_owned()
        } else if key.contains("ENCRYPTED PRIVATE KEY-----") {
            "client_key is encrypted: store it unencrypted (Secrets Manager encrypts the secret)".to_owned()
        } else {
            "client_key is not a PEM private key (-----BEGIN PRIVATE KEY-----, RSA or EC)".to_owned()
        }
    })?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
        .map_err(|_| "client_certificate is PEM but not an X.509 certificate".to_owned())?;
    let validity = parsed.validity();
    let (from, until) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    let day = |secs: i64| {
        jiff::Timestamp::from_second(secs)
            .map_or_else(|_| secs.to_string(), |t| t.strftime("%Y-%m-%d").to_string())
    };
    if now.as_second() > until {
        return Err(format!(
            "client_certificate expired on {}: ask the partner for a new one",
            day(until)
        ));
    }
    if now.as_second() < from {
        return Err(format!(
            "client_certificate is not valid before {}",
            day(from)
        ));
    }
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).map_err(|_| {
        "client_key is a kind of key TLS cannot sign with (use RSA, ECDSA P-256/P-384 or Ed25519)".to_owned()
    })?;
    match rustls::sign::CertifiedKey::new(certs, signing).keys_match() {
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => Err(
            "client_key does not belong to client_certificate (their public keys differ): give the key the certificate was issued for".to_owned(),
        ),
        _ => Ok(()),
    }
}

#[async_trait]
impl Destination for HttpDestination {
    fn metadata(&self) -> &'static Metadata {
        &METADATA
    }

    fn endpoint(&self) -> Option<(&str, &'static str)> {
        Some((self.template.sample_url(), "url"))
    }

    async fn check(&self, ctx: DeliverContext<'_>) -> Vec<String> {
        match self.client(ctx, self.template.sample_url()).await {
            Ok(_) => Vec::new(),
            Err(e) => vec![e.to_string()],
        }
    }

    fn plan(
        &self,
        name: &str,
        call: &Call,
        row: Option<&ResultRow>,
        candidate: &Candidate,
    ) -> DeliveryPlan {
        let Some(code) = self.template.code_for(&call.result) else {
            let result = row.map_or(call.result.as_str(), |r| r.display_name.as_str());
            return DeliveryPlan::Skip(format!(
                "result {result:?} has no code in this destination's result_codes"
            ));
        };
        let mut ctx = payload::call_and_contact(call, row, candidate);
        ctx["code"] = code.into();
        match self.template.render(&ctx) {
            Ok(request) => match serde_json::to_value(request) {
                Ok(v) => DeliveryPlan::Send(v),
                Err(e) => DeliveryPlan::Error(PlanError::Payload {
                    destination: name.to_owned(),
                    message: e.to_string(),
                }),
            },
            Err(e) => DeliveryPlan::Error(PlanError::Payload {
                destination: name.to_owned(),
                message: e.to_string(),
            }),
        }
    }

    async fn deliver(
        &self,
        ctx: DeliverContext<'_>,
        delivery: &DeliveryRecord,
    ) -> Result<Receipt, DeliveryError> {
        let (Some(payload), Some(hash)) = (&delivery.payload, &delivery.payload_hash) else {
            return Err(DeliveryError::Setup("the delivery holds no payload".into()));
        };
        let request: RenderedRequest = serde_json::from_value(payload.clone()).map_err(|_| {
            DeliveryError::Setup(
                "the delivery's payload is not a rendered request: plan the day again with POST /retry".into(),
            )
        })?;
        let (url, client) = self.client(ctx, &request.url).await?;
        let method = match request.method {
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Patch => reqwest::Method::PATCH,
        };
        let mut builder = client.request(method, url);
        for (name, value) in &request.headers {
            // A value beyond ASCII (a name with accents) goes as its UTF-8 bytes, which
            // HTTP/1.1 carries as field content; control characters were refused when the
            // request was rendered.
            let value = reqwest::header::HeaderValue::from_bytes(value.as_bytes()).map_err(|_| {
                DeliveryError::Setup(format!(
                    "header {name} has a character a header cannot carry: plan the day again with POST /retry"
                ))
            })?;
            builder = builder.header(name.as_str(), value);
        }
        let body = request.body.into_bytes();
        let fingerprint = sha256_hex(&body);
        let response = match builder.body(body).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(transport_error(
                    e,
                    "the destination",
                    super::TlsSettings::FromSecret,
                ));
            }
        };
        let status = response.status().as_u16();
        let answer = read_answer(response).await;
        if (200..300).contains(&status) {
            if self.template.failure_matches(&answer) {
                return Err(DeliveryError::Rejected {
                    message: format!(
                        "the destination answered {status} with a body that matches failure_pattern: see the answer, fix what it refuses, then POST /retry"
                    ),
                    status: Some(status),
                    answer: Some(clip(answer)),
                    envelope: None,
                });
            }
            return Ok(Receipt::Http {
                status,
                at: ctx.clock.now(),
                attempts: delivery.delivery.attempts,
                idempotency_key: idempotency_key(&delivery.key, hash),
                fingerprint,
            });
        }
        let message = format!("the destination answered {status}");
        Err(if status >= 500 || matches!(status, 408 | 429) {
            DeliveryError::Retryable {
                message,
                status: Some(status),
                answer: Some(clip(answer)),
            }
        } else {
            DeliveryError::Rejected {
                message: format!(
                    "{message}, which sending again will not change: fix the template or what the partner refuses, then POST /retry"
                ),
                status: Some(status),
                answer: Some(clip(answer)),
                envelope: None,
            }
        })
    }
}

/// At most [`MAX_ANSWER_BYTES`] of the answer's body, as text.
async fn read_answer(mut response: reqwest::Response) -> String {
    let mut bytes = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        bytes.extend_from_slice(&chunk);
        if bytes.len() >= MAX_ANSWER_BYTES {
            bytes.truncate(MAX_ANSWER_BYTES);
            break;
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::destinations::payload::fixtures;
    use serde_json::json;

    /// A self-signed client certificate valid from `from` to `until` (years), and its key.
    fn identity(from: i32, until: i32) -> (String, String) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["callsync.example.org".into()]).unwrap();
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(until, 1, 1);
        let cert = params.self_signed(&key).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    #[test]
    fn client_certificate_problems_name_the_field_and_what_is_wrong() {
        let now: jiff::Timestamp = "2026-12-06T12:00:00Z".parse().unwrap();
        let (cert, key) = identity(2025, 2030);
        assert_eq!(check_identity(&cert, &key, now), Ok(()));
        let (_, other_key) = identity(2025, 2030);
        let (old_cert, old_key) = identity(2020, 2025);
        let (new_cert, new_key) = identity(2027, 2030);
        for (c, k, needle) in [
            (
                "not a certificate",
                key.as_str(),
                "client_certificate is not a PEM certificate",
            ),
            (
                key.as_str(),
                key.as_str(),
                "client_certificate holds a private key",
            ),
            (
                cert.as_str(),
                cert.as_str(),
                "client_key holds a certificate",
            ),
            (
                cert.as_str(),
                "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "client_key is encrypted",
            ),
            (
                cert.as_str(),
                "hunter2",
                "client_key is not a PEM private key",
            ),
            (
                cert.as_str(),
                other_key.as_str(),
                "client_key does not belong to client_certificate",
            ),
            (
                old_cert.as_str(),
                old_key.as_str(),
                "client_certificate expired on 2025-01-01",
            ),
            (
                new_cert.as_str(),
                new_key.as_str(),
                "not valid before 2027-01-01",
            ),
        ] {
            let err = check_identity(c, k, now).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
            assert!(!err.contains("hunter2"), "the secret is not quoted: {err}");
        }
    }

    const SOAP: &str = "<?xml version=\"1.0\"?>\n<soapenv:Envelope xmlns:soapenv=\"http://schemas.xmlsoap.org/soap/envelope/\"><soapenv:Body><submitCall><id>{{ contact.van_id }}</id><outcome_code>{{ code }}</outcome_code><details>{{ contact.first_name }} {{ contact.last_name }}</details><date>{{ call.local_date }}</date></submitCall></soapenv:Body></soapenv:Envelope>";

    fn esb(extra: Value) -> Value {
        let mut d = json!({
            "name": "city-esb", "kind": "http_template",
            "url": "https://esb.example.org/services/calls/{{ call.id }}",
            "headers": {"SOAPAction": "submitCall"},
            "format": "xml", "body": SOAP,
            "result_codes": {"Agent Cust 1": "COMPLET1"},
            "failure_pattern": "<(soapenv:)?Fault>",
            "secret_name": "callsync/ny14-smith/esb-tls",
        });
        for (k, v) in extra.as_object().unwrap() {
            d[k] = v.clone();
        }
        d
    }

    fn errors_of(dest: Value) -> Vec<FieldError> {
        let docs: Vec<super::super::DestinationDoc> =
            serde_json::from_value(json!([dest])).unwrap();
        let slug = CandidateSlug::parse("ny14-smith").unwrap();
        let mut errors = Vec::new();
        super::super::configure(&docs, Some(&slug), Egress::STRICT, &mut errors);
        errors
    }

    #[test]
    fn a_call_is_planned_into_the_rendered_request_with_its_result_code() {
        let candidate = fixtures::candidate(json!([esb(json!({}))]));
        let dest = candidate.destination("city-esb").unwrap();
        let call = fixtures::call("AGENT CUST 1 (167)", "O'Brien & <Sons>");
        let plan = dest.plan(&call, &candidate);
        let DeliveryPlan::Send(payload) = plan else {
            panic!("{plan:?}")
        };
        let request: RenderedRequest = serde_json::from_value(payload).unwrap();
        assert_eq!(request.method, Method::Post);
        assert_eq!(
            request.url,
            "https://esb.example.org/services/calls/101312525040"
        );
        assert!(
            request.body.contains("<id>18372073</id><outcome_code>COMPLET1</outcome_code><details>O&#x27;Brien &amp; &lt;Sons&gt; Núñez</details><date>2026-11-21</date>"),
            "{}",
            request.body
        );
        assert_eq!(
            request.headers,
            [
                (
                    "Content-Type".to_owned(),
                    "text/xml; charset=utf-8".to_owned()
                ),
                ("SOAPAction".to_owned(), "submitCall".to_owned())
            ]
        );
    }

    #[test]
    fn a_result_without_a_code_is_ignored_with_the_reason() {
        let candidate = fixtures::candidate(json!([esb(json!({}))]));
        let dest = candidate.destination("city-esb").unwrap();
        let plan = dest.plan(&fixtures::call("Wrong Number", "Ana"), &candidate);
        assert_eq!(
            plan,
            DeliveryPlan::Skip(
                "result \"Wrong number\" has no code in this destination's result_codes".into()
            )
        );
    }

    #[test]
    fn a_call_the_template_cannot_render_is_an_error_naming_the_template_not_the_value() {
        let candidate = fixtures::candidate(json!([esb(json!({
            "headers": {"X-Caller": "{{ contact.first_name }}"}
        }))]));
        let dest = candidate.destination("city-esb").unwrap();
        let call = fixtures::call("Agent Cust 1", "Ana\r\nX-Evil: 1");
        let DeliveryPlan::Error(e) = dest.plan(&call, &candidate) else {
            panic!("a header with a line break must not be planned")
        };
        assert_eq!(e.code(), "payload_failed");
        let text = e.to_string();
        assert!(
            text.contains("headers.X-Caller") && text.contains("city-esb"),
            "{text}"
        );
        assert!(!text.contains("Evil"), "{text}");
    }

    #[test]
    fn settings_are_checked_when_the_document_is_saved() {
        assert!(errors_of(esb(json!({}))).is_empty());
        let fields =
            |dest| -> Vec<String> { errors_of(dest).into_iter().map(|e| e.field).collect() };
        assert_eq!(
            fields(esb(json!({"secret_name": "callsync/other/esb"}))),
            ["destinations[0].secret_name"]
        );
        assert_eq!(
            fields(esb(json!({"secret_name": " "}))),
            ["destinations[0].secret_name"],
            "an empty name is one error"
        );
        assert_eq!(
            fields(esb(json!({"url": "http://esb.example.org/calls"}))),
            ["destinations[0].url"]
        );
        assert_eq!(
            fields(esb(json!({"url": "https://10.0.0.7/calls"}))),
            ["destinations[0].url"]
        );
        assert_eq!(
            fields(esb(json!({"body": "<a>{{ contact.middle_name }}</a>"}))),
            ["destinations[0].body"]
        );
        assert_eq!(
            fields(esb(json!({"verify_tls": false}))),
            ["destinations[0].verify_tls"]
        );
    }
}
