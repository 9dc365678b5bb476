//! Tokenizers the text towers read their input through.

pub mod clip;

pub use clip::{ClipTokenizer, TokenizerError};
