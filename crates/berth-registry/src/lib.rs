//! berth's server: the OCI distribution API on one listener, guarded by a gate
//! that the token service fills in.
