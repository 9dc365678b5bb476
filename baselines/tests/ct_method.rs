//! Colour transfer through the `EditMethod` trait: determinism, errors, awkward images.

use baselines::ct::{ColourTransfer, CtOptions, FloatImage};
use baselines::{build_method, EditError, EditMethod, EditRequest};
use image::{Rgb, RgbImage};

fn gradient(w: u32, h: u32, phase: u32) -> RgbImage {
    RgbImage::from_fn(w, h, |x, y| {
        Rgb([
            ((x * 255) / w.max(1)) as u8,
            ((y * 255) / h.max(1)) as u8,
            (((x + y + phase) * 37) % 256) as u8,
        ])
    })
}

fn photo(name: &str) -> RgbImage {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ct")
        .join(name);
    image::open(path).expect("fixture image").to_rgb8()
}

fn ct() -> Box<dyn EditMethod> {
    build_method("ct", &serde_json::Value::Null).expect("ct builds")
}

fn edit(m: &dyn EditMethod, src: &RgbImage, reference: &RgbImage, seed: u64) -> RgbImage {
    let refs = [reference.clone()];
    m.edit(&EditRequest::new(src, "awe", seed).with_references(&refs))
        .expect("edit runs")
}

#[test]
fn same_seed_same_bytes_different_seed_different_bytes() {
    let src = photo("china_47x41.png");
    let reference = photo("starry_tall_30x50.png");
    let m = ct();
    let a = edit(m.as_ref(), &src, &reference, 42);
    let b = edit(m.as_ref(), &src, &reference, 42);
    let c = edit(m.as_ref(), &src, &reference, 43);
    assert_eq!(a.dimensions(), src.dimensions());
    assert_eq!(a.as_raw(), b.as_raw());
    assert_ne!(a.as_raw(), c.as_raw());
    // A fresh method instance gives the same bytes too (no hidden state).
    assert_eq!(
        edit(ct().as_ref(), &src, &reference, 42).as_raw(),
        a.as_raw()
    );
}

fn mean(img: &RgbImage) -> [f64; 3] {
    let mut m = [0.0; 3];
    for p in img.pixels() {
        for c in 0..3 {
            m[c] += f64::from(p[c]);
        }
    }
    m.map(|v| v / f64::from(img.width() * img.height()))
}

fn dist(a: [f64; 3], b: [f64; 3]) -> f64 {
    (0..3).map(|c| (a[c] - b[c]).powi(2)).sum::<f64>().sqrt()
}

#[test]
fn the_edit_moves_colours_towards_the_reference() {
    let reference = photo("starry_48x32.png");
    // IDT alone on a small image, and the full method on an image large enough for regrain's
    // pyramid (on images under 42 pixels a side regrain runs 4 sweeps at full size only and, as
    // in the reference, stays close to the source in flat regions).
    let small = photo("coffee_48x32.png");
    let large = image::imageops::resize(&small, 128, 96, image::imageops::FilterType::Triangle);
    let idt_only = build_method("ct", &serde_json::json!({"regrain": false})).expect("builds");
    for (m, src) in [(idt_only, &small), (ct(), &large)] {
        let out = edit(m.as_ref(), src, &reference, 1);
        let (ms, mr, mo) = (mean(src), mean(&reference), mean(&out));
        assert!(
            dist(mo, mr) < 0.25 * dist(ms, mr),
            "{m:?}: mean colour {mo:?} did not approach {mr:?} from {ms:?}"
        );
    }
}

#[test]
fn missing_reference_is_an_error_naming_the_target() {
    let src = gradient(8, 8, 0);
    let err = ct()
        .edit(&EditRequest::new(&src, "awe", 0))
        .expect_err("needs a reference");
    assert!(matches!(err, EditError::MissingReference { .. }));
    assert_eq!(
        err.to_string(),
        "colour transfer needs at least one reference image of 'awe'"
    );
    assert!(ct().needs_references());
}

#[test]
fn empty_images_are_errors() {
    let empty = RgbImage::new(0, 5);
    let ok = gradient(4, 4, 0);
    let m = ct();
    let refs = [ok.clone()];
    let err = m
        .edit(&EditRequest::new(&empty, "fear", 0).with_references(&refs))
        .expect_err("empty source");
    assert!(err.to_string().contains("source image is empty"), "{err}");
    let refs = [empty.clone()];
    let err = m
        .edit(&EditRequest::new(&ok, "fear", 0).with_references(&refs))
        .expect_err("empty reference");
    assert!(
        err.to_string().contains("reference image is empty"),
        "{err}"
    );
}

#[test]
fn tiny_and_non_square_images_work() {
    let m = ct();
    for (w, h) in [
        (1, 1),
        (1, 7),
        (9, 1),
        (2, 3),
        (5, 2),
        (64, 3),
        (3, 50),
        (43, 21),
    ] {
        let src = gradient(w, h, 1);
        for (rw, rh) in [(1, 1), (7, 3), (30, 50)] {
            let reference = gradient(rw, rh, 5);
            let out = edit(m.as_ref(), &src, &reference, 3);
            assert_eq!(out.dimensions(), (w, h));
        }
    }
}

#[test]
fn constant_images_give_finite_results() {
    let m = ct();
    let grey = RgbImage::from_pixel(20, 30, Rgb([128, 128, 128]));
    let red = RgbImage::from_pixel(11, 7, Rgb([200, 10, 10]));
    let black = RgbImage::from_pixel(5, 5, Rgb([0, 0, 0]));
    let white = RgbImage::from_pixel(5, 5, Rgb([255, 255, 255]));
    let grad = gradient(25, 25, 2);
    for (src, reference) in [
        (&grey, &grey),
        (&grey, &red),
        (&red, &grey),
        (&black, &white),
        (&white, &black),
        (&grad, &grey),
        (&grey, &grad),
    ] {
        let opts = CtOptions {
            regrain: false,
            ..CtOptions::default()
        };
        let float = ColourTransfer::new(opts)
            .expect("options")
            .transfer_with_rotations(
                &FloatImage::from_rgb8(src),
                &FloatImage::from_rgb8(reference),
                &baselines::ct::reference_rotations(10, 9),
            )
            .expect("finite");
        assert!(float.pixels().iter().flatten().all(|v| v.is_finite()));
        let out = edit(m.as_ref(), src, reference, 9);
        assert_eq!(out.dimensions(), src.dimensions());
    }
    // Same constant colour on both sides: nothing to move (within a couple of levels, the
    // reference's bin shift included).
    let out = edit(m.as_ref(), &grey, &grey, 0);
    assert!(out
        .pixels()
        .all(|p| p.0.iter().all(|&v| v.abs_diff(128) <= 2)));
    // IDT moves a constant source onto the reference's constant colour...
    let idt_only = build_method("ct", &serde_json::json!({"regrain": false})).expect("builds");
    let out = edit(idt_only.as_ref(), &grey, &red, 0);
    assert!(
        out.pixels().all(|p| p
            .0
            .iter()
            .zip([200u8, 10, 10])
            .all(|(&a, b)| a.abs_diff(b) <= 3)),
        "{:?}",
        out.get_pixel(0, 0)
    );
    // ...and regrain, which weighs the graded colours by the source's gradient magnitude, gives
    // a constant source back unchanged, as the reference does.
    let out = edit(m.as_ref(), &grey, &red, 0);
    assert_eq!(out, grey);
}

#[test]
fn only_the_first_reference_is_used() {
    let src = photo("coffee_48x32.png");
    let a = photo("starry_48x32.png");
    let b = photo("astronaut_40x36.png");
    let m = ct();
    let one = m
        .edit(&EditRequest::new(&src, "awe", 5).with_references(std::slice::from_ref(&a)))
        .expect("runs");
    let two = m
        .edit(&EditRequest::new(&src, "awe", 5).with_references(&[a.clone(), b]))
        .expect("runs");
    assert_eq!(one.as_raw(), two.as_raw());
}

#[test]
fn parameters_list_the_reference_defaults_and_rebuild_the_method() {
    let m = ct();
    let p = m.parameters();
    assert_eq!(
        p,
        serde_json::json!({
            "iterations": 10,
            "bins": 300,
            "histogram_eps": 1e-6,
            "relaxation": 1.0,
            "reference_bin_shift": true,
            "regrain": true,
            "regrain_nbits": [4, 16, 32, 64, 64, 64],
            "regrain_smoothness": 1.0
        })
    );
    let again = build_method("ct", &p).expect("rebuilds");
    assert_eq!(again.parameters(), p);

    let custom = build_method(
        "ct",
        &serde_json::json!({"iterations": 3, "regrain": false}),
    )
    .expect("partial options take defaults");
    assert_eq!(custom.parameters()["iterations"], 3);
    assert_eq!(custom.parameters()["bins"], 300);
}

#[test]
fn bad_options_are_errors_naming_the_option() {
    let err = build_method("ct", &serde_json::json!({"iterationz": 3})).expect_err("unknown");
    assert!(chain(&err).contains("iterationz"), "{err}");
    let err = build_method("ct", &serde_json::json!({"bins": 1})).expect_err("too few bins");
    assert!(err.to_string().contains("'bins'"), "{err}");
    let err = build_method("ct", &serde_json::json!({"histogram_eps": 0.0})).expect_err("eps");
    assert!(err.to_string().contains("histogram_eps"), "{err}");
    let err = build_method("ct", &serde_json::json!({"regrain_nbits": []})).expect_err("no levels");
    assert!(err.to_string().contains("regrain_nbits"), "{err}");
    let err = build_method("ct", &serde_json::json!({"iterations": -1})).expect_err("negative");
    assert!(matches!(err, EditError::InvalidOption { .. }), "{err}");
}

#[test]
fn zero_iterations_without_regrain_returns_the_source() {
    let src = photo("china_47x41.png");
    let reference = photo("starry_tall_30x50.png");
    let m = build_method(
        "ct",
        &serde_json::json!({"iterations": 0, "regrain": false}),
    )
    .expect("builds");
    assert_eq!(edit(m.as_ref(), &src, &reference, 0).as_raw(), src.as_raw());
}

/// The error and its causes on one line, as `emobench` prints them.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}
