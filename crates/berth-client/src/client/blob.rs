//! A blob's bytes as a stream, checked against its digest as they arrive: the
//! last item is an error instead of the end when the digest does not match.
//!
//! A download cut off midway (the connection reset, the body ended short of
//! its length) is continued from the byte where it stopped, with a ranged
//! `GET` (`Range: bytes=<n>-`), up to [`MAX_CUTS_WITHOUT_PROGRESS`] times in
//! a row without a byte received; the hash goes on across the cut. A
//! registry that answers the ranged `GET` with the whole blob (200) has the
//! bytes already received skipped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use berth_core::{Digest, Digester};
use bytes::Bytes;
use futures_util::Stream;
use reqwest::StatusCode;

use super::error::ClientError;

type Inner = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// Reopens a blob's bytes from an offset: the answer of a ranged `GET`.
pub(crate) type Reopen = Arc<
    dyn Fn(u64) -> Pin<Box<dyn Future<Output = Result<reqwest::Response, ClientError>> + Send>>
        + Send
        + Sync,
>;

type Reopening = Pin<Box<dyn Future<Output = Result<reqwest::Response, ClientError>> + Send>>;

/// Cuts in a row, with no byte received between them, before a download
/// gives up.
pub const MAX_CUTS_WITHOUT_PROGRESS: u32 = 5;

/// The body of a blob `GET`, verified against the digest asked for.
pub struct BlobStream {
    inner: Inner,
    digester: Option<Digester>,
    expected: Digest,
    what: String,
    /// `Content-Length` of the first answer: the bytes this stream yields.
    size: Option<u64>,
    /// The blob's byte this stream started at.
    start: u64,
    /// Bytes yielded so far.
    yielded: u64,
    /// Bytes of the current answer still to drop (a registry that ignored
    /// the range sent the blob from its start).
    skip: u64,
    reopen: Reopen,
    reopening: Option<Reopening>,
    cuts_without_progress: u32,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("expected", &self.expected)
            .field("size", &self.size)
            .field("start", &self.start)
            .field("yielded", &self.yielded)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    /// The stream of `response`, the answer to a `GET` from byte `start`.
    pub(crate) fn new(
        response: reqwest::Response,
        expected: Digest,
        what: String,
        start: u64,
        reopen: Reopen,
    ) -> Result<Self, ClientError> {
        let skip = bytes_to_skip(&response, start, &what)?;
        let size = response.content_length().map(|len| len - skip.min(len));
        Ok(Self {
            inner: Box::pin(response.bytes_stream()),
            // Bytes before `start` are not seen here: nothing to check.
            digester: (start == 0).then(|| Digester::new(expected.algorithm())),
            expected,
            what,
            size,
            start,
            yielded: 0,
            skip,
            reopen,
            reopening: None,
            cuts_without_progress: 0,
        })
    }

    /// The same stream without the digest check, for a caller whose
    /// receiver verifies the bytes itself: a registry checks every upload
    /// against its digest, so a registry-to-registry copy need not hash twice.
    pub fn unverified(mut self) -> Self {
        self.digester = None;
        self
    }

    /// The number of bytes the stream yields (from its start), when the
    /// registry announced it.
    pub fn size(&self) -> Option<u64> {
        self.size
    }

    /// Reads the whole blob (verified) into memory.
    pub async fn bytes(mut self) -> Result<Vec<u8>, ClientError> {
        use futures_util::StreamExt;
        let mut out = Vec::new();
        while let Some(chunk) = self.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out)
    }

    /// Whether the stream ended before all the bytes it announced.
    fn short(&self) -> bool {
        self.size.is_some_and(|size| self.yielded < size)
    }

    /// Starts a ranged `GET` for the rest, or says why not.
    fn resume(&mut self, cause: String) -> Result<(), ClientError> {
        if self.size.is_none() || self.cuts_without_progress >= MAX_CUTS_WITHOUT_PROGRESS {
            return Err(ClientError::BadResponse {
                what: self.what.clone(),
                reason: format!(
                    "the download was cut after {} bytes ({cause}) and cannot be continued",
                    self.yielded
                ),
            });
        }
        self.cuts_without_progress += 1;
        let from = self.start + self.yielded;
        tracing::info!(what = %self.what, from, %cause, "download cut off; continuing from where it stopped");
        let reopen = Arc::clone(&self.reopen);
        let pause = Duration::from_millis(200 * u64::from(self.cuts_without_progress - 1));
        self.reopening = Some(Box::pin(async move {
            tokio::time::sleep(pause).await;
            reopen(from).await
        }));
        Ok(())
    }

    fn fail(&mut self, error: ClientError) -> Poll<Option<Result<Bytes, ClientError>>> {
        self.digester = None;
        self.size = None;
        self.yielded = 0;
        Poll::Ready(Some(Err(error)))
    }
}

/// How many bytes of `response` precede `start` (the answer to a `GET`
/// with `Range: bytes=<start>-`): 0 for a 206 that starts there, `start` for
/// a 200 (the range ignored).
fn bytes_to_skip(response: &reqwest::Response, start: u64, what: &str) -> Result<u64, ClientError> {
    if start == 0 || response.status() == StatusCode::OK {
        return Ok(start);
    }
    let from = response
        .headers()
        .get(reqwest::header::CONTENT_RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("bytes "))
        .and_then(|v| v.split('-').next())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if response.status() == StatusCode::PARTIAL_CONTENT && from == Some(start) {
        return Ok(0);
    }
    Err(ClientError::BadResponse {
        what: what.to_owned(),
        reason: format!(
            "asked for the bytes from {start} on, the registry answered {} with Content-Range {:?}",
            response.status(),
            response.headers().get(reqwest::header::CONTENT_RANGE)
        ),
    })
}

impl Stream for BlobStream {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(reopening) = this.reopening.as_mut() {
                let response = match reopening.as_mut().poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(response) => response,
                };
                this.reopening = None;
                let from = this.start + this.yielded;
                let resumed = response.and_then(|response| {
                    let skip = bytes_to_skip(&response, from, &this.what)?;
                    Ok((response, skip))
                });
                match resumed {
                    Ok((response, skip)) => {
                        this.skip = skip;
                        this.inner = Box::pin(response.bytes_stream());
                    }
                    Err(e) => return this.fail(e),
                }
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Some(Ok(mut chunk))) => {
                    if this.skip > 0 {
                        let drop = usize::try_from(this.skip)
                            .unwrap_or(usize::MAX)
                            .min(chunk.len());
                        let _ = chunk.split_to(drop);
                        this.skip -= drop as u64;
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    this.cuts_without_progress = 0;
                    this.yielded += chunk.len() as u64;
                    if let Some(d) = this.digester.as_mut() {
                        d.update(&chunk);
                    }
                    return Poll::Ready(Some(Ok(chunk)));
                }
                Poll::Ready(Some(Err(source))) => {
                    if this.resume(source.to_string()).is_err() {
                        let what = this.what.clone();
                        return this.fail(ClientError::Body {
                            what,
                            source: source.without_url(),
                        });
                    }
                }
                Poll::Ready(None) if this.short() => {
                    let cause = format!("the body ended after {} bytes", this.yielded);
                    if let Err(e) = this.resume(cause) {
                        return this.fail(e);
                    }
                }
                Poll::Ready(None) => {
                    let Some(digester) = this.digester.take() else {
                        return Poll::Ready(None);
                    };
                    let actual = digester.finalize();
                    return if actual == this.expected {
                        Poll::Ready(None)
                    } else {
                        Poll::Ready(Some(Err(ClientError::DigestMismatch {
                            what: this.what.clone(),
                            expected: this.expected.clone(),
                            actual,
                        })))
                    };
                }
            }
        }
    }
}
