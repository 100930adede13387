//! `make demo`: callsync working on one machine. Starts the fake VAN and fake LiveVox,
//! builds a local stack in moto from infra/template.yaml, sends the sample events in
//! events/ through the real `configure` and `validate` handlers, then runs a whole night:
//! a 2,000-call CDR file in the S3 inbox, `nightly`, `sync-call` driven from the SQS queue
//! as Lambda's event source would, the report, and `GET /status` — with the sample
//! candidate's other destinations (events/candidates-put-destinations.json) pointed at a
//! local signed-webhook receiver and a partner that takes XML over mutual TLS. Everything
//! it started stops when it ends.

use std::time::Instant;

use callsync::entrypoints::{configure, nightly, status, validate};
use callsync::values::CandidateSlug;
use callsync_tests::demo_data;
use callsync_tests::demo_data::demo_today;
use callsync_tests::fake_action_network::FakeActionNetwork;
use callsync_tests::fake_livevox::{FakeLiveVox, LiveVoxData};
use callsync_tests::fake_receiver::Receiver;
use callsync_tests::fake_tls::{Pki, TlsReceiver};
use callsync_tests::fake_van::{FakeVan, VanData};
use callsync_tests::fake_van::{Fault, FaultKind};
use callsync_tests::harness::{Answer, LocalStack, TEST_TOKEN, event, request, with_token};
use callsync_tests::night::{TestClock, Webhook, drain, services};
use serde_json::{Value, json};

fn step(title: &str) {
    println!("\n\x1b[1m== {title}\x1b[0m");
}

fn show(answer: &Answer, max_lines: usize) {
    println!("HTTP {} ({})", answer.status, answer.content_type);
    let lines: Vec<&str> = answer.body.lines().collect();
    for line in lines.iter().take(max_lines) {
        println!("  {line}");
    }
    if lines.len() > max_lines {
        println!("  … {} more lines", lines.len() - max_lines);
    }
}

/// The demo webhook's signing secret (a local demo value, not a credential).
const DEMO_SIGNING_SECRET: &str = "demo-signing-secret-0123456789abcdef";
/// The fake Action Network's API key (a local demo value, not a credential).
const DEMO_ACTION_NETWORK_KEY: &str = "demo-action-network-key";

#[tokio::main]
async fn main() {
    // The partner's CA, server and client certificates, made now and kept in memory.
    let pki = Pki::generate();
    let van = FakeVan::start(VanData::demo()).await;
    let livevox = FakeLiveVox::start(LiveVoxData::demo()).await;
    let action_network = FakeActionNetwork::start(
        DEMO_ACTION_NETWORK_KEY,
        &["PB 2026 Supporter", "PB 2026 Not Home", "Volunteer"],
    )
    .await;
    println!("fake VAN      {}", van.base_url());
    println!("fake LiveVox  {}", livevox.base_url());

    let van_secret = serde_json::json!({
        "application_name": demo_data::VAN_APPLICATION,
        "api_key": demo_data::VAN_VOTERFILE_KEY,
    });
    let livevox_secret = serde_json::json!({
        "access_token": demo_data::LV_ACCESS_TOKEN,
        "client_name": demo_data::LV_CLIENT,
        "user_name": demo_data::LV_USER,
        "password": demo_data::LV_PASSWORD,
    });
    // The warehouse destination's database: the PostgreSQL server `make demo` starts
    // (infra/with_databases.sh), when PostgreSQL is installed.
    let warehouse = std::env::var("CALLSYNC_TEST_POSTGRES_URL").ok();
    let warehouse_secret = warehouse
        .as_ref()
        .map(|url| ("callsync/demo/warehouse", json!({ "url": url }).to_string()));
    let stack = LocalStack::up(
        &[
            Vec::from_iter(warehouse_secret),
            vec![
                ("callsync/demo/van", van_secret.to_string()),
                (
                    "callsync/demo/van-myc",
                    serde_json::json!({
                        "application_name": demo_data::VAN_APPLICATION,
                        "api_key": demo_data::VAN_MYCAMPAIGN_KEY,
                    })
                    .to_string(),
                ),
                ("callsync/demo/livevox", livevox_secret.to_string()),
                (
                    "callsync/demo/action-network",
                    json!({"api_key": DEMO_ACTION_NETWORK_KEY}).to_string(),
                ),
                (
                    "callsync/demo/crm-hook",
                    json!({"signing_secret": DEMO_SIGNING_SECRET}).to_string(),
                ),
                (
                    "callsync/demo/esb-tls",
                    json!({
                        "client_certificate": pki.client_cert_pem,
                        "client_key": pki.client_key_pem,
                        "ca_bundle": pki.ca_pem,
                    })
                    .to_string(),
                ),
            ],
        ]
        .concat(),
        &[
            ("CALLSYNC_VAN_BASE_URL", van.base_url()),
            ("CALLSYNC_LIVEVOX_BASE_URL", livevox.base_url()),
            (
                "CALLSYNC_ACTION_NETWORK_BASE_URL",
                action_network.base_url.clone(),
            ),
        ],
    )
    .await;
    println!("local stack   {} in moto at {}", stack.name, stack.moto_url);
    for (k, v) in stack
        .functions
        .get("ConfigureFunction")
        .into_iter()
        .flatten()
    {
        println!("  configure env {k}={v}");
    }
    let ctx = stack.api_context();
    let authed = |name: &str| with_token(event(name), Some(TEST_TOKEN));

    step("GET /configure/demo without a token (events/unauthorized.json)");
    show(
        &Answer::from(configure::handle(&ctx, request(&event("unauthorized.json"))).await),
        10,
    );

    step("PUT /candidates/demo (events/candidates-put.json)");
    show(
        &Answer::from(configure::handle(&ctx, request(&authed("candidates-put.json"))).await),
        6,
    );

    step("PUT /candidates/demo/results — the Airtable export (events/candidates-results-put.json)");
    let a = Answer::from(
        configure::handle(&ctx, request(&authed("candidates-results-put.json"))).await,
    );
    println!(
        "HTTP {}: {} result rows stored",
        a.status,
        a.json()["results"].as_array().map_or(0, Vec::len)
    );

    step("GET /configure/demo?format=text (events/configure-get-text.json)");
    show(
        &Answer::from(configure::handle(&ctx, request(&authed("configure-get-text.json"))).await),
        40,
    );

    step("GET /validate/demo?format=text (events/validate-get-text.json)");
    show(
        &Answer::from(validate::handle(&ctx, request(&authed("validate-get-text.json"))).await),
        40,
    );

    step("POST /validate/demo with a draft that refers to ids VAN does not have");
    let mut draft = authed("validate-post.json");
    let mut doc: serde_json::Value =
        serde_json::from_str(draft["body"].as_str().unwrap_or("{}")).unwrap_or_default();
    doc["results"][0]["activist_codes"] = serde_json::json!([4417]);
    doc["results"][2]["result_code_id"] = 999.into();
    draft["body"] = doc.to_string().into();
    show(
        &Answer::from(validate::handle(&ctx, request(&draft)).await),
        30,
    );

    night(
        &stack,
        &ctx,
        &van,
        &livevox,
        &pki,
        warehouse.as_deref(),
        &action_network,
    )
    .await;

    step("What reached the fakes");
    println!(
        "VAN: {} requests, {} results accepted; LiveVox: {} logins, {} requests",
        van.requests().len(),
        van.canvass_posts().len(),
        livevox.logins(),
        livevox.requests().len()
    );
    println!("\nDone. `make dev-up` keeps a stack like this running for `cargo lambda watch`.");
}

/// The demo night: the calls of 3 Nov 2026 (New York), synced the next morning.
async fn night(
    stack: &LocalStack,
    ctx: &callsync::entrypoints::http::ApiContext,
    van: &FakeVan,
    livevox: &FakeLiveVox,
    pki: &Pki,
    warehouse: Option<&str>,
    action_network: &FakeActionNetwork,
) {
    let date = demo_today().yesterday().unwrap_or_else(|_| demo_today());
    // 20:00 in New York the next day (01:00 UTC the day after): past the demo
    // candidate's 03:00 sync hour, and late enough that LiveVox's reporting API, which
    // serves only days before its today, serves all of the 3rd in New York.
    let clock = TestClock::new("2026-11-05T01:00:00Z");
    livevox.with_data(|d| d.today = jiff::civil::date(2026, 11, 5));
    let svc = services(stack, clock);
    let hook = Webhook::start().await;
    let receiver = Receiver::start(DEMO_SIGNING_SECRET).await;
    let partner = TlsReceiver::start(pki).await;
    step("PUT /candidates/demo with every destination (events/candidates-put-destinations.json)");
    println!("  crm-hook (webhook) → {}", receiver.url);
    println!("  city-esb (http_template, mutual TLS) → {}", partner.url);
    let mut put = with_token(event("candidates-put-destinations.json"), Some(TEST_TOKEN));
    let mut doc: Value =
        serde_json::from_str(put["body"].as_str().unwrap_or("{}")).unwrap_or_default();
    println!(
        "  supporters (action_network, \"Strong support\" rows) → fake Action Network at {}",
        action_network.base_url
    );
    match warehouse {
        Some(url) => println!(
            "  warehouse (sql) → PostgreSQL at {}, tables callsync_calls and callsync_deliveries",
            url.split('@')
                .nth(1)
                .and_then(|r| r.split('/').next())
                .unwrap_or("?")
        ),
        None => {
            println!(
                "  warehouse (sql): left out — PostgreSQL is not installed (apt-get install postgresql; make demo starts it)"
            );
            if let Some(list) = doc["destinations"].as_array_mut() {
                list.retain(|d| d["name"] != "warehouse");
            }
        }
    }
    for d in doc["destinations"].as_array_mut().into_iter().flatten() {
        // The sample's public hosts become the local receivers; a local stack allows
        // loopback receivers through its environment only.
        let url = match d["name"].as_str() {
            Some("crm-hook") => receiver.url.clone(),
            Some("city-esb") => format!("{}?activity={{{{ call.id }}}}", partner.url),
            _ => continue,
        };
        d["url"] = url.into();
        d["rate_limit"] = 500.into();
    }
    put["body"] = doc.to_string().into();
    show(
        &Answer::from(configure::handle(ctx, request(&put)).await),
        4,
    );
    let slug = CandidateSlug::parse("demo").unwrap_or_else(|e| panic!("{e}"));
    if let Ok(Some(mut doc)) = svc.config.get(&slug).await {
        doc.notify = Some(callsync::candidate::Notify {
            webhook_url: hook.url.clone(),
        });
        let _ = svc.config.put(&doc).await;
    }

    step(&format!(
        "A night: 2,000 calls of {date} dropped in the inbox (inbox/demo/)"
    ));
    let key = format!("inbox/demo/cdr-{}.csv", date.strftime("%m-%d-%Y"));
    let cdr = demo_data::cdr_night(date, demo_data::DEMO_NIGHT_CALLS);
    println!("{key}: {} bytes; the first rows:", cdr.len());
    for line in cdr.lines().take(4) {
        println!("  {line}");
    }
    if let Err(e) = svc.objects.put(&key, cdr.into_bytes(), "text/csv").await {
        println!("could not store the file: {e}");
        return;
    }

    step("nightly, dry run (events/nightly-dry-run.json): the plan, nothing written");
    let plan = run(
        &svc,
        json!({"candidate": "demo", "date": date.to_string(), "dry_run": true}),
    )
    .await;
    print_json("planned", &plan["planned"]);
    print_json("by display name", &plan["planned_by_display_name"]);
    print_json("a sample request", &plan["sample_requests"][0]);
    print_json(
        "a sample webhook body",
        &plan["sample_payloads"]["crm-hook"][0],
    );

    step("nightly (events/nightly-manual.json): read, plan, record, export, queue");
    let started = Instant::now();
    let summary = run(&svc, json!({"candidate": "demo", "date": date.to_string()})).await;
    println!(
        "{:.1}s: {} calls read ({} rows in the file), {} bad rows, {} test rows skipped, {} new in the ledger, {} queued for VAN as they were recorded",
        started.elapsed().as_secs_f64(),
        summary["calls_read"],
        summary["files"][0]["rows"],
        summary["bad_rows"],
        summary["test_rows"],
        summary["new_calls"],
        summary["queued"],
    );
    println!(
        "  LiveVox API: {} calls of service 1001; problems: {}",
        summary["livevox"]["rows"],
        serde_json::to_string(&summary["problems"]).unwrap_or_default()
    );
    print_json("planned", &summary["planned"]);
    for day in summary["days"].as_array().into_iter().flatten() {
        println!(
            "  day {}: CSV {} ({} rows), {} more queued by the settle, report: {}",
            day["date"],
            day["csv"]["key"],
            day["csv"]["rows"],
            day["enqueued"],
            day["report"]["status"]
        );
    }

    step(
        "sync-call, driven from the SQS queue in batches of ten (VAN answers 429 and 500 now and then)",
    );
    van.inject(
        Fault::once(
            "canvassResponses",
            FaultKind::TooManyRequests { wait_ms: 40 },
        )
        .times(25),
    );
    van.inject(Fault::once("canvassResponses", FaultKind::ServerError).times(5));
    let started = Instant::now();
    let batches = drain(stack, &svc).await;
    let refused = van.requests().iter().filter(|r| r.status == 429).count();
    let failed = van.requests().iter().filter(|r| r.status == 500).count();
    println!(
        "{batches} batches in {:.1}s; VAN accepted {} results, answered 429 {refused} times and 500 {failed} times (all retried)",
        started.elapsed().as_secs_f64(),
        van.canvass_posts().len()
    );

    let received = receiver.received();
    println!(
        "crm-hook: {} requests, {} accepted, every signature verified: {}, {} idempotency keys",
        received.len(),
        receiver.delivered().len(),
        received.iter().all(|r| r.verified),
        received
            .iter()
            .filter_map(|r| r.idempotency_key.as_deref())
            .collect::<std::collections::BTreeSet<_>>()
            .len()
    );
    if let Some(first) = receiver.delivered().first() {
        print_json("  the first webhook body", &first.body);
    }
    let messages = partner.delivered();
    println!(
        "city-esb: {} SOAP messages over mutual TLS (client certificate {:?}), {} handshakes refused",
        messages.len(),
        messages.first().and_then(|m| m.client_subject_cn.clone()),
        partner.refused_handshakes()
    );
    if let Some(first) = messages.first() {
        for line in first.body.lines().take(12) {
            println!("    {line}");
        }
    }
    let people = action_network.people();
    let requests = action_network.requests();
    println!(
        "supporters: {} people tagged {:?} by {} signup calls, {} answered 429; at most {} requests in one second (Action Network allows 4); emails sent: none",
        people.len(),
        people.first().map(|p| p.tags.clone()).unwrap_or_default(),
        requests.iter().filter(|r| r.method == "POST").count(),
        requests.iter().filter(|r| r.status == 429).count(),
        action_network.busiest_second(),
    );

    step(
        "The next hourly tick (events/nightly-scheduled.json): each call, its outcome final, to the warehouse",
    );
    let tick = json!({"source": "aws.events", "detail-type": "Scheduled Event"});
    run(&svc, tick.clone()).await;
    drain(stack, &svc).await;
    if let Some(url) = warehouse {
        show_warehouse(url).await;
    }
    step("The tick after: nothing pending, so the report goes out");
    run(&svc, tick).await;
    for report in hook.bodies() {
        for line in report["text"].as_str().unwrap_or_default().lines() {
            println!("  {line}");
        }
    }

    step(&format!(
        "GET /status/demo?date={date} (events/status-get.json)"
    ));
    let mut get = with_token(event("status-get.json"), Some(TEST_TOKEN));
    get["rawQueryString"] = format!("date={date}").into();
    get["queryStringParameters"] = json!({ "date": date.to_string() });
    let answer = Answer::from(status::handle(ctx, &svc, request(&get)).await).json();
    print_json("by state", &answer["by_state"]);
    print_json("by display name", &answer["by_display_name"]);
    println!(
        "  VAN requests used: {}; errors: {} (first: {})",
        answer["van_requests"], answer["errors_total"], answer["errors"][0]["error"]["message"]
    );
    for (name, d) in answer["destinations"].as_object().into_iter().flatten() {
        print_json(
            &format!("destination {name} ({})", d["kind"].as_str().unwrap_or("?")),
            &d["by_state"],
        );
    }
    for csv in answer["csv"].as_array().into_iter().flatten() {
        println!(
            "  CSV s3://{}/{} ({} rows)",
            svc.objects.bucket(),
            csv["key"].as_str().unwrap_or_default(),
            csv["rows"]
        );
    }

    step("The same file again, and the day run again: nothing is posted twice");
    let again = demo_data::cdr_night(date, demo_data::DEMO_NIGHT_CALLS);
    let _ = svc.objects.put(&key, again.into_bytes(), "text/csv").await;
    let before = van.canvass_posts().len();
    let rerun = run(&svc, json!({"candidate": "demo", "date": date.to_string()})).await;
    drain(stack, &svc).await;
    println!(
        "  new calls: {}, already known: {}; VAN results accepted before {before}, after {}; webhook requests {} → {}; partner messages {} → {}",
        rerun["new_calls"],
        rerun["known_calls"],
        van.canvass_posts().len(),
        received.len(),
        receiver.received().len(),
        messages.len(),
        partner.received().len(),
    );
}

/// What the warehouse holds: rows per table, and VAN's outcomes beside the calls.
async fn show_warehouse(url: &str) {
    use callsync::destinations::sql::Database;
    let Ok(Database::Postgres(pool)) = Database::connect(url) else {
        return;
    };
    let calls: Result<i64, _> = sqlx::query_scalar("SELECT count(*) FROM callsync_calls")
        .fetch_one(&pool)
        .await;
    let outcomes: Result<Vec<(String, String, i64)>, _> = sqlx::query_as(
        "SELECT destination, state, count(*) FROM callsync_deliveries GROUP BY 1, 2 ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await;
    match (calls, outcomes) {
        (Ok(calls), Ok(outcomes)) => {
            println!("  warehouse: {calls} rows in callsync_calls; callsync_deliveries:");
            for (destination, state, n) in outcomes {
                println!("    {destination:<10} {state:<18} {n}");
            }
        }
        (Err(e), _) | (_, Err(e)) => println!("  warehouse: could not read it back: {e}"),
    }
}

async fn run(svc: &callsync::services::Services, event: Value) -> Value {
    match nightly::handle(svc, event).await {
        Ok(v) => v,
        Err(e) => {
            println!("nightly refused the event: {e}");
            Value::Null
        }
    }
}

fn print_json(label: &str, value: &Value) {
    println!(
        "  {label}: {}",
        serde_json::to_string(value).unwrap_or_default()
    );
}
