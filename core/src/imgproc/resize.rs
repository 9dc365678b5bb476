//! Pillow's `Image.resize` for 8-bit images, reproduced to the bit.
//!
//! The emotion predictor's input is part of the metric definition: the authors' metric script
//! calls PIL `.resize((224, 224))` (bicubic by default) and their inference script goes through
//! torchvision's antialiased bilinear resize, which on PIL images is the same Pillow code path
//! with the bilinear filter. A different resampler (the `image` crate's, OpenCV's) moves class
//! probabilities enough to flip EMR/ESR decisions near ties, so this module mirrors Pillow's
//! `libImaging/Resample.c`: convolution coefficients computed in `f64` with the antialias support
//! scaling, rounded to 22-bit fixed point, a horizontal pass into an 8-bit intermediate image
//! followed by a vertical pass, each clipped to `0..=255`.
//!
//! Pillow's Python layer adds nothing for `RGB` and `L` images with the default arguments (no
//! `box`, no `reducing_gap`), except that a same-size resize returns a copy. Pillow 13 changed
//! the order of the two passes for resizes that shrink the height much more than the width; see
//! [`PassOrder`].

use std::fmt;
use std::str::FromStr;

use image::{GrayImage, ImageBuffer, Pixel, RgbImage};

/// Pillow's `PRECISION_BITS`: 32 bits minus 8 for the pixel value and 2 for the overshoot that
/// filters with negative lobes can produce.
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Resampling filter of [`resize_pil`], named as in Pillow's `Image.Resampling`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResizeFilter {
    /// Pillow's `BICUBIC` (Keys cubic convolution with `a = -0.5`, support 2): the default filter
    /// of `Image.resize`, used by the authors' metric script.
    Bicubic,
    /// Pillow's `BILINEAR` (triangle filter, support 1): what torchvision's `Resize` uses on PIL
    /// images, as in the authors' inference script.
    Bilinear,
    /// Pillow's `LANCZOS` (windowed sinc, support 3): what InstructPix2Pix's preprocessing uses.
    Lanczos,
}

impl ResizeFilter {
    /// Every filter, in the order their names are listed in messages.
    pub const ALL: [ResizeFilter; 3] = [
        ResizeFilter::Bicubic,
        ResizeFilter::Bilinear,
        ResizeFilter::Lanczos,
    ];

    /// The lowercase name accepted by [`FromStr`] and printed by [`fmt::Display`].
    pub fn name(self) -> &'static str {
        match self {
            ResizeFilter::Bicubic => "bicubic",
            ResizeFilter::Bilinear => "bilinear",
            ResizeFilter::Lanczos => "lanczos",
        }
    }

    /// Half-width of the filter at scale 1, in source pixels (Pillow's `support`).
    fn support(self) -> f64 {
        match self {
            ResizeFilter::Bicubic => 2.0,
            ResizeFilter::Bilinear => 1.0,
            ResizeFilter::Lanczos => 3.0,
        }
    }

    /// The filter kernel, with Pillow's exact expression order so that the `f64` weights (and
    /// hence their fixed-point roundings) come out identical.
    fn weight(self, x: f64) -> f64 {
        if self == ResizeFilter::Lanczos {
            // Pillow's window is [-3, 3), not symmetric, so no absolute value here.
            let sinc = |x: f64| {
                if x == 0.0 {
                    1.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x
                }
            };
            return if (-3.0..3.0).contains(&x) {
                sinc(x) * sinc(x / 3.0)
            } else {
                0.0
            };
        }
        let x = if x < 0.0 { -x } else { x };
        match self {
            ResizeFilter::Bicubic => {
                // Pillow writes these with `a = -0.5`: (a + 2) = 1.5, (a + 3) = 2.5.
                const A: f64 = -0.5;
                if x < 1.0 {
                    (1.5 * x - 2.5) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            ResizeFilter::Bilinear => {
                if x < 1.0 {
                    1.0 - x
                } else {
                    0.0
                }
            }
            ResizeFilter::Lanczos => 0.0,
        }
    }
}

impl fmt::Display for ResizeFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Error of parsing a [`ResizeFilter`] name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown resize filter `{given}`: expected one of bicubic, bilinear, lanczos")]
pub struct ParseResizeFilterError {
    /// The text that was not recognised.
    pub given: String,
}

impl FromStr for ResizeFilter {
    type Err = ParseResizeFilterError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim();
        ResizeFilter::ALL
            .into_iter()
            .find(|f| f.name().eq_ignore_ascii_case(wanted))
            .ok_or_else(|| ParseResizeFilterError {
                given: s.to_string(),
            })
    }
}

/// Fixed-point convolution coefficients of one resampling direction.
struct Coeffs {
    /// Coefficients per output position (`ksize` slots each, unused slots zero).
    kk: Vec<i32>,
    /// First source index and number of taps per output position.
    bounds: Vec<(usize, usize)>,
    ksize: usize,
}

/// Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`, for the whole source range
/// (no `box`).
fn precompute_coeffs(in_size: usize, out_size: usize, filter: ResizeFilter) -> Coeffs {
    // Pillow takes the box as C floats; sizes below 2^24 convert exactly.
    let scale = in_size as f32 as f64 / out_size as f64;
    // Downscaling widens the filter (antialiasing); upscaling keeps it at its natural width.
    let filterscale = if scale < 1.0 { 1.0 } else { scale };
    let support = filter.support() * filterscale;
    let ksize = (support.ceil() as usize) * 2 + 1;
    let inv_filterscale = 1.0 / filterscale;

    let mut kk = vec![0i32; out_size * ksize];
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        // C's `(int)` cast truncates towards zero; `as i64` does the same.
        let xmin = ((center - support + 0.5) as i64).max(0);
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
        let taps = (xmax - xmin).max(0) as usize;
        let xmin = xmin as usize;
        let mut ww = 0.0;
        for (x, w) in weights.iter_mut().enumerate().take(taps) {
            *w = filter.weight(((x + xmin) as f64 - center + 0.5) * inv_filterscale);
            ww += *w;
        }
        let row = &mut kk[xx * ksize..(xx + 1) * ksize];
        for (k, &w) in row.iter_mut().zip(weights.iter()).take(taps) {
            let w = if ww != 0.0 { w / ww } else { w };
            let scaled = w * f64::from(1u32 << PRECISION_BITS);
            // Round half away from zero, then truncate, exactly as Pillow's cast does.
            *k = if w < 0.0 {
                (-0.5 + scaled) as i32
            } else {
                (0.5 + scaled) as i32
            };
        }
        bounds.push((xmin, taps));
    }
    Coeffs { kk, bounds, ksize }
}

/// Pillow's `clip8`: drop the fraction bits (arithmetic shift) and saturate to a byte.
#[inline]
fn clip8(ss: i32) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Rounding offset every accumulator starts from.
const HALF: i32 = 1 << (PRECISION_BITS - 1);

/// Horizontal pass over rows `first_row..first_row + out_h` of an interleaved image with `CN`
/// channels per pixel.
fn horizontal<const CN: usize>(
    src: &[u8],
    src_w: usize,
    first_row: usize,
    out_h: usize,
    c: &Coeffs,
) -> Vec<u8> {
    let out_w = c.bounds.len();
    let mut out = vec![0u8; out_w * out_h * CN];
    for (yy, line_out) in out.chunks_exact_mut(out_w * CN).enumerate() {
        let row = first_row + yy;
        let line_in = &src[row * src_w * CN..(row + 1) * src_w * CN];
        for (xx, px) in line_out.chunks_exact_mut(CN).enumerate() {
            let (xmin, taps) = c.bounds[xx];
            let k = &c.kk[xx * c.ksize..xx * c.ksize + taps];
            let pixels = &line_in[xmin * CN..(xmin + taps) * CN];
            let mut ss = [HALF; CN];
            for (&kx, p) in k.iter().zip(pixels.chunks_exact(CN)) {
                for ch in 0..CN {
                    // Wrapping arithmetic mirrors C's int; real coefficients never overflow.
                    ss[ch] = ss[ch].wrapping_add(i32::from(p[ch]).wrapping_mul(kx));
                }
            }
            for ch in 0..CN {
                px[ch] = clip8(ss[ch]);
            }
        }
    }
    out
}

/// Vertical pass; `row_offset` is subtracted from the coefficient bounds because the horizontal
/// pass only produced the rows the vertical pass reads.
fn vertical<const CN: usize>(src: &[u8], w: usize, row_offset: usize, c: &Coeffs) -> Vec<u8> {
    let out_h = c.bounds.len();
    let stride = w * CN;
    let mut out = vec![0u8; stride * out_h];
    let mut ss = vec![HALF; stride];
    for (yy, line_out) in out.chunks_exact_mut(stride).enumerate() {
        let (ymin, taps) = c.bounds[yy];
        let k = &c.kk[yy * c.ksize..yy * c.ksize + taps];
        ss.fill(HALF);
        for (y, &ky) in k.iter().enumerate() {
            let row = ymin + y - row_offset;
            let line_in = &src[row * stride..(row + 1) * stride];
            for (acc, &v) in ss.iter_mut().zip(line_in) {
                *acc = acc.wrapping_add(i32::from(v).wrapping_mul(ky));
            }
        }
        for (o, &acc) in line_out.iter_mut().zip(ss.iter()) {
            *o = clip8(acc);
        }
    }
    out
}

/// Which of Pillow's two pass orders to reproduce.
///
/// Pillow 3.4 to 12.x always run the horizontal pass first. Pillow 13.0 runs the vertical pass
/// first when the height shrinks by more than twice as many pixels as the width
/// (`in_h - out_h > 0 && in_h - out_h > 2 * (in_w - out_w)`), which changes some output values
/// by a few levels on such resizes (portrait photos squeezed to a square, for instance).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum PassOrder {
    /// Horizontal then vertical, always: Pillow up to 12.x, what the EmoEditor authors ran.
    #[default]
    Classic,
    /// Pillow 13's rule: vertical first when the height shrinks much more than the width.
    Pillow13,
}

impl PassOrder {
    /// Whether the horizontal pass runs first for this resize.
    fn horizontal_first(self, w: usize, h: usize, out_w: usize, out_h: usize) -> bool {
        match self {
            PassOrder::Classic => true,
            PassOrder::Pillow13 => {
                let dh = h as i64 - out_h as i64;
                let dw = w as i64 - out_w as i64;
                !(dh > 0 && dh > dw * 2)
            }
        }
    }
}

/// Pillow's `ImagingResampleInner` on a raw interleaved 8-bit buffer.
fn resample<const CN: usize>(
    src: &[u8],
    (w, h): (usize, usize),
    (out_w, out_h): (usize, usize),
    filter: ResizeFilter,
    order: PassOrder,
) -> Vec<u8> {
    let need_h = out_w != w;
    let need_v = out_h != h;
    match (need_h, need_v) {
        (false, false) => src.to_vec(),
        (true, false) => horizontal::<CN>(src, w, 0, h, &precompute_coeffs(w, out_w, filter)),
        (false, true) => vertical::<CN>(src, w, 0, &precompute_coeffs(h, out_h, filter)),
        (true, true) => {
            let vert = precompute_coeffs(h, out_h, filter);
            let horiz = precompute_coeffs(w, out_w, filter);
            if order.horizontal_first(w, h, out_w, out_h) {
                // Only the source rows the vertical pass reads go through the horizontal pass.
                let first_row = vert.bounds.first().map_or(0, |b| b.0);
                let last_row = vert.bounds.last().map_or(h, |b| b.0 + b.1);
                let tmp = horizontal::<CN>(src, w, first_row, last_row - first_row, &horiz);
                vertical::<CN>(&tmp, out_w, first_row, &vert)
            } else {
                let tmp = vertical::<CN>(src, w, 0, &vert);
                horizontal::<CN>(&tmp, w, 0, out_h, &horiz)
            }
        }
    }
}

fn resize_buffer<P: Pixel<Subpixel = u8>, const CN: usize>(
    img: &ImageBuffer<P, Vec<u8>>,
    (width, height): (u32, u32),
    filter: ResizeFilter,
    order: PassOrder,
) -> ImageBuffer<P, Vec<u8>> {
    let (w, h) = img.dimensions();
    if (w, h) == (width, height) {
        return img.clone();
    }
    if w == 0 || h == 0 || width == 0 || height == 0 {
        // Pillow refuses empty images; an all-zero image of the requested size is the only
        // total answer that keeps this function infallible.
        return ImageBuffer::new(width, height);
    }
    let data = resample::<CN>(
        img.as_raw(),
        (w as usize, h as usize),
        (width as usize, height as usize),
        filter,
        order,
    );
    ImageBuffer::from_raw(width, height, data).unwrap_or_else(|| ImageBuffer::new(width, height))
}

/// Resize an 8-bit RGB image exactly as Pillow's `Image.resize((width, height), filter)` does
/// (Pillow up to 12.x; see [`resize_pil_with`] for Pillow 13's pass order).
///
/// Same size returns a copy, as Pillow does. An empty source or target (zero width or height),
/// which Pillow rejects, gives an all-zero image of the requested size.
pub fn resize_pil(img: &RgbImage, width: u32, height: u32, filter: ResizeFilter) -> RgbImage {
    resize_buffer::<_, 3>(img, (width, height), filter, PassOrder::Classic)
}

/// [`resize_pil`] with an explicit Pillow pass order.
pub fn resize_pil_with(
    img: &RgbImage,
    width: u32,
    height: u32,
    filter: ResizeFilter,
    order: PassOrder,
) -> RgbImage {
    resize_buffer::<_, 3>(img, (width, height), filter, order)
}

/// Resize an 8-bit grayscale (`L`) image exactly as Pillow's `Image.resize` does (Pillow up to
/// 12.x). Same conventions as [`resize_pil`].
pub fn resize_gray_pil(
    img: &GrayImage,
    width: u32,
    height: u32,
    filter: ResizeFilter,
) -> GrayImage {
    resize_buffer::<_, 1>(img, (width, height), filter, PassOrder::Classic)
}

/// [`resize_gray_pil`] with an explicit Pillow pass order.
pub fn resize_gray_pil_with(
    img: &GrayImage,
    width: u32,
    height: u32,
    filter: ResizeFilter,
    order: PassOrder,
) -> GrayImage {
    resize_buffer::<_, 1>(img, (width, height), filter, order)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_names() {
        for f in ResizeFilter::ALL {
            assert_eq!(f.to_string().parse::<ResizeFilter>(), Ok(f));
        }
        assert_eq!("Bicubic".parse::<ResizeFilter>(), Ok(ResizeFilter::Bicubic));
        let err = "nearest".parse::<ResizeFilter>().unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("nearest") && msg.contains("bicubic") && msg.contains("lanczos"));
    }

    #[test]
    fn coefficients_sum_to_one_in_fixed_point() {
        for f in ResizeFilter::ALL {
            for (i, o) in [(500, 224), (7, 224), (224, 224), (3, 5), (1, 4)] {
                let c = precompute_coeffs(i, o, f);
                for xx in 0..o {
                    let s: i64 = c.kk[xx * c.ksize..(xx + 1) * c.ksize]
                        .iter()
                        .map(|&k| i64::from(k))
                        .sum();
                    assert!((s - (1 << PRECISION_BITS)).abs() <= 8, "{f} {i}->{o}: {s}");
                }
            }
        }
    }

    #[test]
    fn same_size_is_a_copy_and_constant_stays_constant() {
        let img = RgbImage::from_fn(9, 5, |x, y| image::Rgb([x as u8 * 20, y as u8 * 40, 7]));
        assert_eq!(resize_pil(&img, 9, 5, ResizeFilter::Bicubic), img);
        let flat = RgbImage::from_pixel(31, 17, image::Rgb([200, 3, 99]));
        for f in ResizeFilter::ALL {
            for (w, h) in [(224, 224), (5, 3), (1, 1), (31, 40)] {
                let out = resize_pil(&flat, w, h, f);
                assert!(out.pixels().all(|p| p.0 == [200, 3, 99]), "{f} {w}x{h}");
            }
        }
    }

    #[test]
    fn pass_order_rule() {
        assert!(PassOrder::Classic.horizontal_first(100, 1000, 50, 10));
        assert!(!PassOrder::Pillow13.horizontal_first(100, 1000, 50, 10));
        // Height shrinks by 300, width by 213: not more than twice.
        assert!(PassOrder::Pillow13.horizontal_first(437, 512, 224, 212));
        // Upscaling never goes vertical first.
        assert!(PassOrder::Pillow13.horizontal_first(10, 10, 5, 40));
        let img = RgbImage::from_fn(20, 90, |x, y| {
            image::Rgb([(x * 13) as u8, (y * 3) as u8, 9])
        });
        let a = resize_pil_with(&img, 15, 10, ResizeFilter::Bicubic, PassOrder::Pillow13);
        assert_eq!(a.dimensions(), (15, 10));
    }

    #[test]
    fn empty_inputs_do_not_panic() {
        let empty = RgbImage::new(0, 4);
        assert_eq!(
            resize_pil(&empty, 3, 2, ResizeFilter::Bilinear).dimensions(),
            (3, 2)
        );
        let img = GrayImage::from_pixel(4, 4, image::Luma([9]));
        assert_eq!(
            resize_gray_pil(&img, 0, 2, ResizeFilter::Bicubic).dimensions(),
            (0, 2)
        );
    }
}
