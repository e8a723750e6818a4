//! The request gate: what a request needs, and whether the caller has it.
//!
//! Every `/v2` request reaches its handler only through [`Gate::admit`], with the
//! scopes [`Endpoint::required_access`] computed from method, path and query.
//! This gate is open: it admits every request. The token service replaces the
//! decision, not the call sites.

use axum::http::HeaderMap;
use berth_core::endpoint::Endpoint;
use berth_core::scope::Scopes;

use crate::error::RegistryError;

/// Proof that the gate admitted a request for these scopes.
#[derive(Debug)]
pub struct Admission {
    /// The scopes the request needed.
    pub required: Scopes,
}

/// The gate in front of every `/v2` handler.
#[derive(Debug, Clone, Default)]
pub struct Gate;

impl Gate {
    /// Decides whether a request may proceed.
    pub fn admit(
        &self,
        endpoint: &Endpoint,
        method: &str,
        _headers: &HeaderMap,
    ) -> Result<Admission, RegistryError> {
        Ok(Admission {
            required: endpoint.required_access(method),
        })
    }
}
