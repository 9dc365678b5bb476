//! Colour transfer against the reference MATLAB code (frcs/colour-transfer, run under GNU Octave
//! by `tests/fixtures/make_ct_fixtures.py`), with the rotations injected.

use std::path::{Path, PathBuf};

use baselines::ct::{
    idt_with_rotations, quantise, regrain, Axes, ColourTransfer, CtOptions, FloatImage,
    IdtSettings, REFERENCE_AXES,
};
use serde_json::Value;

/// Tolerance on float results.
const TOL: f64 = 1e-6;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ct")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(dir().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("valid manifest")
}

fn case(name: &str) -> Value {
    manifest()["cases"]
        .as_array()
        .expect("cases")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no case {name}"))
        .clone()
}

fn png(name: &Value) -> FloatImage {
    let path = dir().join(name.as_str().expect("file name"));
    let img = image::open(&path).expect("decodes").to_rgb8();
    FloatImage::from_rgb8(&img)
}

fn f64s(out: &Value) -> FloatImage {
    let bytes = std::fs::read(dir().join(out["file"].as_str().expect("file"))).expect("reads");
    let (w, h) = (
        out["width"].as_u64().expect("width") as usize,
        out["height"].as_u64().expect("height") as usize,
    );
    let vals: Vec<f64> = bytes
        .chunks_exact(8)
        .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")))
        .collect();
    assert_eq!(vals.len(), w * h * 3);
    let px = vals.chunks_exact(3).map(|p| [p[0], p[1], p[2]]).collect();
    FloatImage::new(w, h, px).expect("size")
}

fn rotations(case: &Value) -> Vec<Axes> {
    case["rotations"]
        .as_array()
        .expect("rotations")
        .iter()
        .map(|r| {
            r.as_array()
                .expect("axes")
                .iter()
                .map(|row| {
                    let v: Vec<f64> = row
                        .as_array()
                        .expect("row")
                        .iter()
                        .map(|x| x.as_f64().expect("number"))
                        .collect();
                    [v[0], v[1], v[2]]
                })
                .collect()
        })
        .collect()
}

/// Max |a - b| over all samples, and max |quantise(a) - quantise(b)|.
fn compare(label: &str, got: &FloatImage, want: &FloatImage) -> (f64, u8) {
    assert_eq!(
        (got.width(), got.height()),
        (want.width(), want.height()),
        "{label}: size"
    );
    let mut max_f = 0.0f64;
    let mut max_q = 0u8;
    for (g, w) in got.pixels().iter().zip(want.pixels()) {
        for c in 0..3 {
            assert!(g[c].is_finite(), "{label}: non-finite value");
            max_f = max_f.max((g[c] - w[c]).abs());
            max_q = max_q.max(quantise(g[c]).abs_diff(quantise(w[c])));
        }
    }
    println!("{label}: max |float diff| = {max_f:.3e}, max 8-bit diff = {max_q}");
    assert!(max_f <= TOL, "{label}: float diff {max_f:e} > {TOL:e}");
    assert!(max_q <= 1, "{label}: 8-bit diff {max_q} > 1");
    (max_f, max_q)
}

fn check_idt(name: &str) {
    let c = case(name);
    let src = png(&c["source"]);
    let refr = png(&c["reference"]);
    let rots = rotations(&c);
    let got = idt_with_rotations(src.pixels(), refr.pixels(), &rots, &IdtSettings::default())
        .expect("idt runs");
    let got = FloatImage::new(src.width(), src.height(), got).expect("size");
    compare(name, &got, &f64s(&c["outputs"]["idt"]));
}

#[test]
fn fixtures_record_the_reference_and_its_fixed_axes() {
    let m = manifest();
    assert_eq!(m["reference"]["repository"], "frcs/colour-transfer");
    assert_eq!(
        m["reference"]["commit"],
        "50397f021a92856b151984102573f9ce0de5f6de"
    );
    let rots = rotations(&case("idt1_fixed_axes"));
    assert_eq!(rots.len(), 1);
    assert_eq!(
        rots[0],
        REFERENCE_AXES.to_vec(),
        "fixed axes differ bitwise"
    );
}

#[test]
fn one_iteration_with_the_fixed_axes_matches_reference() {
    check_idt("idt1_fixed_axes");
}

#[test]
fn one_iteration_with_rotated_axes_matches_reference() {
    check_idt("idt1_rotated_axes");
}

#[test]
fn ten_iterations_match_reference() {
    check_idt("idt10");
}

fn check_regrain(name: &str) {
    let c = case(name);
    let src = png(&c["source"]);
    let graded = png(&c["graded"]);
    let nbits: Vec<usize> = c["nbits"]
        .as_array()
        .expect("nbits")
        .iter()
        .map(|v| v.as_u64().expect("int") as usize)
        .collect();
    let smooth = c["smoothness"].as_f64().expect("smoothness");
    let got = regrain(&src, &graded, &nbits, smooth).expect("regrain runs");
    compare(name, &got, &f64s(&c["outputs"]["regrain"]));
}

#[test]
fn regrain_on_exact_halvings_matches_reference() {
    check_regrain("regrain_even");
}

#[test]
fn regrain_on_odd_sizes_matches_reference() {
    check_regrain("regrain_odd");
}

#[test]
fn whole_method_with_given_rotations_matches_reference() {
    let c = case("pipeline_odd");
    let src = png(&c["source"]);
    let refr = png(&c["reference"]);
    let rots = rotations(&c);

    let idt_only = ColourTransfer::new(CtOptions {
        regrain: false,
        ..CtOptions::default()
    })
    .expect("options");
    let got = idt_only
        .transfer_with_rotations(&src, &refr, &rots)
        .expect("runs");
    compare("pipeline_odd (idt)", &got, &f64s(&c["outputs"]["idt"]));

    let full = ColourTransfer::new(CtOptions::default()).expect("options");
    let got = full
        .transfer_with_rotations(&src, &refr, &rots)
        .expect("runs");
    let want = f64s(&c["outputs"]["regrain"]);
    compare("pipeline_odd (idt + regrain)", &got, &want);
    // What the method writes: every byte within one level of the reference's quantised result.
    let bytes = got.to_rgb8();
    let want_bytes = want.to_rgb8();
    let worst = bytes
        .as_raw()
        .iter()
        .zip(want_bytes.as_raw())
        .map(|(a, b)| a.abs_diff(*b))
        .max()
        .unwrap_or(0);
    assert!(worst <= 1, "8-bit output differs by {worst}");
}
