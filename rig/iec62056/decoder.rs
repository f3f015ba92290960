//! Incremental decoder (placeholder until the decoder lands).
