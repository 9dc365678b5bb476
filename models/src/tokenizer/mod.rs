//! Tokenizers the text towers read their input through.

pub mod clip;
mod nfc_tables;

pub use clip::{ClipTokenizer, TokenizerError};
