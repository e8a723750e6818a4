//! Where credentials come from. (Being written: docker `config.json`,
//! credential helpers, podman `auth.json`, environment.)

use std::fmt;

/// A secret for one registry, as a client presents it to a token service.
#[derive(Clone, PartialEq, Eq)]
pub enum Credential {
    /// A username and password (or personal access token): HTTP Basic, or the
    /// OAuth2 password grant.
    Basic {
        /// The account name.
        username: String,
        /// The password or token.
        password: String,
    },
    /// An OAuth2 refresh token (docker `identitytoken`, or a helper answering
    /// username `<token>`): the refresh-token grant.
    IdentityToken(String),
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Basic { username, .. } => f
                .debug_struct("Basic")
                .field("username", username)
                .field("password", &"<redacted>")
                .finish(),
            Self::IdentityToken(_) => f.write_str("IdentityToken(<redacted>)"),
        }
    }
}
