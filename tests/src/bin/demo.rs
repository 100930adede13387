//! `make demo`: callsync's API functions working on one machine. Starts the fake VAN and
//! fake LiveVox, builds a local stack in moto from infra/template.yaml, then sends the
//! sample events in events/ through the real `configure` and `validate` handlers and prints
//! what they answer. Everything it started stops when it ends.

use callsync::entrypoints::{configure, validate};
use callsync_tests::demo_data;
use callsync_tests::fake_livevox::{FakeLiveVox, LiveVoxData};
use callsync_tests::fake_van::{FakeVan, VanData};
use callsync_tests::harness::{Answer, LocalStack, TEST_TOKEN, event, request, with_token};

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

#[tokio::main]
async fn main() {
    let van = FakeVan::start(VanData::demo()).await;
    let livevox = FakeLiveVox::start(LiveVoxData::demo()).await;
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
    let stack = LocalStack::up(
        &[
            ("callsync/demo/van", van_secret.to_string()),
            ("callsync/demo/livevox", livevox_secret.to_string()),
        ],
        &[
            ("CALLSYNC_VAN_BASE_URL", van.base_url()),
            ("CALLSYNC_LIVEVOX_BASE_URL", livevox.base_url()),
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

    step("What reached the fakes");
    println!(
        "VAN: {} requests (0 canvass posts: configure and validate only read); LiveVox: {} logins, {} requests",
        van.requests().len(),
        livevox.logins(),
        livevox.requests().len()
    );
    println!("\nDone. `make dev-up` keeps a stack like this running for `cargo lambda watch`.");
}
