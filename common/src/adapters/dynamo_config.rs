//! Candidate documents in DynamoDB: one item per slug, the document as a native map so it
//! reads well in the console.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};

use crate::candidate::CandidateDoc;
use crate::ports::{ConfigStore, StoreError};
use crate::values::CandidateSlug;

#[derive(Debug, Clone)]
pub struct DynamoConfigStore {
    client: Client,
    table: String,
}

#[derive(Serialize, Deserialize)]
struct Item {
    slug: String,
    document: CandidateDoc,
    updated_at: String,
}

/// The most DynamoDB holds in one item: 400 KB, names and values together.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// The item `put` writes for `doc`.
fn item(doc: &CandidateDoc) -> Result<HashMap<String, AttributeValue>, StoreError> {
    let item = Item {
        slug: doc.slug.clone(),
        document: doc.clone(),
        updated_at: jiff::Timestamp::now().to_string(),
    };
    serde_dynamo::aws_sdk_dynamodb_1::to_item(item).map_err(|e| StoreError::Corrupt {
        what: format!("candidate {}", doc.slug),
        message: e.to_string(),
    })
}

/// How many bytes DynamoDB counts for the item `put` writes for `doc`, by its published
/// rules (attribute names and values in UTF-8; numbers by their digits; 3 bytes and 1 per
/// element for maps and lists), to compare with [`MAX_ITEM_BYTES`] before writing.
pub fn stored_bytes(doc: &CandidateDoc) -> Result<usize, StoreError> {
    Ok(item(doc)?
        .iter()
        .map(|(name, value)| name.len() + value_bytes(value))
        .sum())
}

fn value_bytes(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_bytes(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Ss(v) => v.iter().map(String::len).sum(),
        AttributeValue::Ns(v) => v.iter().map(|n| number_bytes(n)).sum(),
        AttributeValue::Bs(v) => v.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(items) => 3 + items.iter().map(|v| 1 + value_bytes(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_bytes(v))
                .sum::<usize>()
        }
        _ => 1,
    }
}

/// A number takes about one byte per two significant digits, plus one.
fn number_bytes(n: &str) -> usize {
    let digits = n.bytes().filter(u8::is_ascii_digit).count();
    digits.div_ceil(2) + 1
}

impl DynamoConfigStore {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
        }
    }
}

fn unavailable(e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(
        "the config table",
        aws_sdk_dynamodb::error::DisplayErrorContext(e).to_string(),
    )
}

#[async_trait]
impl ConfigStore for DynamoConfigStore {
    async fn get(&self, slug: &CandidateSlug) -> Result<Option<CandidateDoc>, StoreError> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("slug", AttributeValue::S(slug.to_string()))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        out.item
            .map(|item| {
                serde_dynamo::aws_sdk_dynamodb_1::from_item::<Item>(item)
                    .map(|i| i.document)
                    .map_err(|e| StoreError::Corrupt {
                        what: format!("candidate {slug}"),
                        message: e.to_string(),
                    })
            })
            .transpose()
    }

    async fn put(&self, doc: &CandidateDoc) -> Result<(), StoreError> {
        let item = item(doc)?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<CandidateSlug>, StoreError> {
        let mut slugs = Vec::new();
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .projection_expression("slug")
            .into_paginator()
            .items()
            .send();
        while let Some(item) = pages.next().await {
            let item = item.map_err(unavailable)?;
            if let Some(AttributeValue::S(s)) = item.get("slug")
                && let Ok(slug) = CandidateSlug::parse(s)
            {
                slugs.push(slug);
            }
        }
        slugs.sort();
        Ok(slugs)
    }
}
