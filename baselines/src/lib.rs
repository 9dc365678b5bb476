//! The baselines of "Make Me Happier" as emobench edit methods: colour transfer ([`ct`]), neural
//! style transfer ([`nst`]), CLIPstyler ([`clipstyler`]), InstructPix2Pix ([`ip2p`]) and the Large Model
//! Series ([`lms`]: BLIP caption -> language-model instruction -> InstructPix2Pix), and their [`registry`]. Each implements the harness's
//! [`EditMethod`] trait (defined in `emobench_core::edit::method`, re-exported here); the networks
//! they run live in the `models` crate. The paper's own method, EmoEditor, is its own crate.
//!
//! A method receives the target emotion as its lower-case word and, when it needs them,
//! reference images of that emotion chosen by the caller.
//!
//! ```
//! use baselines::{registry, EditRequest};
//!
//! let ct = registry::build_method("ct", &serde_json::Value::Null)?;
//! let source = image::RgbImage::from_pixel(32, 24, image::Rgb([120, 90, 60]));
//! let palette = vec![image::RgbImage::from_fn(16, 16, |x, y| {
//!     image::Rgb([(x * 16) as u8, (y * 16) as u8, 200])
//! })];
//! let out = ct.edit(&EditRequest::new(&source, "awe", 7).with_references(&palette))?;
//! assert_eq!(out.dimensions(), source.dimensions());
//! # Ok::<(), baselines::EditError>(())
//! ```

#![warn(missing_docs)]

pub mod clipstyler;
pub mod ct;
pub mod ip2p;
pub mod lms;
pub mod nst;
pub mod registry;

/// The edit-method trait, its request and error (defined by the harness core).
pub use emobench_core::edit::method;
pub use method::{EditError, EditMethod, EditRequest};
pub use registry::{build_method, method_names};
