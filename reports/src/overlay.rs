//! Grad-CAM overlays as pytorch-grad-cam's `show_cam_on_image` draws them: OpenCV's JET colour map
//! of the CAM, blended half and half with the image, rescaled so the brightest value is 255.

use image::RgbImage;

use emobench_core::predictor::gradcam::CamMap;

/// OpenCV COLORMAP_JET for a value in [0, 255], as RGB.
fn jet(v: u8) -> [f32; 3] {
    let x = f32::from(v) / 255.0;
    let ch = |c: f32| (1.5 - (4.0 * x - c).abs()).clamp(0.0, 1.0);
    [ch(3.0), ch(2.0), ch(1.0)]
}

/// Blends the CAM (resized to the image) over the image with weight `image_weight` on the image.
pub fn cam_overlay(img: &RgbImage, cam: &CamMap, image_weight: f32) -> RgbImage {
    let (w, h) = img.dimensions();
    let mut mixed = vec![0f32; (w * h * 3) as usize];
    for (i, px) in img.pixels().enumerate() {
        let v = cam.values.get(i).copied().unwrap_or(0.0);
        let heat = jet((255.0 * v.clamp(0.0, 1.0)) as u8);
        for c in 0..3 {
            mixed[i * 3 + c] =
                (1.0 - image_weight) * heat[c] + image_weight * f32::from(px.0[c]) / 255.0;
        }
    }
    let max = mixed.iter().copied().fold(0f32, f32::max).max(1e-7);
    let data: Vec<u8> = mixed
        .iter()
        .map(|v| (255.0 * v / max).round().clamp(0.0, 255.0) as u8)
        .collect();
    RgbImage::from_raw(w, h, data).unwrap_or_else(|| img.clone())
}
