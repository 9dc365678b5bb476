//! The candle pipeline against diffusers 0.42.1 / transformers on tiny random-weight models with
//! the real architectures (`tests/fixtures/diffusion/`, made by `make_diffusion_fixtures.py`).
//!
//! Tolerance: max |rust - reference| / max |reference| <= 1e-4 per tensor, f32 on the CPU
//! (the fixture's own f32-vs-f64 noise floor is below 1e-5). The comparisons with a reference also
//! run in each precision `EMOBENCH_DTYPE` names (`common/setup.rs`), against the same f32
//! reference, at the half-precision tolerances of [`HALF`].

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use baselines::ip2p::{InstructPix2Pix, Ip2pOptions};
use candle_core::{DType, Device, Tensor};
use emobench_core::edit::method::{EditMethod, EditRequest};
use models::noise::{ReplayNoise, SeededNoise};
use models::pipeline::{image_to_unit_tensor, EditPipeline, EmoPassItem, Guidance, Ip2pItem};
use models::schedulers::{Ddim, DdimConfig, EulerAncestralConfig};
use models::weights::{self, LoadOptions};

#[path = "../../models/tests/common/setup.rs"]
mod setup;

const TOL: f32 = 1e-4;

/// [`TOL`] in f32; in f16 and bf16, the measured errors with a margin (README, Correctness).
const HALF: setup::Tol = setup::Tol {
    f32: TOL,
    f16: 2e-2,
    bf16: 1e-1,
};

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tests/fixtures/diffusion")
}

struct Fixture {
    tensors: HashMap<String, Tensor>,
    json: serde_json::Value,
}

impl Fixture {
    fn load() -> Self {
        let tensors =
            candle_core::safetensors::load(dir().join("reference.safetensors"), &Device::Cpu)
                .expect("reference.safetensors");
        let json = serde_json::from_str(
            &std::fs::read_to_string(dir().join("reference.json")).expect("reference.json"),
        )
        .expect("json");
        Self { tensors, json }
    }

    fn t(&self, name: &str) -> Tensor {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("fixture tensor {name}"))
            .clone()
    }

    /// Fixture tensor `name` in `dtype` on the tested device, as a network's input.
    fn t_as(&self, name: &str, dtype: DType) -> Tensor {
        self.t(name)
            .to_device(&setup::device())
            .unwrap()
            .to_dtype(dtype)
            .unwrap()
    }

    fn flat(&self, name: &str) -> Vec<f32> {
        self.t(name).flatten_all().unwrap().to_vec1().unwrap()
    }
}

fn opts() -> LoadOptions {
    opts_in(DType::F32)
}

fn opts_in(dtype: DType) -> LoadOptions {
    LoadOptions {
        device: setup::device(),
        dtype,
        variant: None,
    }
}

fn pipeline() -> EditPipeline {
    pipeline_in(DType::F32)
}

fn pipeline_in(dtype: DType) -> EditPipeline {
    weights::load_pipeline(&dir().join("tiny-ip2p"), &opts_in(dtype))
        .expect("tiny pipeline")
        .0
}

/// Max error relative to the reference's largest magnitude.
fn rel_err(got: &Tensor, want: &Tensor) -> f32 {
    assert_eq!(got.dims(), want.dims(), "shape");
    let (g, w) = (setup::host_f32(got), setup::host_f32(want));
    let scale = w.iter().fold(1e-12f32, |m, v| m.max(v.abs()));
    g.iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0f32, f32::max)
        / scale
}

fn assert_close(what: &str, got: &Tensor, want: &Tensor, tol: f32) {
    let e = rel_err(got, want);
    eprintln!("{what}: relative error {e:.2e}");
    assert!(e <= tol, "{what}: relative error {e:e} > {tol:e}");
}

#[test]
fn unet_matches_diffusers_including_odd_sizes() {
    let f = Fixture::load();
    for dtype in setup::dtypes() {
        let p = pipeline_in(dtype);
        for case in ["unet1", "unet2"] {
            let t = f.json[format!("{case}.timestep")]
                .as_f64()
                .expect("timestep");
            let out = p
                .unet
                .forward(
                    &f.t_as(&format!("{case}.sample"), dtype),
                    t,
                    &f.t_as(&format!("{case}.encoder_hidden_states"), dtype),
                )
                .expect("forward");
            let what = format!("{case} {dtype:?}");
            assert_close(&what, &out, &f.t(&format!("{case}.out")), HALF.at(dtype));
        }
    }
}

#[test]
fn authors_checkpoint_loads_the_same_unet_and_vae() {
    let f = Fixture::load();
    let cfg_dir = dir().join("tiny-ip2p");
    let unet_cfg = weights::read_config(&cfg_dir.join("unet/config.json")).expect("unet cfg");
    let vae_cfg = weights::read_config(&cfg_dir.join("vae/config.json")).expect("vae cfg");
    for dtype in setup::dtypes() {
        let folder = pipeline_in(dtype);
        let (authors, files) = weights::load_authors_pipeline(
            &dir().join("model_ip2p.pt"),
            &unet_cfg,
            &vae_cfg,
            &opts_in(dtype),
        )
        .expect("model_ip2p.pt");
        assert_eq!(files.len(), 1);
        assert_eq!(files[0].sha256.len(), 64);
        let x = f.t_as("unet1.sample", dtype);
        let ctx = f.t_as("unet1.encoder_hidden_states", dtype);
        let a = authors.unet.forward(&x, 777.0, &ctx).expect("authors");
        let b = folder.unet.forward(&x, 777.0, &ctx).expect("folder");
        assert_eq!(rel_err(&a, &b), 0.0, "same weights, same arithmetic");
        let (ma, _) = authors
            .encode(&f.t("vae2.image").affine(0.5, 0.5).unwrap())
            .expect("enc");
        let what = format!("authors vae {dtype:?}");
        assert_close(&what, &ma, &f.t("vae2.mean"), HALF.at(dtype));
    }
}

#[test]
fn fp16_variant_loads_and_stays_close() {
    let f = Fixture::load();
    let mut o = opts();
    o.variant = Some("fp16".into());
    let (p, files) = weights::load_pipeline(&dir().join("tiny-ip2p"), &o).expect("fp16 variant");
    assert!(files[0]
        .path
        .ends_with("diffusion_pytorch_model.fp16.safetensors"));
    let out = p
        .unet
        .forward(
            &f.t("unet1.sample"),
            777.0,
            &f.t("unet1.encoder_hidden_states"),
        )
        .expect("forward");
    // Half-precision weights computed in f32: about 1e-3 relative.
    assert_close("fp16 weights", &out, &f.t("unet1.out"), 2e-2);
}

#[test]
fn vae_posterior_and_decoder_match_diffusers() {
    let f = Fixture::load();
    for dtype in setup::dtypes() {
        let p = pipeline_in(dtype);
        let tol = HALF.at(dtype);
        let check = |what: &str, got: &Tensor, want: &str| {
            assert_close(&format!("{what} {dtype:?}"), got, &f.t(want), tol);
        };
        // The pipeline takes images in [0, 1]; the fixture stores the VAE's [-1, 1] input.
        let img01 = f.t("vae.image").affine(0.5, 0.5).unwrap();
        let (mean, std) = p.encode(&img01).expect("encode");
        check("mean", &mean, "vae.mean");
        check("mode", &mean, "vae.mode");
        check("std", &std, "vae.std");
        let post = models::vae::Posterior { mean, std };
        let sample = post
            .sample_with(&f.t_as("vae.noise", dtype))
            .expect("sample");
        check("sample", &sample, "vae.sample");
        let decoded = p.vae.decode(&f.t_as("vae.z", dtype)).expect("decode");
        check("decode", &decoded, "vae.decoded");

        let img2 = f.t("vae2.image").affine(0.5, 0.5).unwrap();
        let (mean2, _) = p.encode(&img2).expect("encode non-square");
        check("non-square mean", &mean2, "vae2.mean");
        let dec2 = p
            .vae
            .decode(&f.t_as("vae2.mean", dtype))
            .expect("decode non-square");
        check("non-square decode", &dec2, "vae2.decoded");
    }
}

#[test]
fn clip_text_encoder_matches_transformers() {
    let f = Fixture::load();
    let prompts = f.json["clip.prompts"].as_array().expect("prompts");
    let ids = f.json["clip.ids"].as_array().expect("ids");
    for dtype in setup::dtypes() {
        let (enc, tok, files) =
            weights::load_text_encoder(&dir().join("tiny-ip2p"), &opts_in(dtype))
                .expect("text encoder");
        assert_eq!(files.len(), 3);
        for (i, (prompt, want_ids)) in prompts.iter().zip(ids).enumerate() {
            let prompt = prompt.as_str().expect("str");
            let got = tok.encode_padded(prompt);
            let want: Vec<u32> = serde_json::from_value(want_ids.clone()).expect("ids");
            assert_eq!(got, want, "token ids of {prompt:?}");
            let x = Tensor::from_vec(got, (1, 77), &setup::device()).unwrap();
            let hidden = enc.forward(&x).expect("forward");
            let what = format!("{prompt} {dtype:?}");
            let want = f.t(&format!("clip.hidden.{i}"));
            assert_close(&what, &hidden, &want, HALF.at(dtype));
        }
    }
    let (_, tok, _) =
        weights::load_text_encoder(&dir().join("tiny-ip2p"), &opts()).expect("text encoder");
    for case in f.json["tokenizer_cases"].as_array().expect("cases") {
        let text = case["text"].as_str().expect("text");
        let want: Vec<u32> = serde_json::from_value(case["ids"].clone()).expect("ids");
        assert_eq!(tok.encode(text), want, "{text:?}");
    }
}

fn ip2p_scheduler_config() -> EulerAncestralConfig {
    weights::read_config(&dir().join("tiny-ip2p/scheduler/scheduler_config.json"))
        .expect("scheduler")
}

fn ip2p_method_batched(batch: usize) -> InstructPix2Pix {
    ip2p_method_in(batch, DType::F32)
}

fn ip2p_method_in(batch: usize, dtype: DType) -> InstructPix2Pix {
    let d = dir().join("tiny-ip2p");
    let (text, tokenizer, _) = weights::load_text_encoder(&d, &opts_in(dtype)).expect("text");
    // diffusers 0.42 snaps to multiples of 8 (the VAE factor); the original pipeline used 64.
    let options = Ip2pOptions {
        steps: 3,
        multiple: 8,
        batch,
        ..Ip2pOptions::default()
    };
    InstructPix2Pix::from_parts(
        options,
        pipeline_in(dtype),
        text,
        tokenizer,
        ip2p_scheduler_config(),
    )
    .expect("ip2p")
}

fn ip2p_method() -> InstructPix2Pix {
    ip2p_method_batched(1)
}

/// The reference edit's injected noise: initial latents, then one draw per step.
fn ip2p_replay_noise(f: &Fixture) -> ReplayNoise {
    ReplayNoise::new(
        vec![
            f.flat("ip2p.init_noise"),
            f.flat("ip2p.step_noise.0"),
            f.flat("ip2p.step_noise.1"),
            f.flat("ip2p.step_noise.2"),
        ],
        vec![],
    )
}

/// diffusers' edited image (h, w, 3) as a (1, 3, h, w) tensor.
fn ip2p_reference_image(f: &Fixture) -> Tensor {
    f.t("ip2p.image")
        .permute((2, 0, 1))
        .unwrap()
        .unsqueeze(0)
        .unwrap()
}

#[test]
fn instruct_pix2pix_pass_matches_the_diffusers_pipeline() {
    let f = Fixture::load();
    let source = image::open(dir().join("ip2p_source.png"))
        .expect("png")
        .to_rgb8();
    for dtype in setup::dtypes() {
        let tol = HALF.at(dtype);
        let m = ip2p_method_in(1, dtype);
        let embeds = m.prompt_embeds("amusement").expect("embeds");
        let what = format!("prompt embeds {dtype:?}");
        assert_close(&what, &embeds, &f.t("ip2p.prompt_embeds"), tol);
        let pre = m.preprocess(&source).expect("preprocess");
        assert_eq!(
            pre.dimensions(),
            (96, 64),
            "96x64 is already a multiple of 8"
        );
        let x = image_to_unit_tensor(&pre, &Device::Cpu).unwrap();
        let (mode, _) = pipeline_in(dtype).encode(&x).expect("mode");
        let what = format!("image latents {dtype:?}");
        assert_close(&what, &mode, &f.t("ip2p.image_latents"), tol);
        let mut noise = ip2p_replay_noise(&f);
        let out = m.edit_unit(&source, "amusement", &mut noise).expect("edit");
        assert!(!noise.exhausted, "draws in the reference's order and sizes");
        let what = format!("ip2p image {dtype:?}");
        assert_close(&what, &out, &ip2p_reference_image(&f), tol);
    }
}

fn emoeditor_pass(f: &Fixture, p: &EditPipeline, prefix: &str, image: &Tensor) -> Tensor {
    let cond_img = f.t("emo.image");
    let (cond, _) = p.encode(&cond_img).expect("cond");
    let what = format!("cond latents {:?}", p.dtype);
    assert_close(&what, &cond, &f.t("emo.cond_latents"), HALF.at(p.dtype));
    let t = f.json[format!("{prefix}.T")].as_u64().expect("T") as usize;
    let mut sched = Ddim::new(DdimConfig::stable_diffusion_v1_4()).expect("ddim");
    let mut noise = ReplayNoise::new(
        vec![
            f.flat(&format!("{prefix}.posterior_noise")),
            f.flat(&format!("{prefix}.add_noise")),
        ],
        vec![],
    );
    let out = p
        .emoeditor_pass(
            &f.t("enc.out"),
            image,
            &cond,
            &mut sched,
            3,
            t,
            &mut noise,
            None,
        )
        .expect("pass");
    assert!(!noise.exhausted);
    let want_ts: Vec<i64> =
        serde_json::from_value(f.json[format!("{prefix}.timesteps")].clone()).expect("ts");
    assert_eq!(sched.timesteps(), want_ts.as_slice());
    out
}

#[test]
fn emoeditor_passes_match_the_authors_forward() {
    let f = Fixture::load();
    for dtype in setup::dtypes() {
        let p = pipeline_in(dtype);
        let tol = HALF.at(dtype);
        let a = emoeditor_pass(&f, &p, "emo", &f.t("emo.image"));
        assert_close(&format!("pass A {dtype:?}"), &a, &f.t("emo.out"), tol);
        // Pass B edits pass A's REFERENCE output, so the comparison isolates this pass.
        let b = emoeditor_pass(&f, &p, "emoB", &f.t("emo.out"));
        assert_close(&format!("pass B {dtype:?}"), &b, &f.t("emoB.out"), tol);
    }
}

#[test]
fn missing_tensor_is_named_with_its_file() {
    let tmp = std::env::temp_dir().join(format!("emobench-missing-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let src = dir().join("tiny-ip2p");
    for sub in ["unet", "vae"] {
        std::fs::create_dir_all(tmp.join(sub)).unwrap();
        std::fs::copy(
            src.join(sub).join("config.json"),
            tmp.join(sub).join("config.json"),
        )
        .unwrap();
    }
    std::fs::copy(
        src.join("vae/diffusion_pytorch_model.safetensors"),
        tmp.join("vae/diffusion_pytorch_model.safetensors"),
    )
    .unwrap();
    // A UNet file without conv_in.weight.
    let mut tensors = candle_core::safetensors::load(
        src.join("unet/diffusion_pytorch_model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    tensors.remove("conv_in.weight");
    let bad = tmp.join("unet/diffusion_pytorch_model.safetensors");
    candle_core::safetensors::save(&tensors, &bad).unwrap();
    let err = weights::load_pipeline(&tmp, &opts()).expect_err("missing tensor");
    let msg = chain(&err);
    assert!(msg.contains("conv_in.weight"), "{msg}");
    assert!(msg.contains("diffusion_pytorch_model.safetensors"), "{msg}");
    assert!(!msg.contains('\n'), "one line: {msg}");
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A repo id resolves offline from the standard Hugging Face cache layout
/// (`models--owner--name/refs/main` -> `snapshots/<commit>/...`), and a missing one says how to
/// get it without touching the network.
#[test]
fn repo_ids_resolve_from_the_hugging_face_cache() {
    let tmp = std::env::temp_dir().join(format!("emobench-hf-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    let repo = tmp.join("models--someone--tiny-ip2p");
    let commit = "0123456789abcdef0123456789abcdef01234567";
    let snap = repo.join("snapshots").join(commit);
    let files = weights::pipeline_files(None);
    let src = dir().join("tiny-ip2p");
    for f in &files {
        let to = snap.join(f);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        let from = src.join(f);
        if from.exists() {
            std::fs::copy(&from, &to).unwrap();
        } else {
            // special_tokens_map.json is optional for the tokenizer: an empty object will do.
            std::fs::write(&to, "{}").unwrap();
        }
    }
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs/main"), commit).unwrap();
    let cache = hf_hub::Cache::new(tmp.clone());
    let got = weights::resolve_model_dir_in(&cache, "someone/tiny-ip2p", &files, false)
        .expect("resolves from the cache");
    assert_eq!(got, snap);
    let (p, _) = weights::load_pipeline(&got, &opts()).expect("loads from the cache");
    assert_eq!(p.unet.config().in_channels, 8);

    let err = weights::resolve_model_dir_in(&cache, "someone/not-cached", &files, false)
        .expect_err("not cached");
    let msg = err.to_string();
    assert!(
        msg.contains("someone/not-cached") && msg.contains("\"download\": true"),
        "{msg}"
    );
    let _ = std::fs::remove_dir_all(&tmp);
}

/// A batched call keeps its images apart: the reference image, edited next to another prompt
/// and noise, still matches diffusers, and the companion matches its own single call.
#[test]
fn batched_conditions_match_single_edits() {
    let f = Fixture::load();
    let m = ip2p_method();
    let p = pipeline();
    let source = image::open(dir().join("ip2p_source.png"))
        .expect("png")
        .to_rgb8();
    let x = image_to_unit_tensor(&m.preprocess(&source).expect("pre"), &Device::Cpu).unwrap();
    let (amusement, fear) = (
        m.prompt_embeds("amusement").unwrap(),
        m.prompt_embeds("fear").unwrap(),
    );
    let mut sched = models::schedulers::EulerAncestral::new(ip2p_scheduler_config()).unwrap();
    sched.set_timesteps(3).unwrap();
    let guidance = Guidance {
        text: 7.5,
        image: 1.5,
    };
    let (mut n1, mut n2) = (ip2p_replay_noise(&f), SeededNoise::new(9));
    let mut items = [
        Ip2pItem {
            prompt_embeds: &fear,
            image01: &x,
            noise: &mut n2,
        },
        Ip2pItem {
            prompt_embeds: &amusement,
            image01: &x,
            noise: &mut n1,
        },
    ];
    let outs = p
        .instruct_pix2pix_batch(&mut items, &sched, guidance, None)
        .expect("batch");
    assert_close(
        "batched ip2p image",
        &outs[1],
        &ip2p_reference_image(&f),
        TOL,
    );
    let single = p
        .instruct_pix2pix(&fear, &x, &sched, guidance, &mut SeededNoise::new(9), None)
        .expect("single");
    assert_close("batch companion", &outs[0], &single, 1e-5);

    // Images of another size cannot share the batch.
    let small = x.narrow(3, 0, 64).unwrap();
    let mut a = SeededNoise::new(1);
    let mut b = SeededNoise::new(2);
    let mut mixed = [
        Ip2pItem {
            prompt_embeds: &fear,
            image01: &x,
            noise: &mut a,
        },
        Ip2pItem {
            prompt_embeds: &fear,
            image01: &small,
            noise: &mut b,
        },
    ];
    let err = p
        .instruct_pix2pix_batch(&mut mixed, &sched, guidance, None)
        .expect_err("mixed sizes");
    assert!(err.to_string().contains("mixes latent sizes"), "{err}");
}

/// The method's `batch` option groups requests by size and returns them in request order, each
/// the same 8-bit image as alone (one level of rounding allowed).
#[test]
fn ip2p_batch_option_keeps_request_order() {
    let single = ip2p_method();
    let batched = ip2p_method_batched(2);
    assert_eq!(batched.batch_size(), 2);
    let big = image::open(dir().join("ip2p_source.png"))
        .expect("png")
        .to_rgb8();
    let small = image::imageops::crop_imm(&big, 0, 0, 64, 64).to_image();
    let reqs = [
        EditRequest::new(&big, "awe", 1),
        EditRequest::new(&small, "fear", 2),
        EditRequest::new(&big, "sadness", 3),
        EditRequest::new(&big, "anger", 4),
    ];
    let outs = batched.edit_batch(&reqs).expect("batch");
    assert_eq!(outs.len(), reqs.len());
    for (req, (img, _)) in reqs.iter().zip(&outs) {
        let alone = single.edit(req).expect("single");
        assert_eq!(img.dimensions(), alone.dimensions(), "{}", req.target);
        let worst = img
            .as_raw()
            .iter()
            .zip(alone.as_raw())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap_or(0);
        assert!(worst <= 1, "{}: differs by {worst} levels", req.target);
    }
    let bad = Ip2pOptions::from_json(&serde_json::json!({"batch": 0})).expect_err("batch 0");
    assert!(bad.to_string().contains("'batch'"), "{bad}");
}

/// Passes A (T = 777) and B (T = 980) in ONE batched call, each at its own timesteps, still
/// match the authors' forward.
#[test]
fn batched_emoeditor_passes_keep_their_own_timesteps() {
    let f = Fixture::load();
    let p = pipeline();
    let (cond, _) = p.encode(&f.t("emo.image")).expect("cond");
    let t = |prefix: &str| f.json[format!("{prefix}.T")].as_u64().expect("T") as usize;
    let replay = |prefix: &str| {
        ReplayNoise::new(
            vec![
                f.flat(&format!("{prefix}.posterior_noise")),
                f.flat(&format!("{prefix}.add_noise")),
            ],
            vec![],
        )
    };
    let (mut na, mut nb) = (replay("emo"), replay("emoB"));
    let mut sa = Ddim::new(DdimConfig::stable_diffusion_v1_4()).expect("ddim");
    let mut sb = Ddim::new(DdimConfig::stable_diffusion_v1_4()).expect("ddim");
    let (context, image_a, image_b) = (f.t("enc.out"), f.t("emo.image"), f.t("emo.out"));
    let mut items = [
        EmoPassItem {
            context: &context,
            image01: &image_a,
            cond_latents: &cond,
            scheduler: &mut sa,
            train_steps: t("emo"),
            noise: &mut na,
        },
        EmoPassItem {
            context: &context,
            image01: &image_b,
            cond_latents: &cond,
            scheduler: &mut sb,
            train_steps: t("emoB"),
            noise: &mut nb,
        },
    ];
    let outs = p.emoeditor_pass_batch(&mut items, 3, None).expect("batch");
    assert_close("batched pass A", &outs[0], &f.t("emo.out"), TOL);
    assert_close("batched pass B", &outs[1], &f.t("emoB.out"), TOL);
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
