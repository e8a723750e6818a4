//! The protocol berth speaks, as data.
//!
//! Every protocol value that crosses a wire (repository names, tags, references,
//! digests, scopes, `WWW-Authenticate` challenges, token responses, JWT claims,
//! OCI error bodies, pagination links, media types) is a type here. Each type
//! parses from its wire form, prints its canonical wire form with `Display`, and
//! rejects invalid input with a [`ParseError`] that says what is wrong and where.
//!
//! This crate does no I/O and has no async: the registry (`berth-registry`) and
//! the client (`berth-client`) both build on it, so that both sides of every
//! exchange read and write the same strings the same way.

pub mod challenge;
pub mod digest;
pub mod endpoint;
pub mod error;
mod http_syntax;
pub mod media_type;
pub mod name;
pub mod oci_error;
pub mod pagination;
pub mod platform;
pub mod reference;
pub mod scope;
pub mod tag;
pub mod token;

pub use challenge::{Challenge, Challenges};
pub use digest::{Algorithm, Digest, Digester};
pub use endpoint::{Endpoint, EndpointError, InvalidReference, UploadId};
pub use error::{ParseError, ParseErrorKind};
pub use name::RepositoryName;
pub use oci_error::{ErrorBody, ErrorCode, ErrorInfo};
pub use pagination::{Link, Pagination};
pub use platform::Platform;
pub use reference::{Reference, Registry, TagOrDigest};
pub use scope::{Action, Actions, ResourceType, Scope, Scopes};
pub use tag::Tag;
pub use token::{Audience, Claims, TokenRequest, TokenResponse};
