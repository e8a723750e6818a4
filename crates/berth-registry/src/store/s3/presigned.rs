//! The S3 requests `object_store` does not make, sent as presigned requests
//! (object_store signs them; reqwest sends them): the bucket's `HEAD`
//! (readiness), `ListMultipartUploads` (the sweep finds multipart uploads
//! no session names) and `UploadPartCopy` (server-side copies past the
//! 5 GiB a single `CopyObject` allows).
//!
//! Every signed header is sent exactly as signed; the URL lives for
//! [`SIGNED_FOR`], long enough for the one request it is made for. A
//! presigned URL is a credential while it lives: errors leave it out.

use std::time::{Duration, SystemTime};

use object_store::aws::AmazonS3;
use object_store::path::Path;
use object_store::signer::{SignedUrlOptions, Signer};
use reqwest::Method;
use reqwest::header::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::s3_error;
use crate::store::StoreError;

/// How long a presigned request of the store's own stays valid.
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Sends one presigned request; a status other than 2xx is an error that
/// names the operation and carries S3's answer.
pub async fn send(
    s3: &AmazonS3,
    http: &reqwest::Client,
    method: Method,
    path: &Path,
    query: &[(&str, &str)],
    headers: &[(&'static str, String)],
    what: &str,
) -> Result<reqwest::Response, StoreError> {
    let mut options = SignedUrlOptions::default().with_query(
        query
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let mut values = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let name = HeaderName::from_static(name);
        let value = HeaderValue::from_str(value).map_err(|e| other(what, &e.to_string()))?;
        options = options.with_signed_header(name.clone(), value.clone());
        values.push((name, value));
    }
    let url = s3
        .signed_url_opts(method.clone(), path, SIGNED_FOR, &options)
        .await
        .map_err(s3_error)?;
    let mut request = http.request(method, url.as_str());
    for (name, value) in values {
        request = request.header(name, value);
    }
    let response = request
        .send()
        .await
        .map_err(|e| other(what, &describe(e)))?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    if status == reqwest::StatusCode::NOT_FOUND {
        return Err(StoreError::NotFound);
    }
    let body = response.text().await.unwrap_or_default();
    let shown: String = body.chars().take(300).collect();
    Err(other(what, &format!("S3 answered {status}: {shown}")))
}

/// A reqwest error and its causes (e.g. "connection refused"), without the
/// URL: a presigned URL is a credential while it lives.
fn describe(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        cause = c.source();
    }
    text
}

fn other(what: &str, why: &str) -> StoreError {
    StoreError::Io(std::io::Error::other(format!("S3 {what} failed: {why}")))
}

/// One multipart upload in progress.
#[derive(Debug, Clone)]
pub struct PendingUpload {
    /// The object key it will complete to (with the store's prefix).
    pub key: String,
    /// Its id.
    pub upload_id: String,
    /// When it was started, when S3 says (a time it cannot parse counts as now).
    pub initiated: SystemTime,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListMultipartUploadsResult {
    #[serde(default, rename = "Upload")]
    uploads: Vec<UploadEntry>,
    #[serde(default)]
    is_truncated: bool,
    next_key_marker: Option<String>,
    next_upload_id_marker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadEntry {
    key: String,
    upload_id: String,
    initiated: Option<String>,
}

/// Up to about `limit` multipart uploads in progress whose keys start with
/// `prefix` (`ListMultipartUploads`, followed page by page).
pub async fn list_multipart_uploads(
    s3: &AmazonS3,
    http: &reqwest::Client,
    prefix: &str,
    limit: usize,
) -> Result<Vec<PendingUpload>, StoreError> {
    let mut found = Vec::new();
    let mut markers: Option<(String, String)> = None;
    loop {
        let mut query = vec![("uploads", ""), ("prefix", prefix)];
        if let Some((key, id)) = &markers {
            query.push(("key-marker", key));
            query.push(("upload-id-marker", id));
        }
        let response = send(
            s3,
            http,
            Method::GET,
            &Path::from(""),
            &query,
            &[],
            "listing multipart uploads",
        )
        .await?;
        let body = response
            .text()
            .await
            .map_err(|e| other("listing multipart uploads", &describe(e)))?;
        let page: ListMultipartUploadsResult = quick_xml::de::from_str(&body)
            .map_err(|e| other("listing multipart uploads", &e.to_string()))?;
        for entry in page.uploads {
            let initiated = entry
                .initiated
                .as_deref()
                .and_then(|t| berth_core::token::parse_rfc3339(t).ok())
                .and_then(|secs| u64::try_from(secs).ok())
                .map_or_else(SystemTime::now, |secs| {
                    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
                });
            found.push(PendingUpload {
                key: entry.key,
                upload_id: entry.upload_id,
                initiated,
            });
        }
        match (
            page.is_truncated,
            page.next_key_marker,
            page.next_upload_id_marker,
        ) {
            (true, Some(key), Some(id)) if found.len() < limit => markers = Some((key, id)),
            _ => return Ok(found),
        }
    }
}

#[derive(Debug, Deserialize)]
struct CopyPartResult {
    #[serde(rename = "ETag")]
    e_tag: String,
    #[serde(rename = "ChecksumSHA256")]
    checksum_sha256: Option<String>,
}

/// A part's id as `object_store` completes a multipart upload with
/// checksums: its ETag and SHA-256, in this XML form (`PartMetadata` in
/// object_store's `client/s3.rs`; a bare ETag is read as a part without one).
#[derive(Debug, Serialize)]
struct PartMetadata {
    e_tag: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    checksum_sha256: Option<String>,
}

/// `UploadPartCopy`: bytes `start..=end` of `source` (a key with the
/// store's prefix, in `bucket`) as part `part_number` (1-based) of multipart
/// upload `upload_id` of `target`; the part's ETag.
#[expect(clippy::too_many_arguments, reason = "one S3 request's parameters")]
pub async fn upload_part_copy(
    s3: &AmazonS3,
    http: &reqwest::Client,
    bucket: &str,
    source: &Path,
    target: &Path,
    upload_id: &str,
    part_number: usize,
    (start, end): (u64, u64),
) -> Result<String, StoreError> {
    let part = part_number.to_string();
    let response = send(
        s3,
        http,
        Method::PUT,
        target,
        &[("partNumber", &part), ("uploadId", upload_id)],
        &[
            ("x-amz-copy-source", format!("{bucket}/{source}")),
            ("x-amz-copy-source-range", format!("bytes={start}-{end}")),
        ],
        "copying a part",
    )
    .await?;
    let body = response
        .text()
        .await
        .map_err(|e| other("copying a part", &describe(e)))?;
    // S3 may answer 200 with an error document for a copy that failed late.
    let result: CopyPartResult = quick_xml::de::from_str(&body).map_err(|e| {
        let shown: String = body.chars().take(300).collect();
        other("copying a part", &format!("{e}: {shown}"))
    })?;
    match result.checksum_sha256 {
        None => Ok(result.e_tag),
        Some(checksum) => quick_xml::se::to_string(&PartMetadata {
            e_tag: result.e_tag,
            checksum_sha256: Some(checksum),
        })
        .map_err(|e| other("copying a part", &e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_of_multipart_uploads_parses() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>p/uploads/b/blob</NextKeyMarker><NextUploadIdMarker>id2</NextUploadIdMarker>
  <MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>p/uploads/a/blob</Key><UploadId>id1</UploadId>
    <Initiated>2010-11-10T20:48:33.000Z</Initiated></Upload>
  <Upload><Key>p/uploads/b/blob</Key><UploadId>id2</UploadId>
    <Initiated>2010-11-10T20:48:34.000Z</Initiated><StorageClass>STANDARD</StorageClass></Upload>
</ListMultipartUploadsResult>"#;
        let page: ListMultipartUploadsResult = quick_xml::de::from_str(xml).unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[1].key, "p/uploads/b/blob");
        assert_eq!(page.uploads[1].upload_id, "id2");
        assert_eq!(page.next_upload_id_marker.as_deref(), Some("id2"));
        let empty: ListMultipartUploadsResult = quick_xml::de::from_str(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated></ListMultipartUploadsResult>",
        )
        .unwrap();
        assert!(empty.uploads.is_empty());
        let copied: CopyPartResult = quick_xml::de::from_str(
            "<CopyPartResult><LastModified>2011-04-11T20:34:56.000Z</LastModified><ETag>\"9b2cf5\"</ETag></CopyPartResult>",
        )
        .unwrap();
        assert_eq!(copied.e_tag, "\"9b2cf5\"");
    }
}
