//! The local stack for integration tests: a private set of tables and secrets in moto,
//! created from infra/template.yaml by infra/local_stack.py (the same path `make dev-up`
//! takes), and the function wiring built from the variables the template gives.
//!
//! moto itself is started by `make test` / `make demo` (infra/with_moto.sh), which passes
//! its URL in `CALLSYNC_TEST_MOTO_URL`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use aws_sdk_dynamodb::config::Credentials;
use callsync::adapters::env::Vars;
use callsync::entrypoints::http::ApiContext;
use serde::Deserialize;

/// The API token every local stack is created with.
pub const TEST_TOKEN: &str = "test-token-0123456789";

/// One isolated stack: its own table names and secret names.
#[derive(Debug)]
pub struct LocalStack {
    pub name: String,
    pub moto_url: String,
    /// Every variable the template gives any function, resolved to this stack.
    pub env: HashMap<String, String>,
    /// Each function's own variables, by the template's logical id.
    pub functions: HashMap<String, HashMap<String, String>>,
    /// Every created resource's physical id (table name, bucket name, queue URL, secret
    /// name), by the template's logical id.
    pub resources: HashMap<String, String>,
    pub aws: aws_config::SdkConfig,
}

#[derive(Deserialize)]
struct UpOutput {
    env: HashMap<String, String>,
    functions: HashMap<String, HashMap<String, String>>,
    resources: HashMap<String, String>,
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

/// moto's URL, or a panic that says how to get one.
pub fn moto_url() -> String {
    std::env::var("CALLSYNC_TEST_MOTO_URL").unwrap_or_else(|_| {
        panic!(
            "CALLSYNC_TEST_MOTO_URL is not set: integration tests need moto. Run them with `make test`, \
             or `infra/with_moto.sh cargo test ...`"
        )
    })
}

impl LocalStack {
    /// Create a fresh stack from the template, with extra secrets (`name`, `value`) and
    /// extra variables (`name`, `value`) such as fake server URLs.
    pub async fn up(secrets: &[(&str, String)], vars: &[(&str, String)]) -> LocalStack {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "t{}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            fastrand_suffix()
        );
        let moto_url = moto_url();
        let root = repo_root();
        let mut cmd = tokio::process::Command::new(root.join(".venv/bin/python"));
        cmd.arg(root.join("infra/local_stack.py"))
            .args(["up", "--json", "--endpoint", &moto_url, "--stack", &name])
            .arg("--secret")
            .arg(format!("ApiTokenSecret={TEST_TOKEN}"))
            // The tests' receivers listen on loopback; a deployed stack never allows it.
            .arg("--set")
            .arg("CALLSYNC_LOCAL_ENDPOINTS=loopback");
        for (k, v) in secrets {
            cmd.arg("--secret").arg(format!("{k}={v}"));
        }
        for (k, v) in vars {
            cmd.arg("--set").arg(format!("{k}={v}"));
        }
        let out = cmd
            .output()
            .await
            .expect("run infra/local_stack.py (is .venv installed? `make venv`)");
        assert!(
            out.status.success(),
            "local_stack.py up failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let up: UpOutput = serde_json::from_slice(&out.stdout).expect("local_stack.py prints JSON");
        let aws = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .endpoint_url(&moto_url)
            .region(aws_config::Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "local-stack"))
            .load()
            .await;
        LocalStack {
            name,
            moto_url,
            env: up.env,
            functions: up.functions,
            resources: up.resources,
            aws,
        }
    }

    /// Store `value` as secret `name`, created or replaced. Candidate secrets are shared
    /// by every stack on one moto server: a test replacing one names its own.
    pub async fn put_secret(&self, name: &str, value: &str) {
        let secrets = aws_sdk_secretsmanager::Client::new(&self.aws);
        let created = secrets
            .create_secret()
            .name(name)
            .secret_string(value)
            .send()
            .await;
        if created.is_err() {
            secrets
                .put_secret_value()
                .secret_id(name)
                .secret_string(value)
                .send()
                .await
                .expect("replace the secret's value");
        }
    }

    /// The API functions' wiring, exactly as `main` builds it, from this stack's variables.
    pub fn api_context(&self) -> ApiContext {
        let mut ctx = ApiContext::build(&self.aws, Vars::from_map(self.env.clone()))
            .expect("the template gives the API functions every variable they need");
        ctx.connectors.van_options.retry.base_delay = std::time::Duration::from_millis(5);
        ctx.connectors.van_options.retry.deadline = std::time::Duration::from_secs(5);
        ctx
    }
}

fn fastrand_suffix() -> String {
    use std::time::{SystemTime, UNIX_EPOCH};
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:x}")
}

/// An API Gateway HTTP API (payload 2.0) event from events/, as the Lambda runtime would
/// hand it to the handler.
pub fn event(name: &str) -> serde_json::Value {
    let path = repo_root().join("events").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Turn an event into the request the handler receives.
pub fn request(event: &serde_json::Value) -> lambda_http::Request {
    lambda_http::request::from_str(&event.to_string()).expect("a valid HTTP API event")
}

/// Point an event at another candidate (path, raw path, path parameter, request context).
pub fn for_candidate(mut event: serde_json::Value, slug: &str) -> serde_json::Value {
    let path = event["rawPath"].as_str().unwrap_or_default().to_owned();
    let mut parts: Vec<&str> = path.split('/').collect();
    if parts.len() > 2 {
        parts[2] = slug;
    }
    let new_path = parts.join("/");
    event["rawPath"] = new_path.clone().into();
    event["requestContext"]["http"]["path"] = new_path.into();
    if event.get("pathParameters").is_some() {
        event["pathParameters"]["candidate"] = slug.into();
    }
    event
}

/// Set the bearer token an event carries (`None` removes it).
pub fn with_token(mut event: serde_json::Value, token: Option<&str>) -> serde_json::Value {
    let headers = event["headers"]
        .as_object_mut()
        .expect("events have headers");
    match token {
        Some(t) => {
            headers.insert("authorization".into(), format!("Bearer {t}").into());
        }
        None => {
            headers.remove("authorization");
        }
    }
    event
}

/// A handler's answer, read back.
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl Answer {
    pub fn from(resp: lambda_http::Response<lambda_http::Body>) -> Self {
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let body = match resp.into_body() {
            lambda_http::Body::Text(t) => t,
            lambda_http::Body::Binary(b) => String::from_utf8_lossy(&b).into_owned(),
            _ => String::new(),
        };
        Answer {
            status,
            content_type,
            body,
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("answer is not JSON ({e}): {}", self.body))
    }
}
