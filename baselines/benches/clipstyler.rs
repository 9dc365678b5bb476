//! One CLIPstyler iteration at 512x512 (64 crops through CLIP ViT-B/32, VGG19 content loss,
//! StyleNet backward, Adam step) with random weights: compare with
//! `bench/python/clipstyler_bench.py`. `ITERS` (default 2) iterations are timed one by one.
//! `STAGES=1` instead times the stages of one iteration separately (StyleNet forward, VGG
//! content loss forward + backward, total variation, global CLIP loss, each chunk of crops
//! split into augmentation, CLIP forward and backward, StyleNet backward) to show where the
//! time goes.

use std::time::Instant;

use baselines::clipstyler::{LossConfig, Styler};
use candle_core::{DType, Device, Result, Shape, Tensor};
use candle_nn::var_builder::SimpleBackend;
use candle_nn::VarBuilder;
use models::augment::PatchParams;
use models::clip_vision::{ClipVision, Config};
use models::optim::adam::StepLr;
use models::stylenet::{self, StyleNet};
use models::vgg19::{feature_tensor_shapes, Vgg19Config, Vgg19Features, CLIPSTYLER_CONTENT_TAPS};
use rand::SeedableRng;

/// Hands out small random tensors (plain tensors, not variables) for any name.
struct Random;

impl SimpleBackend for Random {
    fn get(
        &self,
        s: Shape,
        _: &str,
        _: candle_nn::Init,
        dtype: DType,
        dev: &Device,
    ) -> Result<Tensor> {
        (Tensor::randn(0f32, 0.02, s, dev)?).to_dtype(dtype)
    }
    fn get_unchecked(&self, name: &str, _: DType, _: &Device) -> Result<Tensor> {
        candle_core::bail!("{name}: shape unknown")
    }
    fn contains_tensor(&self, _: &str) -> bool {
        true
    }
}

/// User + system CPU seconds of this process (Linux `/proc/self/stat`, 100 ticks a second).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or_default();
    let f: Vec<f64> = after
        .split_whitespace()
        .filter_map(|x| x.parse().ok())
        .collect();
    // Fields 14 and 15 (utime, stime); the state letter (field 3) does not parse.
    if f.len() > 11 {
        (f[10] + f[11]) / 100.0
    } else {
        f64::NAN
    }
}

fn main() -> Result<()> {
    // DEVICE=cuda:0 on a GPU (bench/gpu/run.sh); timings wait for the device's queue.
    let dev =
        models::device::parse_device(&std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into()))
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let vb = VarBuilder::from_backend(Box::new(Random), DType::F32, dev.clone());
    let vision = ClipVision::new(vb, &Config::vit_base_patch32())?;
    let vgg_config = Vgg19Config::torchvision();
    let mut tensors = std::collections::HashMap::new();
    for (name, shape) in feature_tensor_shapes(&vgg_config) {
        tensors.insert(name, Tensor::randn(0f32, 0.02, shape, &dev)?);
    }
    let vgg_vb = VarBuilder::from_tensors(tensors, DType::F32, &dev);
    let vgg = Vgg19Features::new(vgg_vb, &vgg_config, &CLIPSTYLER_CONTENT_TAPS)
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
    let content = Tensor::rand(0f32, 1.0, (1, 3, 512, 512), &dev)?;
    let t = Tensor::randn(0f32, 1.0, (1, 512), &dev)?;
    let s = Tensor::randn(0f32, 1.0, (1, 512), &dev)?;
    let batch = std::env::var("BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(8);
    let config = LossConfig {
        batch,
        ..LossConfig::default()
    };
    let styler = Styler::new(&vision, &vgg, content, &t, &s, config)?;
    let map = stylenet::init_var_map(16, 0, &dev)?;
    let net = StyleNet::from_var_map(&map, 16, &dev)?;
    let vars = stylenet::ordered_vars(&map, 16)?;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let iters: usize = std::env::var("ITERS")
        .ok()
        .and_then(|b| b.parse().ok())
        .unwrap_or(2);
    let sched = StepLr {
        base_lr: 5e-4,
        step_size: 100,
        gamma: 0.5,
    };
    if std::env::var("STAGES").is_ok_and(|v| v == "1") {
        let params: Vec<PatchParams> = (0..64)
            .map(|_| PatchParams::draw(&mut rng, 512, 512, 128, 0.5))
            .collect();
        for _ in 0..iters {
            stages(&styler, &net, &params)?;
        }
        return Ok(());
    }
    let mut last = Instant::now();
    let mut cpu = cpu_seconds();
    styler.run(&net, vars, iters, sched, |e| {
        if e > 0 {
            println!(
                "iteration {}: wall {:.2} s, cpu {:.2} s (batch {batch})",
                e - 1,
                since(last, &dev).unwrap_or(f64::NAN),
                cpu_seconds() - cpu
            );
        }
        last = Instant::now();
        cpu = cpu_seconds();
        (0..64)
            .map(|_| PatchParams::draw(&mut rng, 512, 512, 128, 0.5))
            .collect()
    })?;
    println!(
        "iteration {}: wall {:.2} s, cpu {:.2} s (batch {batch}, incl. the final forward)",
        iters - 1,
        since(last, &dev)?,
        cpu_seconds() - cpu
    );
    Ok(())
}

/// Wall and CPU seconds of `f`, printed under `what`.
fn timed<R>(dev: &Device, what: &str, f: impl FnOnce() -> Result<R>) -> Result<R> {
    let (t, c) = (Instant::now(), cpu_seconds());
    let r = f()?;
    println!(
        "  {what:<28} wall {:7.3} s  cpu {:7.3} s",
        since(t, dev)?,
        cpu_seconds() - c
    );
    Ok(r)
}

/// One iteration's work, stage by stage, as `Styler::loss_and_grad` and `Styler::run` do it.
fn stages(styler: &Styler, net: &StyleNet, params: &[PatchParams]) -> Result<()> {
    let dev = styler.content.device().clone();
    use baselines::clipstyler::{directional_loss, total_variation};
    use models::clip_vision::clip_normalize;
    let (t0, c0) = (Instant::now(), cpu_seconds());
    let c = &styler.config;
    let size = styler.vision.config().image_size;
    let target = timed(&dev, "stylenet forward", || {
        net.forward(&styler.content, true)
    })?;
    let x = candle_core::Var::from_tensor(&target.detach())?;
    let feats = timed(&dev, "vgg forward", || styler.vgg.forward(x.as_tensor()))?;
    let mut content = Tensor::zeros((), DType::F32, x.device())?;
    for (f, cf) in feats.iter().zip(&styler.content_features) {
        content = (content + (f - cf)?.sqr()?.mean_all()?)?;
    }
    timed(&dev, "vgg backward", || (content * c.lambda_c)?.backward())?;
    timed(&dev, "tv forward + backward", || {
        (total_variation(x.as_tensor())? * c.lambda_tv)?.backward()
    })?;
    let glob = timed(&dev, "global clip forward", || {
        let f = styler
            .vision
            .forward(&clip_normalize(x.as_tensor(), size)?)?;
        directional_loss(&f, &styler.source_feature, &styler.text_direction, None)?.mean_all()
    })?;
    timed(&dev, "global clip backward", || {
        (glob * c.lambda_dir)?.backward()
    })?;
    let (mut aug, mut fwd, mut bwd) = ((0.0, 0.0), (0.0, 0.0), (0.0, 0.0));
    let add = |acc: &mut (f64, f64), t: Instant, cpu: f64| {
        acc.0 += since(t, &dev).unwrap_or(f64::NAN);
        acc.1 += cpu_seconds() - cpu;
    };
    for chunk in params.chunks(c.batch.max(1)) {
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let patches = clip_normalize(
            &models::augment::augment_patches(x.as_tensor(), chunk, c.crop_size, size)?,
            size,
        )?;
        add(&mut aug, t, cpu);
        let (t, cpu) = (Instant::now(), cpu_seconds());
        let feat = styler.vision.forward(&patches)?;
        let l = directional_loss(
            &feat,
            &styler.source_feature,
            &styler.text_direction,
            Some(c.thresh),
        )?
        .sum_all()?;
        add(&mut fwd, t, cpu);
        let (t, cpu) = (Instant::now(), cpu_seconds());
        ((l / params.len() as f64)? * c.lambda_patch)?.backward()?;
        add(&mut bwd, t, cpu);
    }
    for (what, (w, cpu)) in [
        ("patches: augment + resize", aug),
        ("patches: clip forward", fwd),
        ("patches: clip+augment bwd", bwd),
    ] {
        println!("  {what:<28} wall {w:7.3} s  cpu {cpu:7.3} s");
    }
    let g = target.zeros_like()?;
    timed(&dev, "stylenet backward", || {
        (&target * g)?.sum_all()?.backward()
    })?;
    println!(
        "iteration (stages): wall {:.2} s, cpu {:.2} s",
        since(t0, &dev)?,
        cpu_seconds() - c0
    );
    Ok(())
}

/// Seconds since `t` once the device's queued work has finished (the CPU has none).
fn since(t: Instant, dev: &Device) -> candle_core::Result<f64> {
    dev.synchronize()?;
    Ok(t.elapsed().as_secs_f64())
}
