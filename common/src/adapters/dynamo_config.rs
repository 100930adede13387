//! Candidate documents in DynamoDB: one item per slug, the document as a native map so it
//! reads well in the console.

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
        let item = Item {
            slug: doc.slug.clone(),
            document: doc.clone(),
            updated_at: jiff::Timestamp::now().to_string(),
        };
        let item =
            serde_dynamo::aws_sdk_dynamodb_1::to_item(item).map_err(|e| StoreError::Corrupt {
                what: format!("candidate {}", doc.slug),
                message: e.to_string(),
            })?;
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
