//! berth's client: the auth engine (challenge, scope, token, cache, refresh),
//! the transport, registry operations and credentials.
