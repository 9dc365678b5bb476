//! The record of a weight file that runs and reports carry: role, path, SHA-256, and whether it
//! is a seeded stand-in rather than trained weights.

use std::io::Read;
use std::path::Path;

use serde::Serialize;
use sha2::{Digest, Sha256};

/// A weight (or input) file and its digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WeightFile {
    /// Role (e.g. "predictor", "unet").
    pub role: String,
    /// Path as given, or a description for generated weights.
    pub path: String,
    /// SHA-256 of the file; empty for generated stand-ins.
    pub sha256: String,
    /// True when the weights are a seeded stand-in, not a trained model.
    pub stand_in: bool,
}

/// SHA-256 of bytes, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// SHA-256 of a file, lower-case hex, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
