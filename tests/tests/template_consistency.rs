//! The deploy template against the code: every function gets, from its own environment as
//! the template resolves it, each variable its wiring reads; each variable names a table,
//! queue, bucket or secret the template declares; and each function's policy allows
//! exactly the AWS actions its adapters call.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeSet, HashMap};

use aws_sdk_dynamodb::error::DisplayErrorContext;
use callsync::adapters::env::{self, Vars};
use callsync::adapters::s3::S3Objects;
use callsync::entrypoints::http::ApiContext;
use callsync::ports::ObjectStore;
use callsync::services::Services;
use callsync_tests::harness::{LocalStack, repo_root};
use serde_json::Value;

/// Functions whose `main` builds an [`ApiContext`].
const HTTP_FUNCTIONS: &[&str] = &["ConfigureFunction", "ValidateFunction", "StatusFunction"];
/// Functions whose `main` builds [`Services`].
const SYNC_FUNCTIONS: &[&str] = &["NightlyFunction", "SyncCallFunction", "StatusFunction"];
/// Variables only a local run sets (fake VAN and LiveVox servers, loopback receivers);
/// never deployed.
const LOCAL_ONLY: &[&str] = &[
    env::VAN_BASE_URL,
    env::LIVEVOX_BASE_URL,
    env::LOCAL_ENDPOINTS,
];
/// Read by the tracing subscriber, not by callsync's own code.
const RUST_LOG: &str = "RUST_LOG";

/// The IAM actions each function's code needs, derived from the SDK operations of the
/// adapter methods it reaches:
/// - `DynamoConfigStore`: `get` GetItem, `put` PutItem, `list` Scan.
/// - `DynamoLedger`: `insert` and `replace` PutItem (conditional), `get` GetItem, `day` Query.
/// - `DynamoDayStore`: `get` and `van_requests` GetItem, `replace` PutItem (conditional),
///   `open_days` Query, `add_van_requests` UpdateItem (an atomic ADD).
/// - `S3Objects`: `list` ListObjectsV2 (s3:ListBucket), `get` and `presign` GetObject,
///   `put` PutObject, `rename` CopyObject (s3:GetObject on the source, s3:PutObject on the
///   target) then DeleteObject.
/// - `SqsQueue::send`: SendMessageBatch, which IAM grants as sqs:SendMessage.
/// - `SecretsManagerStore::get`: GetSecretValue (the API token; VAN and LiveVox keys).
/// - `LambdaLauncher::start`: Invoke (lambda:InvokeFunction).
///
/// Who calls what: configure reads, stores and lists candidates (`http::stored` lists the
/// known ones for a 404); validate reads and lists them. nightly lists candidates (the
/// tick), records and re-reads a day's calls, keeps day records (`update_day`, the lock,
/// `open_days`) and reads the VAN request count for the budget; it reads the inbox, writes
/// the CSV export, moves read and rejected files aside (`ingest::set_aside` → `rename`),
/// presigns report links, and queues VAN-bound calls. sync-call reads the candidate and the
/// call, records the outcome, and adds the VAN requests it made to the day's count; a
/// destination's failed try goes back to the queue with a delay (`send_later`). status
/// reads a day (`GET /status`, with presigned CSV links); `POST /retry` re-plans and
/// settles a day (ledger and day writes, CSV export, queue); a dry `POST /runs` reads the
/// inbox but never moves a file, and a real one is handed to nightly (Invoke) — so status
/// never deletes an object and never touches `open_days` or the counter's UpdateItem.
const NEEDED: &[(&str, &[&str])] = &[
    (
        "ConfigureFunction",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Scan",
            "secretsmanager:GetSecretValue",
        ],
    ),
    (
        "ValidateFunction",
        &[
            "dynamodb:GetItem",
            "dynamodb:Scan",
            "secretsmanager:GetSecretValue",
        ],
    ),
    (
        "NightlyFunction",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            // A run stopped at its deadline starts its own next part.
            "lambda:InvokeFunction",
            "s3:DeleteObject",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "secretsmanager:GetSecretValue",
            "sqs:SendMessage",
        ],
    ),
    (
        "SyncCallFunction",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem",
            "secretsmanager:GetSecretValue",
            "sqs:SendMessage",
        ],
    ),
    (
        "StatusFunction",
        &[
            "dynamodb:GetItem",
            "dynamodb:PutItem",
            "dynamodb:Query",
            "dynamodb:Scan",
            "lambda:InvokeFunction",
            "s3:GetObject",
            "s3:ListBucket",
            "s3:PutObject",
            "secretsmanager:GetSecretValue",
            "sqs:SendMessage",
        ],
    ),
];

/// One function's own variables, exactly as the template gives them.
fn own_vars(stack: &LocalStack, function: &str) -> Vars {
    let vars = stack
        .functions
        .get(function)
        .unwrap_or_else(|| panic!("the template declares no {function}"));
    Vars::from_map(vars.clone())
}

#[tokio::test]
async fn each_api_function_builds_its_wiring_from_its_own_environment() {
    let stack = LocalStack::up(&[], &[]).await;
    for &function in HTTP_FUNCTIONS {
        if let Err(e) = ApiContext::build(&stack.aws, own_vars(&stack, function)) {
            panic!("{function}: {e}: add it to the function's Environment in infra/template.yaml");
        }
    }
}

#[tokio::test]
async fn each_sync_function_builds_its_services_from_its_own_environment() {
    let stack = LocalStack::up(&[], &[]).await;
    for &function in SYNC_FUNCTIONS {
        if let Err(e) = Services::build(&stack.aws, &own_vars(&stack, function)) {
            panic!("{function}: {e}: add it to the function's Environment in infra/template.yaml");
        }
    }
    // Optional to the wiring (only one function starts runs), required by POST /runs.
    assert!(
        own_vars(&stack, "StatusFunction")
            .optional(env::NIGHTLY_FUNCTION)
            .is_some(),
        "StatusFunction needs {} for POST /runs",
        env::NIGHTLY_FUNCTION
    );
}

#[tokio::test]
async fn the_template_sets_only_variables_the_code_reads_and_every_one_somewhere() {
    let stack = LocalStack::up(&[], &[]).await;
    let known: BTreeSet<&str> = env::ALL.iter().copied().chain([RUST_LOG]).collect();
    for (function, vars) in &stack.functions {
        for name in vars.keys() {
            assert!(
                known.contains(name.as_str()),
                "{function} sets {name}, which no code reads: remove it from the template, \
                 or name it in callsync::adapters::env::ALL"
            );
        }
    }
    let set: BTreeSet<&str> = stack
        .functions
        .values()
        .flat_map(|vars| vars.keys().map(String::as_str))
        .collect();
    for name in env::ALL.iter().filter(|n| !LOCAL_ONLY.contains(n)) {
        assert!(
            set.contains(name),
            "the code reads {name}, but no function in the template sets it"
        );
    }
    for name in LOCAL_ONLY {
        assert!(
            !set.contains(name),
            "{name} points the code at local fake servers: the template must not set it"
        );
    }
}

/// What a variable names, so its value can be looked up.
enum Names {
    Table,
    Queue,
    Bucket,
    Secret,
    /// A function: not created locally (cargo lambda runs it), so not looked up.
    Function,
    Url,
    /// A list of extension names: each must be one the code knows.
    Extensions,
    /// A setting the code reads as a number.
    Setting,
}

fn names(var: &str) -> Names {
    match var {
        env::CONFIG_TABLE | env::CALLS_TABLE | env::DAYS_TABLE => Names::Table,
        env::SYNC_QUEUE_URL | env::DELIVERY_QUEUE_URL => Names::Queue,
        env::BUCKET => Names::Bucket,
        env::API_TOKEN_SECRET => Names::Secret,
        env::NIGHTLY_FUNCTION => Names::Function,
        env::VAN_BASE_URL | env::LIVEVOX_BASE_URL | env::LOCAL_ENDPOINTS => Names::Url,
        env::EXTENSIONS => Names::Extensions,
        env::LEDGER_CONCURRENCY => Names::Setting,
        other => panic!("{other}: say here what kind of resource it names, so it is checked"),
    }
}

#[tokio::test]
async fn the_tables_queue_bucket_and_secret_the_variables_name_exist() {
    let stack = LocalStack::up(&[], &[]).await;
    let dynamo = aws_sdk_dynamodb::Client::new(&stack.aws);
    let sqs = aws_sdk_sqs::Client::new(&stack.aws);
    let secrets = aws_sdk_secretsmanager::Client::new(&stack.aws);

    // The lookups tell a declared resource from an undeclared one.
    let missing = format!("{}-undeclared", stack.name);
    assert!(
        dynamo
            .describe_table()
            .table_name(&missing)
            .send()
            .await
            .is_err()
    );
    assert!(
        S3Objects::from_conf(&stack.aws, &missing)
            .list("")
            .await
            .is_err()
    );

    let mut checked = 0;
    for (function, vars) in &stack.functions {
        for (var, value) in vars.iter().filter(|(k, _)| k.as_str() != RUST_LOG) {
            let found = match names(var) {
                Names::Table => dynamo
                    .describe_table()
                    .table_name(value)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| DisplayErrorContext(e).to_string()),
                Names::Queue => sqs
                    .get_queue_attributes()
                    .queue_url(value)
                    .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| DisplayErrorContext(e).to_string()),
                // ListObjectsV2 on the bucket, through the adapter the functions use.
                Names::Bucket => S3Objects::from_conf(&stack.aws, value)
                    .list("")
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Names::Secret => secrets
                    .describe_secret()
                    .secret_id(value)
                    .send()
                    .await
                    .map(drop)
                    .map_err(|e| DisplayErrorContext(e).to_string()),
                Names::Extensions => value
                    .split(',')
                    .filter(|n| !n.is_empty())
                    .find(|n| !callsync::extensions::known().contains(n))
                    .map_or(Ok(()), |n| Err(format!("{n:?} is not an extension"))),
                Names::Setting => callsync::services::settings(&env::Vars::from_map(
                    [(var.clone(), value.clone())].into_iter().collect(),
                ))
                .map(drop)
                .map_err(|e| e.to_string()),
                Names::Function | Names::Url => continue,
            };
            if let Err(e) = found {
                panic!("{function}'s {var} = {value:?} names nothing the stack created: {e}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} variables were looked up");
}

#[test]
fn each_function_is_allowed_exactly_the_actions_its_adapters_call() {
    let granted: HashMap<String, BTreeSet<String>> = local_stack("policies");

    let needed: HashMap<&str, BTreeSet<&str>> = NEEDED
        .iter()
        .map(|(f, actions)| (*f, actions.iter().copied().collect()))
        .collect();
    let declared: BTreeSet<&str> = granted.keys().map(String::as_str).collect();
    assert_eq!(
        declared,
        needed.keys().copied().collect(),
        "the template's functions and this test's NEEDED table differ"
    );
    for (function, need) in &needed {
        let has: BTreeSet<&str> = granted[*function].iter().map(String::as_str).collect();
        let missing: Vec<_> = need.difference(&has).collect();
        assert!(
            missing.is_empty(),
            "{function} calls {missing:?} but its Policies do not allow them: add them in infra/template.yaml"
        );
        let unused: Vec<_> = has.difference(need).collect();
        assert!(
            unused.is_empty(),
            "{function} is allowed {unused:?}, which none of its code calls: remove them from \
             infra/template.yaml (or, if new code calls them, add them to NEEDED)"
        );
    }
}

/// What `infra/local_stack.py <command>` prints, read as JSON.
fn local_stack<T: serde::de::DeserializeOwned>(command: &str) -> T {
    let root = repo_root();
    let out = std::process::Command::new(root.join(".venv/bin/python"))
        .arg(root.join("infra/local_stack.py"))
        .arg(command)
        .output()
        .expect("run infra/local_stack.py (is .venv installed? `make venv`)");
    assert!(
        out.status.success(),
        "local_stack.py {command} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("local_stack.py prints JSON")
}

/// Each function's grants per action, as the template writes them.
fn grants() -> HashMap<String, HashMap<String, BTreeSet<String>>> {
    local_stack("grants")
}

#[test]
fn bucket_grants_name_the_prefixes_each_function_uses_and_nothing_deletes_a_receipt() {
    let grants = grants();
    let prefixes = |function: &str, action: &str| -> BTreeSet<String> {
        grants[function]
            .get(action)
            .into_iter()
            .flatten()
            .map(|r| {
                r.strip_prefix("${DataBucket.Arn}/")
                    .unwrap_or_else(|| panic!("{function} {action} on {r:?}: name a prefix"))
                    .to_owned()
            })
            .collect()
    };
    let set = |list: &[&str]| -> BTreeSet<String> { list.iter().map(|s| s.to_string()).collect() };
    // nightly reads the inbox and its own exports (a stopped export is read back), writes
    // exports and moves read files aside, and deletes only what it moved out of the inbox.
    assert_eq!(
        prefixes("NightlyFunction", "s3:GetObject"),
        set(&["exports/*", "inbox/*"])
    );
    assert_eq!(
        prefixes("NightlyFunction", "s3:PutObject"),
        set(&["exports/*", "processed/*", "rejected/*"])
    );
    assert_eq!(
        prefixes("NightlyFunction", "s3:DeleteObject"),
        set(&["inbox/*"])
    );
    assert_eq!(
        prefixes("StatusFunction", "s3:GetObject"),
        set(&["exports/*", "inbox/*"])
    );
    assert_eq!(
        prefixes("StatusFunction", "s3:PutObject"),
        set(&["exports/*"])
    );
    for function in grants.keys() {
        assert!(
            !prefixes(function, "s3:DeleteObject")
                .iter()
                .any(|p| p.starts_with("exports")),
            "{function} may delete CSV exports, which ledger receipts point into"
        );
    }
}

#[test]
fn candidate_secrets_are_granted_by_their_prefix_and_the_token_only_to_the_api() {
    let grants = grants();
    for (function, actions) in &grants {
        let Some(secrets) = actions.get("secretsmanager:GetSecretValue") else {
            continue;
        };
        for s in secrets {
            assert!(
                s == "!Ref ApiTokenSecret" || s.ends_with(":secret:callsync/*/*"),
                "{function} may read {s:?}: candidate secrets are callsync/<slug>/<name>"
            );
        }
        let reads_token = secrets.contains("!Ref ApiTokenSecret");
        assert_eq!(
            reads_token,
            HTTP_FUNCTIONS.contains(&function.as_str()),
            "{function}: only the API functions read the API token"
        );
    }
}

#[test]
fn the_bucket_keeps_every_version_and_refuses_requests_without_tls() {
    let resources: serde_json::Value = local_stack("resources");
    let bucket = &resources["DataBucket"]["Properties"];
    assert_eq!(bucket["VersioningConfiguration"]["Status"], "Enabled");
    let policy = &resources["DataBucketPolicy"]["Properties"];
    assert_eq!(policy["Bucket"], serde_json::json!({"Ref": "DataBucket"}));
    let statements = policy["PolicyDocument"]["Statement"].as_array().unwrap();
    let tls_only = statements.iter().any(|s| {
        s["Effect"] == "Deny"
            && s["Principal"] == "*"
            && s["Action"] == "s3:*"
            && s["Condition"]["Bool"]["aws:SecureTransport"] == "false"
            && s["Resource"].as_array().is_some_and(|r| r.len() == 2)
    });
    assert!(
        tls_only,
        "a Deny of every request without TLS, on the bucket and its objects: {policy:#}"
    );
}

#[test]
fn the_functions_that_start_runs_may_invoke_the_nightly_function_and_no_other() {
    let resources: Value = local_stack("resources");
    let nightly = &resources["NightlyFunction"]["Properties"];
    // The nightly function names itself as it is named (a !Ref to itself would be a cycle).
    let own_name = nightly["FunctionName"]["Fn::Sub"].as_str().unwrap();
    assert_eq!(
        nightly["Environment"]["Variables"][env::NIGHTLY_FUNCTION]["Fn::Sub"],
        own_name,
        "the nightly function starts its next part under its own name"
    );
    let own_arn = format!(
        "arn:${{AWS::Partition}}:lambda:${{AWS::Region}}:${{AWS::AccountId}}:function:{own_name}"
    );
    let allowed = BTreeSet::from([own_arn, "!GetAtt NightlyFunction.Arn".to_owned()]);
    let mut invokers = BTreeSet::new();
    for (function, per_action) in grants() {
        let Some(targets) = per_action.get("lambda:InvokeFunction") else {
            continue;
        };
        assert!(
            targets.is_subset(&allowed),
            "{function} may invoke {targets:?}: only the nightly function is ever started"
        );
        invokers.insert(function);
    }
    assert_eq!(
        invokers,
        BTreeSet::from(["NightlyFunction".to_owned(), "StatusFunction".to_owned()])
    );
}
