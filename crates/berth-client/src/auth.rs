//! The auth engine (being written).
