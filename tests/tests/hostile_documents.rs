//! A candidate document is untrusted, and its destinations take the most of it: URLs,
//! templates, header maps, rates, secrets. Through the real `configure` and `validate`
//! handlers on a local stack (moto, the fake VAN), each hostile document is refused with an
//! error naming the field, or made harmless.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use callsync_tests::api::{ApiWorld, authed, demo_doc, with_body};
use callsync_tests::harness::Answer;
use serde_json::{Value, json};

/// The API on a local stack, with a deployed stack's egress rules: no loopback receivers.
async fn world() -> ApiWorld {
    let mut w = ApiWorld::start_with(
        callsync_tests::api::Overrides { livevox: true },
        &[
            (
                "callsync/demo/crm-hook",
                json!({"signing_secret": "whsec-0123456789abcdef0123456789abcdef"}).to_string(),
            ),
            (
                "callsync/demo/short-hook",
                json!({"signing_secret": "0123456789abcdef0123456789abcde"}).to_string(),
            ),
            (
                "callsync/demo/empty-hook",
                json!({"signing_secret": ""}).to_string(),
            ),
        ],
    )
    .await;
    w.ctx.connectors.egress = callsync::egress::Egress::STRICT;
    w
}

/// The demo document with `destinations`.
fn with_destinations(destinations: Value) -> Value {
    let mut doc = demo_doc();
    doc["destinations"] = destinations;
    doc
}

fn webhook(url: &str) -> Value {
    json!({"name": "crm-hook", "kind": "webhook", "url": url,
           "secret_name": "callsync/demo/crm-hook"})
}

fn partner(url: &str) -> Value {
    json!({"name": "city-esb", "kind": "http_template", "url": url, "format": "json",
           "body": "{\"id\": {{ call.id }}}", "result_codes": {"Agent Cust 1": "S1"}})
}

async fn put(w: &ApiWorld, doc: &Value) -> Answer {
    w.configure(with_body(authed("candidates-put.json"), &doc.to_string()))
        .await
}

async fn validate(w: &ApiWorld, doc: &Value) -> Answer {
    w.validate(with_body(authed("validate-post.json"), &doc.to_string()))
        .await
}

fn error_fields(answer: &Answer) -> Vec<String> {
    answer.json()["errors"]
        .as_array()
        .unwrap_or(&Vec::new())
        .iter()
        .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
        .collect()
}

/// A name this machine resolves to its own loopback or private addresses only (its own
/// host name, as /etc/hosts has it, or Debian's IPv6 loopback names), if it has one.
async fn local_name() -> Option<String> {
    let own = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    for name in [own.as_str(), "ip6-localhost", "ip6-loopback"] {
        if name.is_empty() || name == "localhost" {
            continue;
        }
        let Ok(addrs) = tokio::net::lookup_host((name, 443)).await else {
            continue;
        };
        let ips: Vec<IpAddr> = addrs.map(|a| a.ip()).collect();
        if !ips.is_empty() && ips.iter().all(|ip| !callsync::egress::is_public(*ip)) {
            return Some(name.to_owned());
        }
    }
    None
}

#[tokio::test]
async fn destination_urls_on_reserved_addresses_are_refused_when_saved_and_by_validate() {
    let w = world().await;
    let port = 9;
    for host in [
        "[64:ff9b:1::a9fe:a9fe]".to_owned(),
        "[::ffff:0:a9fe:a9fe]".to_owned(),
        format!("[::ffff:0:127.0.0.1]:{port}"),
        "[64:ff9b::a9fe:a9fe]".to_owned(),
        "[2002:a9fe:a9fe::1]".to_owned(),
        "[2001:0:4136:e378:8000:63bf:3fff:fdd2]".to_owned(),
        "[fd00:ec2::254]".to_owned(),
        "100.64.0.1".to_owned(),
    ] {
        for (destination, field) in [
            (
                webhook(&format!("https://{host}/calls")),
                "destinations[0].url",
            ),
            (
                partner(&format!("https://{host}/calls/{{{{ call.id }}}}")),
                "destinations[0].url",
            ),
        ] {
            let doc = with_destinations(json!([destination]));
            let a = put(&w, &doc).await;
            assert_eq!(a.status, 400, "{host}: {}", a.body);
            assert_eq!(error_fields(&a), [field], "{host}: {}", a.body);
            assert!(a.body.contains("reserved network"), "{host}: {}", a.body);
            let v = validate(&w, &doc).await;
            assert_eq!(v.json()["ok"], false, "{host}: {}", v.body);
            assert!(v.body.contains(field), "{host}: {}", v.body);
        }
    }
    let got = w.configure(authed("candidates-get.json")).await;
    assert_eq!(got.status, 404, "nothing was stored");
}

#[tokio::test]
async fn a_destination_host_that_resolves_to_this_machine_is_refused_when_saved_and_by_validate() {
    let Some(name) = local_name().await else {
        eprintln!("no name on this machine resolves to loopback only; nothing to check");
        return;
    };
    let w = world().await;
    for host in [name.clone(), format!("{name}.")] {
        for destination in [
            webhook(&format!("https://{host}/calls")),
            partner(&format!("https://{host}/calls/{{{{ call.id }}}}")),
        ] {
            let doc = with_destinations(json!([destination]));
            let a = put(&w, &doc).await;
            assert_eq!(a.status, 400, "{host}: {}", a.body);
            assert_eq!(error_fields(&a), ["destinations[0].url"], "{}", a.body);
            let v = validate(&w, &doc).await;
            assert_eq!(v.json()["ok"], false, "{host}: {}", v.body);
            assert!(v.body.contains("destinations[0]"), "{}", v.body);
            assert!(v.body.contains("reserved network"), "{}", v.body);
        }
    }
    // The same name on the report webhook was refused already; it still is.
    let mut doc = demo_doc();
    doc["notify"] = json!({"webhook_url": format!("https://{name}/report")});
    let a = put(&w, &doc).await;
    assert_eq!(error_fields(&a), ["notify.webhook_url"], "{}", a.body);
}

#[tokio::test]
async fn documents_have_limits_that_follow_from_the_product() {
    let w = world().await;
    let hooks = |n: usize| -> Value {
        (0..n)
            .map(|i| {
                json!({"name": format!("hook-{i}"), "kind": "webhook",
                       "url": format!("https://crm{i}.example.org/calls"),
                       "secret_name": "callsync/demo/crm-hook"})
            })
            .collect()
    };
    // Twenty destinations besides VAN and the CSV are allowed; a twenty-first is not.
    let mut twenty = hooks(20);
    twenty
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "van", "kind": "van"}));
    let a = put(&w, &with_destinations(twenty)).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let a = put(&w, &with_destinations(hooks(21))).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert_eq!(error_fields(&a), ["destinations"], "{}", a.body);
    assert!(a.body.contains("at most 20"), "{}", a.body);

    // Rates from one a minute to a thousand a second; nothing a pace cannot hold.
    for (rate, ok) in [
        (1e-19, false),
        (1e-100, false),
        (0.0, false),
        (1.0 / 60.0, true),
        (1000.0, true),
        (1000.5, false),
    ] {
        let mut hook = webhook("https://crm.example.org/calls");
        hook["rate_limit"] = json!(rate);
        let a = put(&w, &with_destinations(json!([hook]))).await;
        if ok {
            assert_eq!(a.status, 200, "{rate}: {}", a.body);
        } else {
            assert_eq!(
                error_fields(&a),
                ["destinations[0].rate_limit"],
                "{rate}: {}",
                a.body
            );
        }
    }

    // result_codes: as many as a mapping may have rows, each spelling checked once.
    let codes = |n: usize| -> Value {
        let map: serde_json::Map<String, Value> = (0..n)
            .map(|i| (format!("Agent Cust {i}"), json!(format!("C{i}"))))
            .collect();
        Value::Object(map)
    };
    let mut esb = partner("https://esb.example.org/calls/{{ call.id }}");
    esb["result_codes"] = codes(2_000);
    let a = put(&w, &with_destinations(json!([esb.clone()]))).await;
    assert_eq!(a.status, 200, "{}", a.body);
    esb["result_codes"] = codes(2_001);
    let a = put(&w, &with_destinations(json!([esb.clone()]))).await;
    assert_eq!(
        error_fields(&a),
        ["destinations[0].result_codes"],
        "{}",
        a.body
    );
    // Two spellings of one result are one result: the second is named, with the first.
    esb["result_codes"] = json!({"AGENT - CUST 1": "A", "Agent Cust 1 (167)": "B"});
    let a = put(&w, &with_destinations(json!([esb.clone()]))).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(
        a.body
            .contains(r#"is the same result as \"AGENT - CUST 1\""#),
        "{}",
        a.body
    );

    // Header names are bounded; values are templates with their own bounds.
    esb["result_codes"] = codes(3);
    esb["headers"] = json!({"X-".to_owned() + &"a".repeat(200): "v"});
    let a = put(&w, &with_destinations(json!([esb]))).await;
    assert_eq!(a.status, 400, "{}", a.body);
    assert!(a.body.contains("at most 128"), "{}", a.body);
}

#[tokio::test]
async fn a_signing_secret_shorter_than_32_bytes_is_refused_by_validate() {
    let w = world().await;
    for name in ["callsync/demo/short-hook", "callsync/demo/empty-hook"] {
        let mut hook = webhook("https://crm.example.org/calls");
        hook["secret_name"] = json!(name);
        let v = validate(&w, &with_destinations(json!([hook]))).await;
        assert_eq!(v.json()["ok"], false, "{name}: {}", v.body);
        assert!(v.body.contains("at least 32"), "{name}: {}", v.body);
        assert!(
            !v.body.contains("0123456789abcde\""),
            "the secret is not shown"
        );
    }
    let v = validate(
        &w,
        &with_destinations(json!([webhook("https://crm.example.org/calls")])),
    )
    .await;
    assert!(!v.body.contains("signing_secret"), "{}", v.body);
}

#[tokio::test]
async fn templates_that_turn_escaping_off_or_build_values_of_any_size_are_refused_when_saved() {
    let w = world().await;
    for (body, needle) in [
        (
            "{\"n\": {{ contact.first_name | safe }}}",
            "`| safe` is not allowed",
        ),
        (
            "{% autoescape false %}{\"n\": {{ contact.first_name }}}{% endautoescape %}",
            "autoescape",
        ),
        (
            "{% set s = 'x' * 50000000 %}{\"n\": 1}",
            "{% set %} is not allowed",
        ),
        ("{\"n\": {{ 'x' * 50000000 }}}", "`*` and `**`"),
        (
            "{% for i in range(100000) %}{% endfor %}{\"n\": 1}",
            "calling `range(…)`",
        ),
    ] {
        let mut esb = partner("https://esb.example.org/calls/{{ call.id }}");
        esb["body"] = json!(body);
        let a = put(&w, &with_destinations(json!([esb]))).await;
        assert_eq!(a.status, 400, "{body}: {}", a.body);
        assert_eq!(
            error_fields(&a),
            ["destinations[0].body"],
            "{body}: {}",
            a.body
        );
        assert!(a.body.contains(needle), "{body}: {}", a.body);
    }
    // A header may carry a name with accents (the sample's is "Núñez").
    let mut esb = partner("https://esb.example.org/calls/{{ call.id }}");
    esb["headers"] = json!({"X-Contact": "{{ contact.first_name }} {{ contact.last_name }}"});
    let a = put(&w, &with_destinations(json!([esb]))).await;
    assert_eq!(a.status, 200, "{}", a.body);
}
