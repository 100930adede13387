//! The AWS adapters against moto, through the real SDK: the config table and the secrets
//! cache, on a stack built from the template.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use callsync::adapters::dynamo_config::DynamoConfigStore;
use callsync::adapters::secrets_manager::SecretsManagerStore;
use callsync::candidate::CandidateDoc;
use callsync::ports::{ConfigStore, SecretStore, StoreError};
use callsync::values::CandidateSlug;
use callsync_tests::harness::LocalStack;

fn doc(slug: &str, name: &str) -> CandidateDoc {
    serde_json::from_value(serde_json::json!({
        "slug": slug, "display_name": name, "time_zone": "America/Chicago",
        "sync_hour": 4, "source": {"cdr": {"inbox_prefix": format!("inbox/{slug}/")}},
        "strategy": {"budget": {"daily_free_requests": 250}},
        "van": {"secret_name": "callsync/x/van", "database_mode": "my_campaign"},
        "results": [{"result": "Busy", "display_name": "Busy", "success": false,
                     "result_code_id": 18, "csv": true}]
    }))
    .unwrap()
}

#[tokio::test]
async fn candidate_documents_round_trip_through_the_config_table() {
    let stack = LocalStack::up(&[], &[]).await;
    let store = DynamoConfigStore::new(
        aws_sdk_dynamodb::Client::new(&stack.aws),
        &stack.env["CALLSYNC_CONFIG_TABLE"],
    );
    let a = CandidateSlug::parse("pa07-lee").unwrap();
    assert_eq!(store.get(&a).await.unwrap(), None);
    store.put(&doc("pa07-lee", "Lee")).await.unwrap();
    store.put(&doc("ny14-smith", "Smith")).await.unwrap();
    assert_eq!(store.get(&a).await.unwrap(), Some(doc("pa07-lee", "Lee")));
    store.put(&doc("pa07-lee", "Lee for PA")).await.unwrap();
    assert_eq!(
        store.get(&a).await.unwrap().unwrap().display_name,
        "Lee for PA"
    );
    let slugs: Vec<String> = store
        .list()
        .await
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(slugs, vec!["ny14-smith", "pa07-lee"]);
}

#[tokio::test]
async fn secrets_are_cached_briefly_forgotten_when_refused_and_a_missing_one_is_named() {
    let stack = LocalStack::up(&[("callsync/cache-test/van", "first".into())], &[]).await;
    let client = aws_sdk_secretsmanager::Client::new(&stack.aws);
    let cached = SecretsManagerStore::new(client.clone(), Duration::from_secs(300));
    let uncached = SecretsManagerStore::new(client.clone(), Duration::ZERO);
    let name = "callsync/cache-test/van";
    assert_eq!(cached.get(name).await.unwrap().expose(), "first");
    client
        .put_secret_value()
        .secret_id(name)
        .secret_string("rotated")
        .send()
        .await
        .unwrap();
    assert_eq!(
        cached.get(name).await.unwrap().expose(),
        "first",
        "served from the cache"
    );
    assert_eq!(uncached.get(name).await.unwrap().expose(), "rotated");
    // A secret the system refused is forgotten, and read afresh the next time.
    cached.forget(name).await;
    assert_eq!(cached.get(name).await.unwrap().expose(), "rotated");
    match cached.get("callsync/nope").await {
        Err(StoreError::SecretNotFound(n)) => assert_eq!(n, "callsync/nope"),
        other => panic!("expected SecretNotFound, got {other:?}"),
    }
    // The template's API token secret exists under the name the functions are given.
    let token = cached
        .get(&stack.env["CALLSYNC_API_TOKEN_SECRET"])
        .await
        .unwrap();
    assert_eq!(token.expose(), callsync_tests::harness::TEST_TOKEN);
}
