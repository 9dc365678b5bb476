//! Image decoding: bad inputs give one-line errors naming the file; unusual but valid inputs become
//! the same 8-bit RGB that PIL's `.convert('RGB')` gives (fixtures in `tests/fixtures/bad/`, written
//! by `tests/fixtures/torch/make_fixtures.py`).

use std::path::{Path, PathBuf};

use emobench_core::image_io::{load_rgb, load_rgb_with, DecodeLimits};

fn bad(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bad")
        .join(name)
}

fn one_line_naming_file(err: &str, name: &str) {
    assert!(err.contains(name), "error does not name the file: {err}");
    assert!(!err.contains('\n'), "error spans lines: {err}");
}

#[test]
fn a_truncated_jpeg_is_an_error_naming_the_file() {
    let e = load_rgb(&bad("truncated.jpg")).unwrap_err().to_string();
    one_line_naming_file(&e, "truncated.jpg");
}

#[test]
fn an_oversized_header_is_rejected_before_allocating() {
    let e = load_rgb(&bad("huge_header.png")).unwrap_err().to_string();
    one_line_naming_file(&e, "huge_header.png");
    assert!(e.contains("100000x100000"), "{e}");
}

#[test]
fn text_and_missing_files_are_errors_naming_the_file() {
    let e = load_rgb(&bad("not_an_image.png")).unwrap_err().to_string();
    one_line_naming_file(&e, "not_an_image.png");
    let e = load_rgb(&bad("does_not_exist.png"))
        .unwrap_err()
        .to_string();
    one_line_naming_file(&e, "does_not_exist.png");
}

#[test]
fn file_size_limit_is_checked_first() {
    let limits = DecodeLimits {
        max_file_bytes: 100,
        ..DecodeLimits::default()
    };
    let e = load_rgb_with(&bad("truncated.jpg"), &limits)
        .unwrap_err()
        .to_string();
    assert!(e.contains("over the 100-byte limit"), "{e}");
}

#[test]
fn palette_and_alpha_inputs_match_pil_convert_rgb() {
    for name in ["palette", "rgba"] {
        let got = load_rgb(&bad(&format!("{name}.png"))).unwrap();
        let want = load_rgb(&bad(&format!("{name}_rgb.png"))).unwrap();
        assert_eq!(got.dimensions(), want.dimensions(), "{name}");
        assert!(
            got.as_raw() == want.as_raw(),
            "{name}: pixels differ from PIL"
        );
    }
}

#[test]
fn sixteen_bit_gray_is_scaled_not_clamped() {
    // PIL clamps I;16 samples to 255 on convert('RGB') (gray16_rgb.png); emobench scales by
    // 1/257 like every image library that treats 16-bit as a wider range of the same
    // brightness. Sample v = 2 i^2 at raster index i (the fixture's construction).
    let got = load_rgb(&bad("gray16.png")).unwrap();
    assert_eq!(got.dimensions(), (17, 9));
    for (i, px) in got.pixels().enumerate() {
        let v = 2.0 * (i as f64).powi(2);
        let expected = (v / 257.0).round() as u8;
        assert!(
            px.0.iter().all(|c| c.abs_diff(expected) <= 1),
            "pixel {i}: {px:?} vs {expected}"
        );
    }
    let pil = load_rgb(&bad("gray16_rgb.png")).unwrap();
    assert_eq!(pil.get_pixel(16, 8).0, [255, 255, 255]);
}

#[test]
fn exif_orientation_is_applied_as_pil_exif_transpose() {
    let got = load_rgb(&bad("exif_rotated.jpg")).unwrap();
    let want = load_rgb(&bad("exif_rotated_expected.png")).unwrap();
    assert_eq!(got.dimensions(), (16, 32));
    assert_eq!(got.dimensions(), want.dimensions());
    // Both decode the same JPEG (libjpeg in PIL, zune-jpeg here): allow decoder rounding.
    let worst = got
        .as_raw()
        .iter()
        .zip(want.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert!(worst <= 3, "max difference {worst}");
}
