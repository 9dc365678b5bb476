//! Timing of the InstructPix2Pix UNet, a whole InstructPix2Pix edit and a whole EmoEditor pass
//! (`--batch` images at once) at the real Stable Diffusion 1.5 shapes, with random weights (no
//! download), on the CPU; the diffusers side is `bench/python/diffusion_bench.py`, run on the
//! same machine.
//!
//! `cargo bench -p emobench-models --bench unet -- [--size 256] [--steps 3] [--repeats 3]
//! [--batch 1] [--device cpu|cuda:N] [--dtype f32|f16|bf16] [--edit-only] [--json out.json]`.
//! `--batch N` edits N images at once (3 N UNet rows). `--edit-only` runs the whole edit alone
//! (no separate UNet and VAE timings), for peak-memory runs under `/usr/bin/time -v`; the resident
//! set is printed after each stage either way. Threads: rayon's default (RAYON_NUM_THREADS). GPU runs
//! need `--features cuda` (see `bench/gpu/run.sh`).

use std::time::Instant;

use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use models::noise::SeededNoise;
use models::pipeline::{EditPipeline, EmoPassItem, Guidance};
use models::schedulers::{Ddim, DdimConfig, EulerAncestral, EulerAncestralConfig};
use models::unet::{UNet, UNetConfig};
use models::vae::{AutoencoderKl, VaeConfig};

/// Uniform random weights small enough to keep activations finite.
struct RandomWeights;

impl SimpleBackend for RandomWeights {
    fn get(
        &self,
        s: Shape,
        name: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        let fan_in: usize = s.dims().iter().skip(1).product::<usize>().max(1);
        let bound = 1.0 / (fan_in as f64).sqrt();
        if name.ends_with("norm.weight") || name.contains("norm") && name.ends_with("weight") {
            return Tensor::ones(s, dtype, dev);
        }
        Tensor::rand(-bound, bound, s, dev)?.to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("no shape for {name}")
    }
    fn contains_tensor(&self, name: &str) -> bool {
        !name.contains("query") && !name.starts_with("embeddings")
    }
}

/// This process's resident set and its high-water mark so far, in GB (`/proc/self/status`;
/// zeros where there is none).
fn rss_gb() -> (f64, f64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> f64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
            .map_or(0.0, |kb| kb * 1024.0 / 1e9)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Prints the resident set after `stage`.
fn stage(stage: &str) {
    let (now, peak) = rss_gb();
    eprintln!("[rss] {stage}: {now:.2} GB now, {peak:.2} GB peak");
}

/// `--convs`: one 3x3 convolution per UNet level at `size` (batch 3), by im2col and by Winograd
/// with weights transformed at load (`stored`) or during the call (`from`), seconds per call.
fn conv_shapes(size: usize) {
    use models::kernels::{self, ConvInit, ConvShape, WinogradTile, WinogradWeights};
    let lat = size / 8;
    for (cin, cout, hw) in [
        (320, 320, lat),
        (1280, 640, lat / 2),
        (640, 640, lat / 2),
        (2560, 1280, lat / 4),
        (1280, 1280, lat / 4),
        (2560, 1280, lat / 8),
        (1280, 1280, lat / 8),
    ] {
        let n = 3;
        let x: Vec<f32> = (0..n * cin * hw * hw)
            .map(|i| (i % 7) as f32 * 0.1)
            .collect();
        let w: Vec<f32> = (0..cout * cin * 9).map(|i| (i % 5) as f32 * 0.01).collect();
        let shape = ConvShape {
            cin,
            cout,
            k: 3,
            stride: 1,
            pad: 1,
        };
        let time = |f: &dyn Fn() -> Vec<f32>| {
            let _ = f();
            let t = Instant::now();
            for _ in 0..3 {
                let _ = f();
            }
            t.elapsed().as_secs_f64() / 3.0
        };
        let im2col = time(&|| kernels::conv2d_nchw(&x, (n, hw, hw), shape, &w, None));
        let mut line = format!("{cin}->{cout} at {hw}x{hw}: im2col {im2col:.4}");
        for tile in [WinogradTile::F2, WinogradTile::F4] {
            let wt = WinogradWeights::new(&w, cout, cin, tile);
            let stored =
                time(&|| kernels::conv3x3_winograd(&x, (n, hw, hw), &wt, ConvInit::default()));
            let from = time(&|| {
                kernels::conv3x3_winograd_from(
                    &x,
                    (n, hw, hw),
                    &w,
                    (cout, cin),
                    tile,
                    ConvInit::default(),
                )
            });
            line += &format!(", {tile:?} stored {stored:.4} from {from:.4}");
        }
        eprintln!("{line}");
    }
}

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<()> {
    models::kernels::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let size = arg(&args, "--size", 256);
    let steps = arg(&args, "--steps", 3);
    let repeats = arg(&args, "--repeats", 3);
    let batch = arg(&args, "--batch", 1);
    let text = |name: &str, default: &str| -> String {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
            .unwrap_or_else(|| default.to_string())
    };
    let dev = models::device::parse_device(&text("--device", "cpu"))
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let dtype = models::device::parse_dtype(&text("--dtype", "f32"))
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    if args.iter().any(|a| a == "--convs") {
        conv_shapes(size);
        return Ok(());
    }
    let vb = VarBuilder::from_backend(Box::new(RandomWeights), dtype, dev.clone());
    let t0 = Instant::now();
    let unet = UNet::new(vb.pp("unet"), &UNetConfig::instruct_pix2pix())?;
    let vae = AutoencoderKl::new(vb.pp("vae"), &VaeConfig::stable_diffusion_v1())?;
    eprintln!("random weights: {:.1} s", t0.elapsed().as_secs_f64());
    stage("weights");
    let edit_only = args.iter().any(|a| a == "--edit-only");
    let lat = size / 8;
    let sync = || dev.synchronize();
    let mut unet_s = Vec::new();
    if !edit_only {
        let x = Tensor::rand(-1f32, 1f32, (3 * batch, 8, lat, lat), &dev)?.to_dtype(dtype)?;
        let ctx = Tensor::rand(-1f32, 1f32, (3 * batch, 77, 768), &dev)?.to_dtype(dtype)?;
        let _ = unet.forward(&x, 999.0, &ctx)?; // warm-up
        sync()?;
        stage("UNet warm-up");
        let _ = models::kernels::timing::take();
        for _ in 0..repeats {
            let t = Instant::now();
            let _ = unet.forward(&x, 500.0, &ctx)?;
            sync()?;
            unet_s.push(t.elapsed().as_secs_f64());
        }
        eprintln!("UNet batch {} at {size}x{size}: {unet_s:?} s", 3 * batch);
        let kernels: Vec<(&str, f64)> = models::kernels::timing::take()
            .into_iter()
            .map(|(n, t)| (n, t / repeats.max(1) as f64))
            .collect();
        eprintln!("  per step, by CPU kernel family: {kernels:.3?}");
    }

    let pipeline = EditPipeline {
        unet,
        vae,
        device: dev.clone(),
        dtype,
    };
    let mut sched = EulerAncestral::new(EulerAncestralConfig::instruct_pix2pix())
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    sched
        .set_timesteps(steps)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let image = Tensor::rand(0f32, 1f32, (1, 3, size, size), &dev)?;
    let err = |e: models::pipeline::PipelineError| candle_core::Error::Msg(e.to_string());
    let (mut encode_s, mut decode_s) = (f64::NAN, f64::NAN);
    if !edit_only {
        // Warm-up: first touches of the activation buffers.
        let (mean, _) = pipeline.encode(&image).map_err(err)?;
        let _ = pipeline.decode_unit(&mean).map_err(err)?;
        stage("VAE warm-up");
        let t = Instant::now();
        let (mean, _) = pipeline.encode(&image).map_err(err)?;
        encode_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = pipeline.decode_unit(&mean).map_err(err)?;
        decode_s = t.elapsed().as_secs_f64();
        eprintln!("VAE encode {encode_s:.2} s, decode {decode_s:.2} s");
    }
    let embeds = Tensor::rand(-1f32, 1f32, (3, 77, 768), &dev)?;
    let t = Instant::now();
    let mut last = Instant::now();
    let mut per_step = Vec::new();
    let mut on_step = |i: usize, _: usize| {
        stage(&format!("edit step {i}"));
        per_step.push(last.elapsed().as_secs_f64());
        last = Instant::now();
    };
    let _ = pipeline
        .instruct_pix2pix(
            &embeds,
            &image,
            &sched,
            Guidance {
                text: 7.5,
                image: 1.5,
            },
            &mut SeededNoise::new(0),
            Some(&mut on_step),
        )
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let edit_s = t.elapsed().as_secs_f64();
    stage("edit");
    eprintln!(
        "whole Ip2p edit, {steps} steps (VAE encode + decode included): {edit_s:.2} s; \
         encode + step 1, then each step: {per_step:.2?} s"
    );
    // EmoEditor: one pass per image (VAE encode of the image, DDIM over `steps` of the authors'
    // T = 777 training steps, decode), `batch` images in one batched pass. Not in `--edit-only` runs:
    // their peak memory is the Ip2p edit's alone.
    let mut emoeditor_s = None;
    if !edit_only {
        let context = Tensor::rand(-1f32, 1f32, (1, 77, 768), &dev)?;
        let (cond, _) = pipeline.encode(&image).map_err(err)?;
        let sched_err =
            |e: models::schedulers::SchedulerError| candle_core::Error::Msg(e.to_string());
        let mut scheds = (0..batch)
            .map(|_| Ddim::new(DdimConfig::stable_diffusion_v1_4()).map_err(sched_err))
            .collect::<Result<Vec<_>>>()?;
        let mut noises: Vec<SeededNoise> = (0..batch).map(|i| SeededNoise::new(i as u64)).collect();
        let mut items: Vec<EmoPassItem<'_>> = scheds
            .iter_mut()
            .zip(noises.iter_mut())
            .map(|(scheduler, noise)| EmoPassItem {
                context: &context,
                image01: &image,
                cond_latents: &cond,
                scheduler,
                train_steps: 777,
                noise,
            })
            .collect();
        let t = Instant::now();
        let _ = pipeline
            .emoeditor_pass_batch(&mut items, steps, None)
            .map_err(err)?;
        sync()?;
        let secs = t.elapsed().as_secs_f64();
        eprintln!("EmoEditor pass, {batch} image(s), {steps} steps: {secs:.2} s");
        emoeditor_s = Some(secs);
    }
    let json = serde_json::json!({
        "implementation": "emobench (candle 0.11.1 + fused CPU kernels)",
        "device": text("--device", "cpu"),
        "dtype": text("--dtype", "f32"),
        "size": size,
        "unet_batch": 3 * batch,
        "threads": rayon::current_num_threads(),
        "unet_step_seconds": unet_s,
        "vae_encode_seconds": encode_s,
        "vae_decode_seconds": decode_s,
        "edit_steps": steps,
        "edit_seconds": edit_s,
        "edit_only": edit_only,
        "peak_rss_gb": rss_gb().1,
        "emoeditor_images": batch,
        "emoeditor_pass_seconds": emoeditor_s,
    });
    if let Some(i) = args.iter().position(|a| a == "--json") {
        if let Some(path) = args.get(i + 1) {
            std::fs::write(
                path,
                serde_json::to_string_pretty(&json).unwrap_or_default(),
            )
            .map_err(candle_core::Error::wrap)?;
        }
    }
    println!("{json}");
    Ok(())
}
