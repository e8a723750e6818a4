//! Registry operations (being written).
