//! Image decoding behind explicit limits, and atomic PNG writes.
//!
//! Every image enters the harness here: the header is checked against size limits before any pixel
//! buffer is allocated, EXIF orientation is applied (as PIL's `ImageOps.exif_transpose` would), and
//! gray, alpha, palette and 16-bit inputs become 8-bit RGB. Alpha is dropped, not composited, which is
//! what PIL's `.convert('RGB')` in the authors' scripts does.

use std::io::Write;
use std::path::{Path, PathBuf};

use image::{ImageDecoder, ImageReader, Limits, RgbImage};
use models::error::Cause;

/// Limits applied to every decoded image.
#[derive(Debug, Clone, Copy)]
pub struct DecodeLimits {
    /// Largest accepted width or height in pixels.
    pub max_side: u32,
    /// Largest accepted file size in bytes.
    pub max_file_bytes: u64,
    /// Largest decoder allocation in bytes.
    pub max_alloc_bytes: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        Self {
            max_side: 16_384,
            max_file_bytes: 256 << 20,
            max_alloc_bytes: 1 << 30,
        }
    }
}

/// Why an image could not be read or written; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    /// The file could not be opened or read.
    #[error("{path}: cannot read image")]
    Io {
        /// Offending file.
        path: PathBuf,
        /// Underlying error.
        source: std::io::Error,
    },
    /// The file is larger than the configured limit.
    #[error("{path}: file is {bytes} bytes, over the {limit}-byte limit")]
    FileTooLarge {
        /// Offending file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
        /// The limit.
        limit: u64,
    },
    /// The header declares dimensions over the limit (checked before allocating).
    #[error("{path}: header declares {width}x{height} pixels, over the {limit}-pixel side limit")]
    TooLarge {
        /// Offending file.
        path: PathBuf,
        /// Declared width.
        width: u32,
        /// Declared height.
        height: u32,
        /// The limit.
        limit: u32,
    },
    /// The bytes are not a decodable image: a check of ours failed (a truncated JPEG).
    #[error("{path}: cannot decode image: {message}")]
    Decode {
        /// Offending file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// The decoder rejected the bytes (unknown format, truncated, corrupt).
    #[error("{path}: cannot decode image")]
    Decoder {
        /// Offending file.
        path: PathBuf,
        /// The decoder's error.
        source: Cause<image::ImageError>,
    },
    /// Encoding an output failed.
    #[error("{path}: cannot encode PNG")]
    Encode {
        /// File being written.
        path: PathBuf,
        /// The encoder's error.
        source: Cause<image::ImageError>,
    },
    /// Writing an output failed.
    #[error("{path}: cannot write image")]
    Write {
        /// File being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

fn decode_err(path: &Path, e: image::ImageError) -> ImageError {
    ImageError::Decoder {
        path: path.to_path_buf(),
        source: Cause::new(e),
    }
}

fn check_side(
    path: &Path,
    (width, height): (u32, u32),
    limits: &DecodeLimits,
) -> Result<(), ImageError> {
    if width > limits.max_side || height > limits.max_side {
        return Err(ImageError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            limit: limits.max_side,
        });
    }
    Ok(())
}

/// Decodes an image file to 8-bit RGB with the default limits.
pub fn load_rgb(path: &Path) -> Result<RgbImage, ImageError> {
    load_rgb_with(path, &DecodeLimits::default())
}

/// Decodes an image file to 8-bit RGB, rejecting oversized files and headers before allocating.
pub fn load_rgb_with(path: &Path, limits: &DecodeLimits) -> Result<RgbImage, ImageError> {
    let io = |source| ImageError::Io {
        path: path.to_path_buf(),
        source,
    };
    let bytes = std::fs::metadata(path).map_err(io)?.len();
    if bytes > limits.max_file_bytes {
        return Err(ImageError::FileTooLarge {
            path: path.to_path_buf(),
            bytes,
            limit: limits.max_file_bytes,
        });
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let format = image::guess_format(&bytes).ok();
    // PNG decoders read past IHDR while initialising, so a lying header must be caught here first.
    if format == Some(image::ImageFormat::Png) && bytes.len() >= 24 && &bytes[12..16] == b"IHDR" {
        let be =
            |i: usize| u32::from_be_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        check_side(path, (be(16), be(20)), limits)?;
    }
    // zune-jpeg fills a truncated scan with gray instead of failing (PIL raises "image file is
    // truncated"); entropy-coded data cannot contain FF D9, so a missing end-of-image marker near
    // the end means the file was cut.
    if format == Some(image::ImageFormat::Jpeg) {
        let tail = &bytes[bytes.len().saturating_sub(1024)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(ImageError::Decode {
                path: path.to_path_buf(),
                message: "truncated JPEG (no end-of-image marker)".into(),
            });
        }
    }
    let reader = ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(io)?;
    let mut decoder = reader.into_decoder().map_err(|e| decode_err(path, e))?;
    check_side(path, decoder.dimensions(), limits)?;
    let mut l = Limits::default();
    l.max_image_width = Some(limits.max_side);
    l.max_image_height = Some(limits.max_side);
    l.max_alloc = Some(limits.max_alloc_bytes);
    decoder.set_limits(l).map_err(|e| decode_err(path, e))?;
    let orientation = decoder.orientation().map_err(|e| decode_err(path, e))?;
    let mut img = image::DynamicImage::from_decoder(decoder).map_err(|e| decode_err(path, e))?;
    img.apply_orientation(orientation);
    Ok(img.into_rgb8())
}

/// True when `path` exists and decodes; used to decide whether a resumed job can skip an output.
pub fn is_valid_image(path: &Path) -> bool {
    path.is_file() && load_rgb(path).is_ok()
}

/// Writes bytes to `path` atomically: a temporary file in the same folder, then a rename, so a crash
/// never leaves a half-written output that a rerun would mistake for a finished one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)?;
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // The process id alone can repeat across the nodes of a Slurm array sharing one folder (every
    // shard writes run.json), so a random part is added and the file must not exist yet.
    let tmp = path.with_file_name(format!(
        ".{name}.tmp{}-{:016x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)
}

/// Encodes an RGB image as PNG and writes it atomically.
pub fn save_png_atomic(path: &Path, img: &RgbImage) -> Result<(), ImageError> {
    let mut buf = Vec::new();
    image::DynamicImage::ImageRgb8(img.clone())
        .write_to(&mut std::io::Cursor::new(&mut buf), image::ImageFormat::Png)
        .map_err(|e| ImageError::Encode {
            path: path.to_path_buf(),
            source: Cause::new(e),
        })?;
    write_atomic(path, &buf).map_err(|source| ImageError::Write {
        path: path.to_path_buf(),
        source,
    })
}
