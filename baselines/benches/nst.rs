//! One closure evaluation of the style transfer (forward and backward through VGG19 up to
//! conv_5, the real channel counts, random weights) at 256x256 on the CPU; compare with
//! `bench_nst.py` (PyTorch, 2 threads).
//!
//! `cargo bench --bench nst` (release). Prints the median of 10 evaluations after one warm-up; `NST_CONV=im2col` measures the direct convolution instead of the default
//! Winograd.

use std::collections::HashMap;
use std::time::Instant;

use baselines::nst::{NstLayers, NstOptions, StyleTransfer};
use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use models::vgg19::{feature_tensor_shapes, Vgg19Config, Vgg19Features};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // As the emobench binary runs (src/main.rs).
    models::kernels::keep_freed_memory();
    // DEVICE=cuda:0 on a GPU (bench/gpu/run.sh); timings wait for the device's queue.
    let dev =
        models::device::parse_device(&std::env::var("DEVICE").unwrap_or_else(|_| "cpu".into()))?;
    let cfg = Vgg19Config::torchvision();
    let mut ts = HashMap::new();
    for (name, shape) in feature_tensor_shapes(&cfg) {
        let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
        let std = (2.0 / fan_in as f64).sqrt();
        ts.insert(
            name,
            Tensor::randn(0f32, std as f32, shape.as_slice(), &dev)?,
        );
    }
    let vb = VarBuilder::from_tensors(ts, DType::F32, &dev);
    let layers = NstLayers::default();
    // The convolutions as `emobench edit --method nst` runs them.
    let algo = match std::env::var("NST_CONV").as_deref() {
        Ok("im2col") => models::kernels::conv_op::ConvAlgo::Im2col,
        _ => NstOptions::default().conv,
    };
    let vgg = Vgg19Features::new(vb.clone(), &cfg, &StyleTransfer::taps(&layers))?;
    let trunks: Vec<(usize, Vgg19Features)> = [0usize, 2, 5, 7, 10]
        .iter()
        .map(|&k| {
            Ok((
                k,
                Vgg19Features::new(vb.clone(), &cfg, &[models::vgg19::Tap::before_relu(k)])?
                    .with_conv_algo(algo),
            ))
        })
        .collect::<Result<_, models::vgg19::Vgg19Error>>()?;
    let model = StyleTransfer::new(vgg, layers)?.with_conv_algo(algo);
    let size = 256;
    let content = Tensor::rand(0f32, 1f32, (1, 3, size, size), &dev)?;
    let style = Tensor::rand(0f32, 1f32, (1, 3, size, size), &dev)?;
    let targets = model.targets(&content, &style)?;
    let x = Tensor::rand(0f32, 1f32, (1, 3, size, size), &dev)?;

    model.evaluate(&x, &targets, 1e6, 1.0)?;
    // Each evaluation timed on its own; the median resists the bursts of a shared machine.
    let mut evals = Vec::new();
    for _ in 0..10 {
        let t0 = Instant::now();
        model.evaluate(&x, &targets, 1e6, 1.0)?;
        evals.push(since(t0, &dev)?);
    }
    evals.sort_by(f64::total_cmp);
    let median = (evals[4] + evals[5]) / 2.0;
    println!(
        "candle NST closure at {size}x{size}: forward+backward median {:.1} ms (10 evaluations, \
         {:.1}-{:.1}), {algo:?} convolutions ({} threads)",
        median * 1e3,
        evals[0] * 1e3,
        evals[9] * 1e3,
        candle_core::utils::get_num_threads()
    );
    // The trunk alone, cut after each style layer: forward + backward of the sum of its output.
    let mut line = String::from("trunk to conv k, forward+backward:");
    for (k, trunk) in &trunks {
        let v = candle_core::Var::from_tensor(&x)?;
        let t0 = Instant::now();
        trunk.forward(v.as_tensor())?[0].sum_all()?.backward()?;
        line += &format!(" {k}: {:.0} ms", since(t0, &dev)? * 1e3);
    }
    println!("{line}");
    // Where the backward goes: the three convolutions candle runs per 3x3 layer, for the
    // largest one (features.2: 64 -> 64 channels at full resolution).
    let a = Tensor::rand(0f32, 1f32, (1, 64, size, size), &dev)?;
    let k = Tensor::randn(0f32, 0.05, (64, 64, 3, 3), &dev)?;
    let time = |f: &dyn Fn() -> candle_core::Result<Tensor>| -> candle_core::Result<f64> {
        f()?;
        let t0 = Instant::now();
        for _ in 0..3 {
            f()?;
        }
        Ok(since(t0, &dev)? / 3.0 * 1e3)
    };
    let fwd = time(&|| a.conv2d(&k, 1, 1, 1, 1))?;
    let grad_in = time(&|| a.conv_transpose2d(&k, 1, 0, 1, 1))?;
    let grad_k = time(&|| {
        a.transpose(0, 1)?
            .conv2d(&a.transpose(0, 1)?, 1, 1, 1, 1)?
            .transpose(0, 1)
    })?;
    println!(
        "features.2 (64->64 at {size}x{size}): conv2d {fwd:.1} ms, conv_transpose2d (input \
         gradient) {grad_in:.1} ms, kernel gradient (computed by candle's backward although \
         the weights are constants) {grad_k:.1} ms"
    );
    // The other differentiable pieces at the same size, forward + backward.
    let fb = |f: &dyn Fn(&Tensor) -> candle_core::Result<Tensor>| -> candle_core::Result<f64> {
        let v = candle_core::Var::from_tensor(&a)?;
        let run = || -> candle_core::Result<()> {
            f(v.as_tensor())?.sum_all()?.backward()?;
            Ok(())
        };
        run()?;
        let t0 = Instant::now();
        for _ in 0..3 {
            run()?;
        }
        Ok(since(t0, &dev)? / 3.0 * 1e3)
    };
    let pool = fb(&|x| models::vgg19::max_pool2x2(x))?;
    let relu = fb(&|x| models::vgg19::relu_torch(x))?;
    let target = baselines::nst::gram_matrices(&a)?.affine(0.5, 0.0)?;
    let gram = fb(&|x| baselines::nst::mse_per_image(&baselines::nst::gram_matrices(x)?, &target))?;
    println!(
        "64 x {size}x{size}: max_pool2x2 forward+backward {pool:.1} ms, relu_torch forward+backward \
         {relu:.1} ms, Gram + MSE forward+backward {gram:.1} ms"
    );
    Ok(())
}

/// Seconds since `t` once the device's queued work has finished (the CPU has none).
fn since(t: Instant, dev: &Device) -> candle_core::Result<f64> {
    dev.synchronize()?;
    Ok(t.elapsed().as_secs_f64())
}
