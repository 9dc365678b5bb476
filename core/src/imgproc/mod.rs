//! Exact reimplementations of the image-processing routines the EmoEditor authors' metrics call.
//!
//! Each submodule reproduces one reference implementation bit for bit (or, for floating-point
//! statistics, to rounding level), because the paper's numbers depend on their particular
//! roundings and border rules:
//!
//! | module | reference | used by |
//! |---|---|---|
//! | [`resize`] | Pillow `Image.resize` (bicubic / bilinear) | predictor input (EMR, ESR, Grad-CAM) |
//! | [`gray`] | OpenCV `cvtColor(COLOR_RGB2GRAY)` | critic SSIM, gray ESS |
//! | [`canny`] | OpenCV `Canny(img, 200, 500)` | ESS |
//! | [`ssim`] | scikit-image `structural_similarity` | EmoEditor critic, reports |
//! | [`cv_resize`] | OpenCV `resize(INTER_LINEAR)` on `float32` | Grad-CAM upsampling (ENRD) |
//!
//! Fixtures produced by the reference libraries, and the script that makes them, live in
//! `tests/fixtures/imgproc/`; `tests/imgproc.rs` compares against them.

pub mod canny;
pub mod cv_resize;
pub mod gray;
pub mod resize;
pub mod ssim;

pub use canny::{canny_gray, canny_rgb};
pub use cv_resize::{resize_linear_f32, CvResizeError};
pub use gray::{luma_cv, rgb_to_gray_cv};
pub use resize::{
    resize_gray_pil, resize_gray_pil_with, resize_pil, resize_pil_with, ParseResizeFilterError,
    PassOrder, ResizeFilter,
};
pub use ssim::{ssim_gray, ssim_rgb, SsimError, SsimOptions};
