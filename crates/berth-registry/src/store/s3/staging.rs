//! An S3 upload's staging location: the small JSON the metadata store
//! records with the session's offset and hash state.
//!
//! ```text
//! {"id":"<upload id>","mpu":"<multipart upload id>"|null,
//!  "parts":["<part id>",...],"tail":{"key":"tail-<uuid>","len":<bytes>}|null,
//!  "superseded":"tail-<uuid>"}            (the last key only when there is one)
//! ```
//!
//! Part `i` holds [`part_size`]`(i)` bytes, so the parts' byte ranges follow
//! from their count; the tail object holds the bytes after the last part
//! (fewer than a part). Every object a recorded state names is immutable
//! (a tail is written under a new name each time), so the state recorded
//! with an offset names exactly the bytes before it, whatever a request
//! that died later left behind.

use berth_core::endpoint::UploadId;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// The size of every part but the last, for the first [`PARTS_PER_SIZE`]
/// parts; S3 refuses parts under 5 MiB but the last one.
pub const BASE_PART: u64 = 8 * 1024 * 1024;
/// After every this many parts the part size doubles, so that S3's 10,000
/// parts reach about 484 GiB while a common blob's parts stay small (an
/// upload holds at most two parts in memory).
const PARTS_PER_SIZE: usize = 2_000;
/// S3's most parts in one multipart upload.
pub const MAX_PARTS: usize = 10_000;

/// The size of part `index` (0-based).
pub fn part_size(index: usize) -> u64 {
    let doublings = u32::try_from(index / PARTS_PER_SIZE)
        .unwrap_or(u32::MAX)
        .min(8);
    BASE_PART << doublings
}

/// Bytes held by the first `count` parts.
pub fn parts_len(count: usize) -> u64 {
    (0..count).map(part_size).sum()
}

/// The bytes of an upload short of a full part, in their own object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tail {
    /// The object's name under `uploads/<id>/`.
    pub key: String,
    /// Its length.
    pub len: u64,
}

/// What an S3 upload has stored so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Staging {
    /// The upload session's id: its objects live under `uploads/<id>/`.
    pub id: String,
    /// The multipart upload, once a first part was ready.
    pub mpu: Option<String>,
    /// The part ids (S3 ETags) of the parts stored, in order.
    pub parts: Vec<String>,
    /// The bytes after the last part.
    pub tail: Option<Tail>,
    /// The tail object this state replaced (its bytes are in a part or in
    /// the new tail): no recorded state names it any more once this one is
    /// recorded, so the next append, which starts from this state, removes
    /// it. Without it every small PATCH would leave its tail behind until
    /// the commit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded: Option<String>,
}

impl Staging {
    /// A new, empty upload.
    pub fn new(id: &UploadId) -> Self {
        Self {
            id: id.as_str().to_owned(),
            mpu: None,
            parts: Vec::new(),
            tail: None,
            superseded: None,
        }
    }

    /// Reads a recorded state back; the id is checked, since it becomes part
    /// of object names.
    pub fn parse(text: &str) -> Result<Self, StoreError> {
        let state: Self = serde_json::from_str(text).map_err(|e| corrupt(text, &e.to_string()))?;
        UploadId::parse(&state.id).map_err(|e| corrupt(text, &e.to_string()))?;
        if state.parts.len() > MAX_PARTS || (state.mpu.is_none() && !state.parts.is_empty()) {
            return Err(corrupt(text, "parts without a multipart upload"));
        }
        Ok(state)
    }

    /// The upload session id of a recorded state, or of a bare id (the name
    /// [`crate::store::BlobStore::list_staging`] gives).
    pub fn id_of(text: &str) -> Result<String, StoreError> {
        if text.starts_with('{') {
            Ok(Self::parse(text)?.id)
        } else {
            UploadId::parse(text).map_err(|e| corrupt(text, &e.to_string()))?;
            Ok(text.to_owned())
        }
    }

    /// The bytes stored: the parts', then the tail's.
    pub fn len(&self) -> u64 {
        parts_len(self.parts.len()) + self.tail.as_ref().map_or(0, |t| t.len)
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The state as recorded.
    pub fn to_text(&self) -> String {
        // Serialising strings and numbers cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

fn corrupt(text: &str, why: &str) -> StoreError {
    let shown: String = text.chars().take(80).collect();
    StoreError::Io(std::io::Error::other(format!(
        "recorded S3 staging state {shown:?} is not valid ({why})"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_double_every_two_thousand_and_reach_s3s_limit() {
        assert_eq!(part_size(0), 8 << 20);
        assert_eq!(part_size(1_999), 8 << 20);
        assert_eq!(part_size(2_000), 16 << 20);
        assert_eq!(part_size(9_999), 128 << 20);
        assert_eq!(parts_len(3), 24 << 20);
        // 2,000 parts at each of 8, 16, 32, 64 and 128 MiB.
        assert_eq!(
            parts_len(MAX_PARTS),
            (2_000 * (8 + 16 + 32 + 64 + 128)) << 20
        );
    }

    #[test]
    fn a_state_round_trips_and_counts_its_bytes() {
        let id = UploadId::parse("0123456789abcdef0123456789abcdef").unwrap();
        let mut state = Staging::new(&id);
        assert!(state.is_empty());
        state.mpu = Some("mpu-1".to_owned());
        state.parts = vec!["\"a\"".to_owned(), "\"b\"".to_owned()];
        state.tail = Some(Tail {
            key: "tail-x".to_owned(),
            len: 7,
        });
        let text = state.to_text();
        assert_eq!(Staging::parse(&text).unwrap(), state);
        assert_eq!(state.len(), 2 * BASE_PART + 7);
        assert_eq!(Staging::id_of(&text).unwrap(), id.as_str());
        assert_eq!(Staging::id_of(id.as_str()).unwrap(), id.as_str());
        assert!(Staging::id_of("../etc").is_err());
        assert!(Staging::parse(r#"{"id":"../x","mpu":null,"parts":[],"tail":null}"#).is_err());
    }
}
