//! Edit methods for emobench: the [`EditMethod`] trait every method implements, a [`registry`]
//! of methods by name, and the baselines of "Make Me Happier" (so far: colour transfer, [`ct`]).
//!
//! This crate depends on nothing from the harness: a method receives the target emotion as its
//! lower-case word and, when it needs them, reference images of that emotion chosen by the
//! caller.
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

pub mod ct;
/// The latent-diffusion pipeline InstructPix2Pix and EmoEditor share: schedulers, UNet, VAE,
/// CLIP text encoder, weights, noise, matching Hugging Face diffusers.
pub mod diffusion;
pub mod ip2p;
pub mod kernels;
pub mod method;
pub mod provenance;
pub mod registry;
pub mod resize;

pub use method::{EditError, EditMethod, EditRequest};
pub use registry::{build_method, method_names};
