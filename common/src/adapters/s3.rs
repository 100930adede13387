//! The bucket in S3: CDR inboxes, CSV exports, and presigned links to them.

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;

use crate::ports::{ObjectInfo, ObjectStore, StoreError, Upload};

const WHAT: &str = "the bucket";

#[derive(Debug, Clone)]
pub struct S3Objects {
    client: Client,
    bucket: String,
}

fn unavailable(e: impl std::error::Error) -> StoreError {
    StoreError::Unavailable(WHAT, DisplayErrorContext(e).to_string())
}

/// `bucket/key` for `x-amz-copy-source`: percent-encoded except the unreserved characters
/// and `/`, so keys with spaces or non-ASCII names copy as themselves.
fn copy_source(bucket: &str, key: &str) -> String {
    let mut out = String::with_capacity(bucket.len() + key.len() + 1);
    for b in bucket.bytes().chain([b'/']).chain(key.bytes()) {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b'/') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

impl S3Objects {
    /// The object's answer, its body not read yet; a missing key is `Corrupt`.
    async fn get_object(
        &self,
        key: &str,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, StoreError> {
        self.client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| {
                if e.as_service_error().is_some_and(|e| e.is_no_such_key()) {
                    StoreError::Corrupt {
                        what: format!("object {key}"),
                        message: "does not exist".into(),
                    }
                } else {
                    unavailable(e)
                }
            })
    }

    pub fn new(client: Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
        }
    }

    /// A client with path-style addressing (`https://s3.…/bucket/key`), which S3 and the
    /// local emulator both serve; virtual-host style needs DNS the emulator does not have.
    pub fn from_conf(sdk_config: &aws_config::SdkConfig, bucket: impl Into<String>) -> Self {
        let config = aws_sdk_s3::config::Builder::from(sdk_config)
            .force_path_style(true)
            .build();
        Self::new(Client::from_conf(config), bucket)
    }
}

/// The size of the parts of a multipart upload (S3 takes 5 MiB at least, but for the last).
const PART: usize = 8 * 1024 * 1024;

/// An object written in parts: a file smaller than one part is one `PutObject` at the end,
/// a bigger one a multipart upload (created with its first part, completed at the end,
/// aborted on failure — the bucket's lifecycle rule clears any a dead run leaves).
#[derive(Debug)]
struct S3Upload {
    objects: S3Objects,
    key: String,
    content_type: String,
    upload_id: Option<String>,
    parts: Vec<aws_sdk_s3::types::CompletedPart>,
    buffer: Vec<u8>,
}

impl S3Upload {
    async fn send_part(&mut self, part: Vec<u8>) -> Result<(), StoreError> {
        let (client, bucket) = (&self.objects.client, &self.objects.bucket);
        let id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = client
                    .create_multipart_upload()
                    .bucket(bucket)
                    .key(&self.key)
                    .content_type(&self.content_type)
                    .send()
                    .await
                    .map_err(unavailable)?;
                let id = created.upload_id.ok_or_else(|| {
                    StoreError::Unavailable(WHAT, "a multipart upload came without its id".into())
                })?;
                self.upload_id = Some(id.clone());
                id
            }
        };
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let sent = client
            .upload_part()
            .bucket(bucket)
            .key(&self.key)
            .upload_id(id)
            .part_number(number)
            .body(ByteStream::from(part))
            .send()
            .await
            .map_err(unavailable)?;
        self.parts.push(
            aws_sdk_s3::types::CompletedPart::builder()
                .part_number(number)
                .set_e_tag(sent.e_tag)
                .build(),
        );
        Ok(())
    }
}

#[async_trait]
impl Upload for S3Upload {
    async fn write(&mut self, bytes: Vec<u8>) -> Result<(), StoreError> {
        self.buffer.extend_from_slice(&bytes);
        while self.buffer.len() >= PART {
            let rest = self.buffer.split_off(PART);
            let part = std::mem::replace(&mut self.buffer, rest);
            self.send_part(part).await?;
        }
        Ok(())
    }

    async fn finish(mut self: Box<Self>) -> Result<(), StoreError> {
        let body = std::mem::take(&mut self.buffer);
        let Some(id) = self.upload_id.clone() else {
            return self.objects.put(&self.key, body, &self.content_type).await;
        };
        if !body.is_empty() {
            self.send_part(body).await?;
        }
        self.objects
            .client
            .complete_multipart_upload()
            .bucket(&self.objects.bucket)
            .key(&self.key)
            .upload_id(id)
            .multipart_upload(
                aws_sdk_s3::types::CompletedMultipartUpload::builder()
                    .set_parts(Some(std::mem::take(&mut self.parts)))
                    .build(),
            )
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn abort(self: Box<Self>) {
        let Some(id) = &self.upload_id else { return };
        if let Err(e) = self
            .objects
            .client
            .abort_multipart_upload()
            .bucket(&self.objects.bucket)
            .key(&self.key)
            .upload_id(id)
            .send()
            .await
        {
            tracing::warn!(key = %self.key, error = %DisplayErrorContext(e), "an upload could not be aborted; the lifecycle rule clears it");
        }
    }
}

#[async_trait]
impl ObjectStore for S3Objects {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectInfo>, StoreError> {
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .into_paginator()
            .send();
        let mut objects = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(unavailable)?;
            objects.extend(page.contents().iter().filter_map(|o| {
                let key = o.key()?;
                // "Folders" made in the console are empty objects named `prefix/`.
                (!key.ends_with('/')).then(|| ObjectInfo {
                    key: key.to_owned(),
                    size: o.size().and_then(|s| u64::try_from(s).ok()).unwrap_or(0),
                    etag: o.e_tag().unwrap_or_default().to_owned(),
                })
            }));
        }
        objects.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(objects)
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, StoreError> {
        let out = self.get_object(key).await?;
        let body = out.body.collect().await.map_err(unavailable)?;
        Ok(body.into_bytes().to_vec())
    }

    async fn open(&self, key: &str) -> Result<crate::ports::Chunks, StoreError> {
        let out = self.get_object(key).await?;
        Ok(Box::pin(futures::stream::try_unfold(
            out.body,
            |mut body| async move {
                Ok(body
                    .try_next()
                    .await
                    .map_err(unavailable)?
                    .map(|c| (c, body)))
            },
        )))
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), StoreError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn upload(
        &self,
        key: &str,
        content_type: &str,
    ) -> Result<Box<dyn Upload + '_>, StoreError> {
        Ok(Box::new(S3Upload {
            objects: self.clone(),
            key: key.to_owned(),
            content_type: content_type.to_owned(),
            upload_id: None,
            parts: Vec::new(),
            buffer: Vec::new(),
        }))
    }

    async fn rename(&self, from: &str, to: &str) -> Result<(), StoreError> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(copy_source(&self.bucket, from))
            .send()
            .await
            .map_err(unavailable)?;
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(from)
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    async fn presign(&self, key: &str, ttl: std::time::Duration) -> Result<String, StoreError> {
        let config = PresigningConfig::expires_in(ttl).map_err(|e| StoreError::Corrupt {
            what: format!("a link to {key}"),
            message: e.to_string(),
        })?;
        let request = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .presigned(config)
            .await
            .map_err(unavailable)?;
        Ok(request.uri().to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_sources_keep_slashes_and_encode_the_rest() {
        assert_eq!(
            copy_source("b-1", "inbox/pa07 lee/Nov 21+22 ü.csv"),
            "b-1/inbox/pa07%20lee/Nov%2021%2B22%20%C3%BC.csv"
        );
    }
}
