//! Errors building the report page; each names the file and, where it applies, the flag.

use std::path::PathBuf;

/// Why the page could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// An input file or folder could not be read.
    #[error("{path}")]
    Read {
        /// File or folder.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON input is not what the command that writes it writes.
    #[error("{path}")]
    Json {
        /// File.
        path: PathBuf,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A CSV input could not be parsed.
    #[error("{path}")]
    Csv {
        /// File.
        path: PathBuf,
        /// The csv crate's error (it names the line).
        #[source]
        source: csv::Error,
    },
    /// A required input is absent.
    #[error("{flag} {path}: {what} missing (is this a folder written by `emobench {writer}`?)")]
    Missing {
        /// The flag that named the folder.
        flag: &'static str,
        /// The folder.
        path: PathBuf,
        /// What is missing.
        what: String,
        /// The command that writes such folders.
        writer: &'static str,
    },
    /// The sources table of the runs could not be found or read.
    #[error("--sources {path}")]
    Sources {
        /// The table.
        path: PathBuf,
        /// Why.
        #[source]
        source: emobench_core::sources::SourcesError,
    },
    /// The gallery needs a sources table and none was given or named by a score report.
    #[error("--runs {runs}: no sources.csv beside it or named by a score report; pass --sources")]
    NoSources {
        /// The runs folder.
        runs: PathBuf,
    },
    /// An image could not be decoded or its thumbnail written.
    #[error("{path}")]
    Image {
        /// The image.
        path: PathBuf,
        /// Why.
        #[source]
        source: emobench_core::image_io::ImageError,
    },
    /// A thumbnail could not be encoded.
    #[error("{path}: JPEG encoding")]
    Encode {
        /// The thumbnail being written.
        path: PathBuf,
        /// The image crate's error.
        #[source]
        source: image::ImageError,
    },
    /// A site file could not be written.
    #[error(transparent)]
    Write(#[from] crate::ReportError),
}
