//! Grad-CAM (Selvaraju et al., ICCV 2017) with pytorch-grad-cam's conventions, on `layer4[-1]`.
//!
//! With the ResNet head (global average pool, then `fc`), d logit_c / d A_k(i, j) = W[c, k] / (H W)
//! for every position, so the "mean gradient" channel weights are exactly W[c, k] / (H W): no
//! backward pass is needed, and the result is what autograd would give. The map is then
//! ReLU(sum_k alpha_k A_k), shifted by its minimum, divided by (max + 1e-7), resized with
//! cv2.resize's bilinear rule, and min-max scaled a second time at full size: pytorch-grad-cam
//! (1.5.x) calls `scale_cam_image` once per layer and again when aggregating layers, and the second
//! pass moves values by up to 0.0085, enough to flip mask pixels near 0.5.

use crate::imgproc::cv_resize::{resize_linear_f32, CvResizeError};

/// Threshold above which a pixel belongs to the emotional region M (strict, as the authors).
pub const REGION_THRESHOLD: f32 = 0.5;

/// A Grad-CAM map resized to the input size, values in [0, 1].
#[derive(Debug, Clone)]
pub struct CamMap {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// Row-major values.
    pub values: Vec<f32>,
    /// The raw map before scaling and resizing (feature-map resolution), for inspection.
    pub raw: Vec<f32>,
    /// Index (in the checkpoint's class order) of the class the map explains.
    pub class_index: usize,
}

impl CamMap {
    /// The emotional region: `cam > 0.5`.
    pub fn region(&self) -> Vec<bool> {
        self.values.iter().map(|v| *v > REGION_THRESHOLD).collect()
    }
}

/// `(x - min) / (1e-7 + max(x - min))` in f32, as `scale_cam_image`; all zeros stay zeros.
fn min_max(x: &[f32]) -> Vec<f32> {
    let min = x.iter().copied().fold(f32::INFINITY, f32::min);
    let shifted: Vec<f32> = x.iter().map(|v| v - min).collect();
    let max = shifted.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    shifted.iter().map(|v| v / (1e-7 + max)).collect()
}

/// One image's `layer4` activations, channel-major (C x H x W).
#[derive(Debug, Clone, Copy)]
pub struct FeatureMap<'a> {
    /// Row-major values, `channels * height * width` of them.
    pub data: &'a [f32],
    /// Number of channels.
    pub channels: usize,
    /// Feature-map height.
    pub height: usize,
    /// Feature-map width.
    pub width: usize,
}

/// Builds the CAM for one image from its activations and the `fc` weight row of the explained
/// class, resized to `out_w` x `out_h`.
pub fn grad_cam(
    features: &FeatureMap<'_>,
    fc_row: &[f32],
    class_index: usize,
    out_w: usize,
    out_h: usize,
) -> Result<CamMap, CvResizeError> {
    let (fh, fw, channels, activations) = (
        features.height,
        features.width,
        features.channels,
        features.data,
    );
    let hw = fh * fw;
    let mut raw = vec![0f32; hw];
    for (k, w) in fc_row.iter().enumerate().take(channels) {
        let alpha = *w / hw as f32;
        let a = &activations[k * hw..(k + 1) * hw];
        for (r, v) in raw.iter_mut().zip(a) {
            *r += alpha * v;
        }
    }
    for r in raw.iter_mut() {
        *r = r.max(0.0);
    }
    let values = min_max(&resize_linear_f32(&min_max(&raw), fw, fh, out_w, out_h)?);
    Ok(CamMap {
        width: out_w,
        height: out_h,
        values,
        raw,
        class_index,
    })
}
