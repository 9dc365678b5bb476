//! A small RGB float64 image type: the colour-transfer code works in `[0, 1]` doubles, as the
//! reference MATLAB code does after `double(imread(...))/255`.

use image::RgbImage;

/// An RGB image of `f64` samples, stored row-major (`pixels[y * width + x]`).
///
/// Values are nominally in `[0, 1]`; intermediate results of colour transfer may leave that
/// range, and are only clipped by [`FloatImage::to_rgb8`].
#[derive(Debug, Clone, PartialEq)]
pub struct FloatImage {
    width: usize,
    height: usize,
    pixels: Vec<[f64; 3]>,
}

impl FloatImage {
    /// An image from row-major pixels; `None` when `pixels.len() != width * height`.
    pub fn new(width: usize, height: usize, pixels: Vec<[f64; 3]>) -> Option<Self> {
        (width.checked_mul(height) == Some(pixels.len())).then_some(Self {
            width,
            height,
            pixels,
        })
    }

    /// An image filled with one colour.
    pub fn filled(width: usize, height: usize, value: [f64; 3]) -> Self {
        Self {
            width,
            height,
            pixels: vec![value; width * height],
        }
    }

    /// Converts 8-bit RGB to `[0, 1]` by dividing each sample by 255 (as the reference does).
    pub fn from_rgb8(img: &RgbImage) -> Self {
        let pixels = img
            .pixels()
            .map(|p| {
                [
                    f64::from(p[0]) / 255.0,
                    f64::from(p[1]) / 255.0,
                    f64::from(p[2]) / 255.0,
                ]
            })
            .collect();
        Self {
            width: img.width() as usize,
            height: img.height() as usize,
            pixels,
        }
    }

    /// Converts to 8-bit RGB with [`quantise`]: clip to `[0, 1]`, multiply by 255, round half
    /// away from zero.
    pub fn to_rgb8(&self) -> RgbImage {
        let mut raw = Vec::with_capacity(self.pixels.len() * 3);
        for p in &self.pixels {
            raw.extend(p.iter().map(|&v| quantise(v)));
        }
        // The buffer length is width * height * 3 by construction, so this cannot fail; fall back
        // to an empty image rather than panicking if that invariant were ever broken.
        RgbImage::from_raw(self.width as u32, self.height as u32, raw).unwrap_or_default()
    }

    /// Width in pixels.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Height in pixels.
    pub fn height(&self) -> usize {
        self.height
    }

    /// The pixels, row-major.
    pub fn pixels(&self) -> &[[f64; 3]] {
        &self.pixels
    }

    /// The pixels, row-major, by value.
    pub fn into_pixels(self) -> Vec<[f64; 3]> {
        self.pixels
    }

    /// The pixel at column `x`, row `y`.
    ///
    /// # Panics
    /// When `x >= width` or `y >= height`.
    pub fn get(&self, x: usize, y: usize) -> [f64; 3] {
        self.pixels[y * self.width + x]
    }
}

/// One float sample to 8 bits: `round(clamp(v, 0, 1) * 255)`, rounding half away from zero
/// (MATLAB's `uint8(...)` and `im2uint8` do the same). NaN maps to 0.
pub fn quantise(v: f64) -> u8 {
    if v.is_nan() {
        return 0;
    }
    // In [0, 255] after clamping, so the cast cannot saturate.
    (v.clamp(0.0, 1.0) * 255.0).round() as u8
}
