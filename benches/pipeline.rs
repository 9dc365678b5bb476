//! Throughput of emobench's scoring pipeline, printed as a table and written as JSON, for side-by-side
//! comparison with `bench/python/reference_bench.py` (PyTorch + pytorch-grad-cam + OpenCV +
//! scikit-image) on the same machine. Run: `cargo bench --bench pipeline [-- --out FILE]`.

mod common;

use common::median_ms;
use std::path::{Path, PathBuf};
use std::time::Instant;

use candle_core::Device;
use emobench_core::imgproc::canny::{canny_gray, canny_rgb};
use emobench_core::imgproc::gray::rgb_to_gray_cv;
use emobench_core::imgproc::resize::ResizeFilter;
use emobench_core::imgproc::ssim::{ssim_gray, ssim_rgb, SsimOptions};
use emobench_core::predictor::Predictor;
use emobench_core::score::load_for_metrics;

fn main() -> anyhow::Result<()> {
    // As the binary does: without it, every activation buffer is a fresh mmap and page faults.
    models::kernels::keep_freed_memory();
    let args: Vec<String> = std::env::args().collect();
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench/out/rust.json"));
    let photos = Path::new(env!("CARGO_MANIFEST_DIR")).join("studies/demo/photos");
    let mut imgs = Vec::new();
    for e in std::fs::read_dir(&photos)? {
        imgs.push(load_for_metrics(&e?.path(), ResizeFilter::Bicubic)?);
    }
    imgs.sort_by_key(|i| i.as_raw().iter().map(|v| u64::from(*v)).sum::<u64>());
    let p = Predictor::stand_in(0, &Device::Cpu)?;
    let one = [&imgs[0]];
    let eight: Vec<_> = imgs.iter().take(8).collect();
    let b1 = median_ms(|| drop(p.predict(&one)), 10);
    let b8 = median_ms(|| drop(p.predict(&eight)), 5) / eight.len() as f64;
    let cam = median_ms(|| drop(p.predict_with_cam(&one)), 10);
    // The image the Python side uses (`astronaut.jpg`, PIL bicubic to 224): Canny's cost
    // depends on how many pixels pass the thresholds.
    let astronaut = load_for_metrics(&photos.join("astronaut.jpg"), ResizeFilter::Bicubic)?;
    // Inner loops of 20 calls so that one timer read does not weigh on a 0.1 ms call.
    let g_canny = rgb_to_gray_cv(&astronaut);
    let canny_ms = || {
        let rgb = median_ms(
            || (0..20).for_each(|_| drop(canny_rgb(&astronaut, 200.0, 500.0))),
            25,
        );
        let gray = median_ms(
            || (0..20).for_each(|_| drop(canny_gray(&g_canny, 200.0, 500.0))),
            25,
        );
        (rgb / 20.0, gray / 20.0)
    };
    // As a single call: RGB splits into two row stripes on two threads, gray at this size stays
    // on one (see `imgproc::canny`).
    let (canny, canny_gray_ms) = canny_ms();
    // On one thread, as each image is in `score` (which runs images in parallel): inside a
    // one-thread pool the stripes run one after the other.
    let one_thread = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let (canny_1t, canny_gray_1t) = one_thread.install(canny_ms);
    let s7 = median_ms(
        || drop(ssim_rgb(&imgs[0], &imgs[1], &SsimOptions::default())),
        20,
    );
    let (g0, g1) = (rgb_to_gray_cv(&imgs[0]), rgb_to_gray_cv(&imgs[1]));
    let o51 = SsimOptions {
        win_size: 51,
        ..SsimOptions::default()
    };
    let s51 = median_ms(|| drop(ssim_gray(&g0, &g1, &o51)), 20);

    // Whole `score`: 8 sources x 4 cross-valence targets, from files, into a report folder.
    let tmp = std::env::temp_dir().join(format!("emobench-bench-{}", std::process::id()));
    let runs = tmp.join("runs/shift");
    std::fs::create_dir_all(&runs)?;
    let mut csv = String::from("id,path,emotion\n");
    let emos = emobench_core::emotion::Emotion::ALL;
    for (i, img) in imgs.iter().enumerate() {
        let id = format!("s{i}");
        let src = tmp.join(format!("{id}.png"));
        img.save(&src)?;
        csv.push_str(&format!("{id},{id}.png,{}\n", emos[i % 8]));
        let e = emos[i % 8];
        let mut shifted = img.clone();
        for px in shifted.pixels_mut() {
            px.0[0] = px.0[0].saturating_add(20);
        }
        std::fs::create_dir_all(runs.join(&id))?;
        for t in e.cross_targets() {
            shifted.save(emobench_core::runs::output_path(&runs, &id, t))?;
        }
    }
    std::fs::write(tmp.join("sources.csv"), csv)?;
    let cfg = emobench_core::score::ScoreConfig {
        sources: tmp.join("sources.csv"),
        runs: tmp.join("runs"),
        methods: None,
        conditions: emobench_core::emotion::Conditions::Cross,
        resize: ResizeFilter::Bicubic,
        metrics: Default::default(),
        batch: 8,
    };
    let start = Instant::now();
    let (res, _) = emobench::commands::score_and_report(&cfg, &p, &tmp.join("report"))?;
    let secs = start.elapsed().as_secs_f64();
    let cps = res.rows.len() as f64 / secs;
    std::fs::remove_dir_all(&tmp).ok();

    let threads = rayon::current_num_threads();
    println!("emobench pipeline benchmark ({threads} threads)");
    println!("  predictor ResNet-18, batch 1   {b1:9.2} ms/image");
    println!("  predictor ResNet-18, batch 8   {b8:9.2} ms/image");
    println!("  predictor + Grad-CAM, batch 1  {cam:9.2} ms/image");
    println!("  Canny(200,500) RGB 224x224     {canny:9.3} ms");
    println!("  Canny(200,500) gray 224x224    {canny_gray_ms:9.3} ms");
    println!("  Canny RGB, one thread          {canny_1t:9.3} ms");
    println!("  Canny gray, one thread         {canny_gray_1t:9.3} ms");
    println!("  SSIM win 7 RGB 224x224         {s7:9.3} ms");
    println!("  SSIM win 51 gray 224x224       {s51:9.3} ms");
    println!("  score (whole, 32 conditions)   {cps:9.2} conditions/s");
    let json = serde_json::json!({
        "threads": threads,
        "predictor_batch1_ms": b1, "predictor_batch8_ms_per_image": b8, "gradcam_batch1_ms": cam,
        "canny_rgb_ms": canny, "canny_gray_ms": canny_gray_ms,
        "canny_rgb_1thread_ms": canny_1t, "canny_gray_1thread_ms": canny_gray_1t, "ssim_w7_rgb_ms": s7, "ssim_w51_gray_ms": s51,
        "score_conditions_per_s": cps,
    });
    if let Some(d) = out.parent() {
        std::fs::create_dir_all(d)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&json)? + "\n")?;
    println!("-> {}", out.display());
    Ok(())
}
