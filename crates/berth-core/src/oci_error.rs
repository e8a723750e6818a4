//! OCI distribution-spec v1.1 error codes and error bodies ("Error Codes").
//!
//! Wire form of a body (`application/json`):
//!
//! ```text
//! { "errors": [ { "code": "<CODE>", "message": "<text>", "detail": <any JSON> }, ... ] }
//! ```
//!
//! `code` is one of the spec's codes (plus `RANGE_INVALID`, `TAG_INVALID` and
//! `PAGINATION_NUMBER_INVALID` from CNCF distribution); a code other registries
//! invent is kept as [`ErrorCode::Unknown`], so reading a body never fails on
//! it. `message` may be missing in the wild (read as empty); `detail` is
//! omitted when absent.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

/// An error code of the distribution API.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorCode {
    /// `BLOB_UNKNOWN` (404): the blob is not in the repository.
    BlobUnknown,
    /// `BLOB_UPLOAD_INVALID` (400): the upload is in a bad state or the chunk is wrong.
    BlobUploadInvalid,
    /// `BLOB_UPLOAD_UNKNOWN` (404): no such upload session.
    BlobUploadUnknown,
    /// `DIGEST_INVALID` (400): the content does not match the digest, or it is malformed.
    DigestInvalid,
    /// `MANIFEST_BLOB_UNKNOWN` (400): the manifest references something missing.
    ManifestBlobUnknown,
    /// `MANIFEST_INVALID` (400): the manifest does not parse or validate.
    ManifestInvalid,
    /// `MANIFEST_UNKNOWN` (404): no such manifest.
    ManifestUnknown,
    /// `NAME_INVALID` (400): the repository name is malformed.
    NameInvalid,
    /// `NAME_UNKNOWN` (404): no such repository (or the caller may not know of it).
    NameUnknown,
    /// `SIZE_INVALID` (400): the content length does not match.
    SizeInvalid,
    /// `UNAUTHORIZED` (401): credentials missing or unusable.
    Unauthorized,
    /// `DENIED` (403): authenticated, but not allowed.
    Denied,
    /// `UNSUPPORTED` (405): the operation is not supported (or disabled).
    Unsupported,
    /// `TOOMANYREQUESTS` (429): rate limited; the response carries `Retry-After`.
    TooManyRequests,
    /// `RANGE_INVALID` (416): an upload chunk arrived out of order.
    RangeInvalid,
    /// `TAG_INVALID` (400): the tag is malformed or does not match the manifest.
    TagInvalid,
    /// `PAGINATION_NUMBER_INVALID` (400): `n` is not an acceptable number.
    PaginationNumberInvalid,
    /// A code this crate does not know, kept as sent. [`ErrorCode::from`] never
    /// builds it for a known code; only a registry other than berth sends these.
    Unknown(String),
}

/// Every known code, for table-driven code and tests.
static KNOWN: [ErrorCode; 17] = [
    ErrorCode::BlobUnknown,
    ErrorCode::BlobUploadInvalid,
    ErrorCode::BlobUploadUnknown,
    ErrorCode::DigestInvalid,
    ErrorCode::ManifestBlobUnknown,
    ErrorCode::ManifestInvalid,
    ErrorCode::ManifestUnknown,
    ErrorCode::NameInvalid,
    ErrorCode::NameUnknown,
    ErrorCode::SizeInvalid,
    ErrorCode::Unauthorized,
    ErrorCode::Denied,
    ErrorCode::Unsupported,
    ErrorCode::TooManyRequests,
    ErrorCode::RangeInvalid,
    ErrorCode::TagInvalid,
    ErrorCode::PaginationNumberInvalid,
];

impl ErrorCode {
    /// Every code the spec and distribution define (not [`ErrorCode::Unknown`]).
    pub fn all() -> &'static [ErrorCode] {
        &KNOWN
    }

    /// The wire form: `BLOB_UNKNOWN`, ...; an unknown code as it was sent.
    pub fn as_str(&self) -> &str {
        match self {
            Self::BlobUnknown => "BLOB_UNKNOWN",
            Self::BlobUploadInvalid => "BLOB_UPLOAD_INVALID",
            Self::BlobUploadUnknown => "BLOB_UPLOAD_UNKNOWN",
            Self::DigestInvalid => "DIGEST_INVALID",
            Self::ManifestBlobUnknown => "MANIFEST_BLOB_UNKNOWN",
            Self::ManifestInvalid => "MANIFEST_INVALID",
            Self::ManifestUnknown => "MANIFEST_UNKNOWN",
            Self::NameInvalid => "NAME_INVALID",
            Self::NameUnknown => "NAME_UNKNOWN",
            Self::SizeInvalid => "SIZE_INVALID",
            Self::Unauthorized => "UNAUTHORIZED",
            Self::Denied => "DENIED",
            Self::Unsupported => "UNSUPPORTED",
            Self::TooManyRequests => "TOOMANYREQUESTS",
            Self::RangeInvalid => "RANGE_INVALID",
            Self::TagInvalid => "TAG_INVALID",
            Self::PaginationNumberInvalid => "PAGINATION_NUMBER_INVALID",
            Self::Unknown(code) => code,
        }
    }

    /// The HTTP status the spec and CNCF distribution answer with; 500 for an
    /// unknown code (distribution's `UNKNOWN`).
    pub fn status(&self) -> u16 {
        match self {
            Self::BlobUnknown
            | Self::BlobUploadUnknown
            | Self::ManifestUnknown
            | Self::NameUnknown => 404,
            Self::BlobUploadInvalid
            | Self::DigestInvalid
            | Self::ManifestBlobUnknown
            | Self::ManifestInvalid
            | Self::NameInvalid
            | Self::SizeInvalid
            | Self::TagInvalid
            | Self::PaginationNumberInvalid => 400,
            Self::Unauthorized => 401,
            Self::Denied => 403,
            Self::Unsupported => 405,
            Self::RangeInvalid => 416,
            Self::TooManyRequests => 429,
            Self::Unknown(_) => 500,
        }
    }

    /// The spec's short description, usable as a `message`.
    pub fn default_message(&self) -> &'static str {
        match self {
            Self::BlobUnknown => "blob unknown to registry",
            Self::BlobUploadInvalid => "blob upload invalid",
            Self::BlobUploadUnknown => "blob upload unknown to registry",
            Self::DigestInvalid => "provided digest did not match uploaded content",
            Self::ManifestBlobUnknown => {
                "manifest references a manifest or blob unknown to registry"
            }
            Self::ManifestInvalid => "manifest invalid",
            Self::ManifestUnknown => "manifest unknown to registry",
            Self::NameInvalid => "invalid repository name",
            Self::NameUnknown => "repository name not known to registry",
            Self::SizeInvalid => "provided length did not match content length",
            Self::Unauthorized => "authentication required",
            Self::Denied => "requested access to the resource is denied",
            Self::Unsupported => "the operation is unsupported",
            Self::TooManyRequests => "too many requests",
            Self::RangeInvalid => "invalid content range",
            Self::TagInvalid => "manifest tag did not match URI",
            Self::PaginationNumberInvalid => "invalid number of results requested",
            Self::Unknown(_) => "unknown error",
        }
    }
}

impl From<&str> for ErrorCode {
    /// Reads a wire code (case-sensitive, as the spec spells them).
    fn from(code: &str) -> Self {
        KNOWN
            .iter()
            .find(|k| k.as_str() == code)
            .cloned()
            .unwrap_or_else(|| Self::Unknown(code.to_owned()))
    }
}

impl FromStr for ErrorCode {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self::from(s))
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ErrorCode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ErrorCode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let code = String::deserialize(d)?;
        Ok(Self::from(code.as_str()))
    }
}

/// One entry of an error body.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErrorInfo {
    /// The error code.
    pub code: ErrorCode,
    /// A message for people; may be empty when a registry sent none.
    #[serde(default, deserialize_with = "string_or_null")]
    pub message: String,
    /// Unstructured detail; for 401/403 see [`access_detail`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Value>,
}

/// A missing or `null` message reads as empty: some registries send either.
fn string_or_null<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

impl ErrorInfo {
    /// An entry without detail.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// The same entry with `detail` set.
    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

/// An error response body: `{"errors":[...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The errors, most relevant first.
    pub errors: Vec<ErrorInfo>,
}

impl ErrorBody {
    /// A body with one error.
    pub fn single(info: ErrorInfo) -> Self {
        Self { errors: vec![info] }
    }

    /// The compact JSON a registry sends.
    pub fn to_json(&self) -> String {
        // Serialising plain strings and a `Value` (string keys only) cannot fail;
        // the fallback keeps this total without a panic path.
        serde_json::to_string(self).unwrap_or_else(|_| {
            r#"{"errors":[{"code":"UNKNOWN","message":"unknown error"}]}"#.to_owned()
        })
    }

    /// Reads a response body if it is a spec error body; `None` otherwise (HTML
    /// from a proxy, an empty body, ...). Clients use it opportunistically, so
    /// there is no error to report.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        serde_json::from_slice(bytes).ok()
    }
}

impl fmt::Display for ErrorBody {
    /// `CODE: message; CODE: message`, for logs and client error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}", e.code)?;
            if !e.message.is_empty() {
                write!(f, ": {}", e.message)?;
            }
        }
        Ok(())
    }
}

/// The `detail` of an UNAUTHORIZED or DENIED error as CNCF distribution sends
/// it: `[{"Type":"repository","Name":"<name>","Action":"pull"}]`, keys
/// capitalised. (Member order follows serde_json's map, alphabetical; JSON
/// object members are unordered, RFC 8259 §4.)
pub fn access_detail(resource_type: &str, name: &str, action: &str) -> Value {
    let mut entry = Map::new();
    entry.insert("Type".to_owned(), Value::from(resource_type));
    entry.insert("Name".to_owned(), Value::from(name));
    entry.insert("Action".to_owned(), Value::from(action));
    Value::Array(vec![Value::Object(entry)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_code_has_its_string_status_and_message() {
        let table: [(ErrorCode, &str, u16); 17] = [
            (ErrorCode::BlobUnknown, "BLOB_UNKNOWN", 404),
            (ErrorCode::BlobUploadInvalid, "BLOB_UPLOAD_INVALID", 400),
            (ErrorCode::BlobUploadUnknown, "BLOB_UPLOAD_UNKNOWN", 404),
            (ErrorCode::DigestInvalid, "DIGEST_INVALID", 400),
            (ErrorCode::ManifestBlobUnknown, "MANIFEST_BLOB_UNKNOWN", 400),
            (ErrorCode::ManifestInvalid, "MANIFEST_INVALID", 400),
            (ErrorCode::ManifestUnknown, "MANIFEST_UNKNOWN", 404),
            (ErrorCode::NameInvalid, "NAME_INVALID", 400),
            (ErrorCode::NameUnknown, "NAME_UNKNOWN", 404),
            (ErrorCode::SizeInvalid, "SIZE_INVALID", 400),
            (ErrorCode::Unauthorized, "UNAUTHORIZED", 401),
            (ErrorCode::Denied, "DENIED", 403),
            (ErrorCode::Unsupported, "UNSUPPORTED", 405),
            (ErrorCode::TooManyRequests, "TOOMANYREQUESTS", 429),
            (ErrorCode::RangeInvalid, "RANGE_INVALID", 416),
            (ErrorCode::TagInvalid, "TAG_INVALID", 400),
            (
                ErrorCode::PaginationNumberInvalid,
                "PAGINATION_NUMBER_INVALID",
                400,
            ),
        ];
        assert_eq!(ErrorCode::all().len(), table.len());
        for (code, wire, status) in table {
            assert_eq!(code.as_str(), wire);
            assert_eq!(code.to_string(), wire);
            assert_eq!(code.status(), status, "{wire}");
            assert_eq!(ErrorCode::from(wire), code);
            assert_eq!(serde_json::to_string(&code).unwrap(), format!("\"{wire}\""));
            assert!(!code.default_message().is_empty());
            assert!(ErrorCode::all().contains(&code));
        }
        assert_eq!(
            ErrorCode::BlobUnknown.default_message(),
            "blob unknown to registry"
        );
        let odd = ErrorCode::from("QUOTA_EXCEEDED");
        assert_eq!(odd, ErrorCode::Unknown("QUOTA_EXCEEDED".to_owned()));
        assert_eq!((odd.as_str(), odd.status()), ("QUOTA_EXCEEDED", 500));
        assert_eq!("blob_unknown".parse::<ErrorCode>().unwrap().status(), 500);
    }

    #[test]
    fn name_unknown_body_is_exact() {
        let body = ErrorBody::single(ErrorInfo::new(
            ErrorCode::NameUnknown,
            ErrorCode::NameUnknown.default_message(),
        ));
        assert_eq!(
            body.to_json(),
            r#"{"errors":[{"code":"NAME_UNKNOWN","message":"repository name not known to registry"}]}"#
        );
        assert_eq!(ErrorBody::parse(body.to_json().as_bytes()), Some(body));
    }

    #[test]
    fn unauthorized_body_with_access_detail() {
        let detail = access_detail("repository", "library/alpine", "pull");
        assert_eq!(
            detail,
            serde_json::json!([{"Type": "repository", "Name": "library/alpine", "Action": "pull"}])
        );
        let body = ErrorBody::single(
            ErrorInfo::new(ErrorCode::Unauthorized, "authentication required").with_detail(detail),
        );
        assert_eq!(
            body.to_json(),
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required","detail":[{"Action":"pull","Name":"library/alpine","Type":"repository"}]}]}"#
        );
        assert_eq!(ErrorBody::parse(body.to_json().as_bytes()), Some(body));
    }

    #[test]
    fn reads_ghcr_bodies_from_the_seed() {
        let denied = br#"{
  "errors": [
    {
      "code": "DENIED",
      "message": "requested access to the resource is denied"
    }
  ]
}"#;
        let body = ErrorBody::parse(denied).unwrap();
        assert_eq!(
            body.errors,
            [ErrorInfo::new(
                ErrorCode::Denied,
                "requested access to the resource is denied"
            )]
        );
        assert_eq!(body.errors[0].code.status(), 403);
        let unsupported =
            br#"{"errors":[{"code":"UNSUPPORTED","message":"The operation is unsupported."}]}"#;
        let body = ErrorBody::parse(unsupported).unwrap();
        assert_eq!(body.errors[0].code, ErrorCode::Unsupported);
        assert_eq!(body.errors[0].message, "The operation is unsupported.");
        assert_eq!(body.errors[0].detail, None);
        assert_eq!(
            body.to_string(),
            "UNSUPPORTED: The operation is unsupported."
        );
    }

    #[test]
    fn lenient_about_codes_and_messages_but_not_shape() {
        let body = ErrorBody::parse(
            br#"{"errors":[{"code":"QUOTA_EXCEEDED","detail":{"n":1}},{"code":"DENIED","message":null}],"extra":1}"#,
        )
        .unwrap();
        assert_eq!(
            body.errors[0].code,
            ErrorCode::Unknown("QUOTA_EXCEEDED".to_owned())
        );
        assert_eq!(body.errors[0].message, "");
        assert_eq!(body.errors[0].detail, Some(serde_json::json!({"n": 1})));
        assert_eq!(body.errors[1].message, "");
        assert_eq!(body.to_string(), "QUOTA_EXCEEDED; DENIED");
        for not_a_body in [
            &b""[..],
            b"<html>502 Bad Gateway</html>",
            b"{}",
            b"{\"errors\":{}}",
            b"{\"errors\":[{\"message\":\"no code\"}]}",
            b"{\"errors\":[{\"code\":7}]}",
        ] {
            assert_eq!(ErrorBody::parse(not_a_body), None);
        }
        assert_eq!(ErrorBody::parse(br#"{"errors":[]}"#).unwrap().errors, []);
    }

    fn code() -> impl Strategy<Value = ErrorCode> {
        prop_oneof![
            prop::sample::select(ErrorCode::all().to_vec()),
            "[A-Z_]{1,12}".prop_map(|s| ErrorCode::from(s.as_str())),
        ]
    }

    proptest! {
        #[test]
        fn code_round_trip(c in code()) {
            prop_assert_eq!(ErrorCode::from(c.as_str()), c.clone());
            let json = serde_json::to_string(&c).unwrap();
            prop_assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
        }

        #[test]
        fn body_round_trip(entries in prop::collection::vec((code(), any::<String>(), prop::option::of(any::<String>())), 0..4)) {
            let body = ErrorBody {
                errors: entries
                    .into_iter()
                    .map(|(c, m, d)| {
                        let info = ErrorInfo::new(c, m);
                        match d {
                            Some(d) => info.with_detail(access_detail("repository", &d, "pull")),
                            None => info,
                        }
                    })
                    .collect(),
            };
            let json = body.to_json();
            let parsed = ErrorBody::parse(json.as_bytes()).unwrap();
            prop_assert_eq!(parsed.to_json(), json);
            prop_assert_eq!(parsed, body);
        }

        #[test]
        fn never_panics(b in any::<Vec<u8>>(), s in any::<String>()) {
            let _ = ErrorBody::parse(&b);
            let _ = ErrorBody::parse(s.as_bytes());
            let _ = ErrorCode::from(s.as_str()).status();
        }
    }
}
