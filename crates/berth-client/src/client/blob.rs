//! A blob's bytes as a stream, checked against its digest as they arrive: the
//! last item is an error instead of the end when the digest does not match.

use std::pin::Pin;
use std::task::{Context, Poll};

use berth_core::{Digest, Digester};
use bytes::Bytes;
use futures_util::Stream;

use super::error::ClientError;

type Inner = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

/// The body of a blob `GET`, verified against the digest asked for.
pub struct BlobStream {
    inner: Inner,
    digester: Option<Digester>,
    expected: Digest,
    what: String,
    size: Option<u64>,
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlobStream")
            .field("expected", &self.expected)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl BlobStream {
    pub(crate) fn new(response: reqwest::Response, expected: Digest, what: String) -> Self {
        let size = response.content_length();
        Self {
            inner: Box::pin(response.bytes_stream()),
            digester: Some(Digester::new(expected.algorithm())),
            expected,
            what,
            size,
        }
    }

    /// The same stream without the digest check, for a caller whose
    /// receiver verifies the bytes itself: a registry checks every upload
    /// against its digest, so a registry-to-registry copy need not hash twice.
    pub fn unverified(mut self) -> Self {
        self.digester = None;
        self
    }

    /// The size announced by `Content-Length`, if any.
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
}

impl Stream for BlobStream {
    type Item = Result<Bytes, ClientError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(chunk))) => {
                if let Some(d) = this.digester.as_mut() {
                    d.update(&chunk);
                }
                Poll::Ready(Some(Ok(chunk)))
            }
            Poll::Ready(Some(Err(source))) => {
                this.digester = None;
                Poll::Ready(Some(Err(ClientError::Body {
                    what: this.what.clone(),
                    source: source.without_url(),
                })))
            }
            Poll::Ready(None) => {
                let Some(digester) = this.digester.take() else {
                    return Poll::Ready(None);
                };
                let actual = digester.finalize();
                if actual == this.expected {
                    Poll::Ready(None)
                } else {
                    Poll::Ready(Some(Err(ClientError::DigestMismatch {
                        what: this.what.clone(),
                        expected: this.expected.clone(),
                        actual,
                    })))
                }
            }
        }
    }
}
