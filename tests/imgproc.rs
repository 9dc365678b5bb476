//! Compares `emobench_core::imgproc` with outputs of the reference libraries (Pillow, OpenCV,
//! scikit-image) stored in `tests/fixtures/imgproc/` by `make_fixtures.py`.
//!
//! Set `EMOBENCH_IMGPROC_FIXTURES=DIR` to run the same comparisons on another fixture folder,
//! e.g. the larger set written by `make_fixtures.py --extended DIR`. Run with `--nocapture` to
//! see the per-case agreement.

use std::path::{Path, PathBuf};
use std::time::Instant;

use emobench_core::imgproc::{
    canny_gray, canny_rgb, resize_gray_pil_with, resize_linear_f32, resize_pil, resize_pil_with,
    rgb_to_gray_cv, ssim_gray, ssim_rgb, PassOrder, ResizeFilter, SsimError, SsimOptions,
};
use image::{GrayImage, RgbImage};
use serde_json::Value;

fn root() -> PathBuf {
    match std::env::var_os("EMOBENCH_IMGPROC_FIXTURES") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/imgproc"),
    }
}

fn manifest() -> Value {
    manifest_named("manifest.json")
}

fn manifest_named(file: &str) -> Value {
    let path = root().join(file);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).expect("manifest.json is valid JSON")
}

fn cases<'a>(man: &'a Value, key: &str) -> &'a Vec<Value> {
    let list = man[key]
        .as_array()
        .unwrap_or_else(|| panic!("manifest has no `{key}` list"));
    assert!(!list.is_empty(), "manifest `{key}` list is empty");
    list
}

fn s<'a>(case: &'a Value, key: &str) -> &'a str {
    case[key]
        .as_str()
        .unwrap_or_else(|| panic!("{key} missing in {case}"))
}

fn n(case: &Value, key: &str) -> f64 {
    case[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {case}"))
}

fn rgb(rel: &str) -> RgbImage {
    image::open(root().join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .to_rgb8()
}

fn gray(rel: &str) -> GrayImage {
    image::open(root().join(rel))
        .unwrap_or_else(|e| panic!("{rel}: {e}"))
        .to_luma8()
}

fn f32s(rel: &str) -> Vec<f32> {
    let bytes = std::fs::read(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"));
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

/// (number of differing values, largest absolute difference).
fn diff_u8(a: &[u8], b: &[u8]) -> (usize, u8) {
    assert_eq!(a.len(), b.len(), "buffer sizes differ");
    a.iter().zip(b).fold((0, 0), |(count, max), (&x, &y)| {
        let d = x.abs_diff(y);
        (count + usize::from(d != 0), max.max(d))
    })
}

fn pass_order(case: &Value) -> PassOrder {
    match s(case, "order") {
        "classic" => PassOrder::Classic,
        "pillow13" => PassOrder::Pillow13,
        other => panic!("unknown pass order {other}"),
    }
}

/// The Rust resize of a manifest `resize` case, with the given pass order, as raw bytes.
fn resize_with_order(case: &Value, order: PassOrder) -> Vec<u8> {
    let filter: ResizeFilter = s(case, "filter").parse().expect("known filter");
    let (w, h) = (n(case, "width") as u32, n(case, "height") as u32);
    if s(case, "mode") == "L" {
        resize_gray_pil_with(&gray(s(case, "input")), w, h, filter, order).into_raw()
    } else {
        resize_pil_with(&rgb(s(case, "input")), w, h, filter, order).into_raw()
    }
}

/// Pillow's output of a manifest `resize` case, as raw bytes.
fn resize_expected(case: &Value) -> Vec<u8> {
    if s(case, "mode") == "L" {
        gray(s(case, "output")).into_raw()
    } else {
        rgb(s(case, "output")).into_raw()
    }
}

#[test]
fn resize_matches_pillow() {
    let man = manifest();
    let mut total_diff = 0;
    let mut total = 0;
    for case in cases(&man, "resize") {
        let want = resize_expected(case);
        let got = resize_with_order(case, pass_order(case));
        let (count, max) = diff_u8(&got, &want);
        println!(
            "resize {}: {count} differing values (max {max})",
            s(case, "output")
        );
        assert!(max <= 1, "{}: a value is off by {max}", s(case, "output"));
        total_diff += count;
        total += want.len();
    }
    println!("resize: {total_diff} of {total} values differ from Pillow");
    // Stated tolerance is one level; the implementation is exact, so any difference is a bug.
    assert_eq!(total_diff, 0, "resize should be bit-exact against Pillow");
}

/// Pillow's LANCZOS (what InstructPix2Pix's preprocessing uses), from
/// `make_lanczos_fixtures.py`: RGB and L images, down- and upscaling, odd and non-square sizes,
/// and both pass orders on the resizes where Pillow 13 goes vertically first. Bit-identical.
#[test]
fn lanczos_resize_matches_pillow() {
    let man = manifest_named("manifest_lanczos.json");
    let mut total_diff = 0;
    let mut total = 0;
    let mut failed = Vec::new();
    // (mode, downscale in both axes, upscale in both axes, order) seen, for the coverage check.
    let mut seen = std::collections::BTreeSet::new();
    for case in cases(&man, "resize") {
        assert_eq!(s(case, "filter"), "lanczos", "{case}");
        let order = pass_order(case);
        let want = resize_expected(case);
        let got = resize_with_order(case, order);
        let (count, max) = diff_u8(&got, &want);
        let out = s(case, "output");
        println!("lanczos {out}: {count} differing values (max {max})");
        if count != 0 {
            failed.push(format!("{out}: {count} values differ (max {max})"));
        }
        total_diff += count;
        total += want.len();

        // Where Pillow's two pass orders disagree, the other order must fail this case, so the
        // stored cases really pin the order down.
        if case["orders_differ"].as_u64().unwrap_or(0) > 0 {
            let other = match order {
                PassOrder::Classic => PassOrder::Pillow13,
                PassOrder::Pillow13 => PassOrder::Classic,
            };
            assert_ne!(
                resize_with_order(case, other),
                want,
                "{out}: the other pass order gives the same output"
            );
        }

        let (src_w, src_h) = image::image_dimensions(root().join(s(case, "input")))
            .unwrap_or_else(|e| panic!("{}: {e}", s(case, "input")));
        let (w, h) = (n(case, "width") as u32, n(case, "height") as u32);
        seen.insert((
            s(case, "mode").to_string(),
            w < src_w && h < src_h,
            w > src_w && h > src_h,
            s(case, "order").to_string(),
        ));
    }
    println!("lanczos: {total_diff} of {total} values differ from Pillow");
    assert!(
        failed.is_empty(),
        "Lanczos differs from Pillow:\n{}",
        failed.join("\n")
    );
    for mode in ["RGB", "L"] {
        let has = |down: bool, up: bool, order: &str| {
            seen.iter()
                .any(|(m, d, u, o)| m == mode && *d == down && *u == up && o == order)
        };
        assert!(has(true, false, "classic"), "no {mode} downscale case");
        assert!(has(false, true, "classic"), "no {mode} upscale case");
        assert!(
            seen.iter().any(|(m, _, _, o)| m == mode && o == "pillow13"),
            "no {mode} case in Pillow 13's pass order"
        );
    }
}

#[test]
fn gray_matches_opencv() {
    let man = manifest();
    for case in cases(&man, "gray") {
        let got = rgb_to_gray_cv(&rgb(s(case, "input")));
        let want = gray(s(case, "output"));
        let (count, max) = diff_u8(got.as_raw(), want.as_raw());
        println!("gray {}: {count} differing (max {max})", s(case, "output"));
        assert_eq!(count, 0, "{}", s(case, "output"));
    }
}

#[test]
fn canny_matches_opencv() {
    let man = manifest();
    let mut total_diff = 0;
    for case in cases(&man, "canny") {
        let input = rgb(s(case, "input"));
        let (lo, hi) = (n(case, "low"), n(case, "high"));
        let got = match s(case, "color") {
            "rgb" => canny_rgb(&input, lo, hi),
            _ => canny_gray(&rgb_to_gray_cv(&input), lo, hi),
        };
        let want = gray(s(case, "output"));
        let (count, _) = diff_u8(got.as_raw(), want.as_raw());
        let share = 1.0 - count as f64 / want.as_raw().len() as f64;
        println!("canny {}: {count} differing pixels", s(case, "output"));
        assert!(got.pixels().all(|p| p.0[0] == 0 || p.0[0] == 255));
        assert!(
            share >= 0.999,
            "{}: only {:.4}% agree",
            s(case, "output"),
            share * 100.0
        );
        total_diff += count;
    }
    println!("canny: {total_diff} differing pixels in total");
    assert_eq!(total_diff, 0, "Canny should be bit-exact against OpenCV");
}

#[test]
fn ssim_matches_skimage() {
    let man = manifest();
    let mut worst = 0.0f64;
    for case in cases(&man, "ssim") {
        let opts = SsimOptions {
            win_size: n(case, "win_size") as usize,
            gaussian: case["gaussian"].as_bool().expect("gaussian flag"),
            sigma: n(case, "sigma"),
            data_range: n(case, "data_range"),
            sample_covariance: case["sample_covariance"]
                .as_bool()
                .expect("covariance flag"),
        };
        let (a, b) = (rgb(s(case, "a")), rgb(s(case, "b")));
        let got = match s(case, "color") {
            "rgb" => ssim_rgb(&a, &b, &opts),
            _ => ssim_gray(&rgb_to_gray_cv(&a), &rgb_to_gray_cv(&b), &opts),
        }
        .expect("valid SSIM case");
        let want = n(case, "value");
        let err = (got - want).abs();
        println!(
            "ssim {} {} win {} gaussian {} sample_cov {}: {got:.12} vs {want:.12} (err {err:.2e})",
            s(case, "label"),
            s(case, "color"),
            opts.win_size,
            opts.gaussian,
            opts.sample_covariance
        );
        worst = worst.max(err);
    }
    println!("ssim: max abs error {worst:.3e}");
    assert!(worst <= 1e-4, "SSIM off by {worst}");
    assert!(worst <= 1e-9, "SSIM should agree to 1e-9, got {worst}");
}

#[test]
fn cv_resize_matches_opencv() {
    let man = manifest();
    let mut worst = 0.0f32;
    let mut inexact = 0;
    for case in cases(&man, "cv_resize") {
        let src = f32s(s(case, "input"));
        let dims = ["sw", "sh", "dw", "dh"].map(|k| n(case, k) as usize);
        let got = resize_linear_f32(&src, dims[0], dims[1], dims[2], dims[3]).expect("resize");
        let want = f32s(s(case, "output"));
        assert_eq!(got.len(), want.len());
        let mut case_worst = 0.0f32;
        let mut case_inexact = 0;
        for (g, w) in got.iter().zip(&want) {
            case_worst = case_worst.max((g - w).abs());
            case_inexact += usize::from(g.to_bits() != w.to_bits());
        }
        println!(
            "cv_resize {}: max abs diff {case_worst:.3e}, {case_inexact} values not bit-identical",
            s(case, "output")
        );
        worst = worst.max(case_worst);
        inexact += case_inexact;
    }
    println!("cv_resize: max abs diff {worst:.3e}, {inexact} values not bit-identical");
    assert!(worst <= 1e-5, "cv resize off by {worst}");
}

#[test]
fn window_larger_than_image_is_an_error() {
    let a = GrayImage::new(30, 60);
    assert!(matches!(
        ssim_gray(&a, &a, &SsimOptions::uniform(51)),
        Err(SsimError::WindowTooLarge { .. })
    ));
    let c = RgbImage::new(6, 6);
    assert!(matches!(
        ssim_rgb(&c, &c, &SsimOptions::default()),
        Err(SsimError::WindowTooLarge { .. })
    ));
}

#[test]
fn identical_photos_have_ssim_one_and_constant_images_no_edges() {
    let man = manifest();
    let first = s(&cases(&man, "resize")[0], "output").to_string();
    let img = rgb(&first);
    let one = ssim_rgb(&img, &img, &SsimOptions::default()).expect("ssim");
    assert!((one - 1.0).abs() < 1e-12);
    let g = rgb_to_gray_cv(&img);
    let one = ssim_gray(&g, &g, &SsimOptions::uniform(51)).expect("ssim");
    assert!((one - 1.0).abs() < 1e-12);
    let flat = RgbImage::from_pixel(224, 224, image::Rgb([90, 14, 250]));
    assert!(canny_rgb(&flat, 200.0, 500.0).pixels().all(|p| p.0[0] == 0));
    assert!(canny_rgb(&flat, 0.0, 0.0).pixels().all(|p| p.0[0] == 0));
}

/// Prints the cost of each routine on a 224x224 photo; run with
/// `cargo test --release --test imgproc -- --ignored --nocapture`.
#[test]
#[ignore]
fn timing_224() {
    let man = manifest();
    let src_rel = s(&cases(&man, "resize")[0], "input").to_string();
    let src = rgb(&src_rel);
    let img = resize_pil(&src, 224, 224, ResizeFilter::Bicubic);
    let other = RgbImage::from_fn(224, 224, |x, y| *img.get_pixel(223 - x, y));
    let g = rgb_to_gray_cv(&img);
    let g2 = rgb_to_gray_cv(&other);
    let cam: Vec<f32> = (0..49).map(|i| i as f32 / 48.0).collect();
    fn time<T>(label: &str, reps: u32, mut f: impl FnMut() -> T) {
        let _ = f();
        let t = Instant::now();
        for _ in 0..reps {
            std::hint::black_box(f());
        }
        let us = t.elapsed().as_secs_f64() * 1e6 / f64::from(reps);
        println!("{label:<48} {us:>10.1} us");
    }
    let (w, h) = src.dimensions();
    time(&format!("resize_pil {w}x{h} -> 224 bicubic"), 50, || {
        resize_pil(&src, 224, 224, ResizeFilter::Bicubic)
    });
    time(&format!("resize_pil {w}x{h} -> 224 bilinear"), 50, || {
        resize_pil(&src, 224, 224, ResizeFilter::Bilinear)
    });
    time("rgb_to_gray_cv 224", 500, || rgb_to_gray_cv(&img));
    time("canny_rgb 224 (200, 500)", 200, || {
        canny_rgb(&img, 200.0, 500.0)
    });
    time("canny_gray 224 (200, 500)", 200, || {
        canny_gray(&g, 200.0, 500.0)
    });
    time("ssim_rgb 224 win 7", 100, || {
        ssim_rgb(&img, &other, &SsimOptions::default())
    });
    time("ssim_gray 224 win 51", 100, || {
        ssim_gray(&g, &g2, &SsimOptions::uniform(51))
    });
    time("ssim_rgb 224 gaussian", 100, || {
        ssim_rgb(&img, &other, &SsimOptions::gaussian())
    });
    time("resize_linear_f32 7x7 -> 224", 500, || {
        resize_linear_f32(&cam, 7, 7, 224, 224)
    });
}
