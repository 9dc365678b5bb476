//! `emobench iterations`: the iteration ablation (Fig. S11) from one EmoEditor run.

use std::path::PathBuf;

use clap::Args;

use emoeditor::iterations::{parse_caps, IterationsConfig};

use crate::cli::ScoreArgs;

/// `emobench iterations`: every `emobench score` flag, plus the caps.
#[derive(Debug, Args)]
pub struct IterationsArgs {
    /// Caps (the critic's num_loop) to derive: A..B inclusive or a list; each at most the run's
    /// own num_loop.
    #[arg(long, default_value = "1..30")]
    pub caps: String,
    /// Also write each cap's outputs as a run folder, <out>/runs/cap-<k>/<method>/ (one image and
    /// trace per job and cap).
    #[arg(long)]
    pub write_runs: bool,
    /// Sources, runs folder (a run written with keep_passes), report folder, methods (default
    /// emoeditor), targets, metric options and predictor, as for `emobench score`.
    #[command(flatten)]
    pub score: ScoreArgs,
}

/// Runs `emobench iterations`.
pub fn run(a: IterationsArgs) -> anyhow::Result<()> {
    let caps = parse_caps(&a.caps)?;
    let predictor = a.score.predictor.build()?;
    let cfg = IterationsConfig {
        score: a.score.config()?,
        caps,
    };
    let out: PathBuf = a.score.out.clone();
    let (result, notes) =
        crate::commands::iterations_and_report(&cfg, &predictor, &out, a.write_runs)?;
    for n in &notes {
        eprintln!("{n}");
    }
    let cross: Vec<_> = result
        .by_cap
        .iter()
        .flat_map(|(cap, s)| {
            s.iter()
                .filter(|m| m.subset == emobench_core::table1::Subset::CrossValence)
                .map(move |m| (*cap, m))
        })
        .collect();
    if a.score.json {
        let rows: Vec<serde_json::Value> = cross
            .iter()
            .map(|(cap, m)| serde_json::json!({"cap": cap, "summary": m}))
            .collect();
        println!("{}", serde_json::to_string(&rows)?);
    } else {
        eprintln!(
            "{} outputs x {} caps from {} distinct images, {} missing (listed in iterations.json); report in {}",
            result.jobs.len(),
            result.caps.len(),
            result.scored.rows.len(),
            result.scored.missing.len(),
            out.display()
        );
        for (cap, s) in cross {
            println!(
                "cap {cap:<3} {:<12} n={:<5} EMR {:6.2}%  ESR {:6.2}%  ENRD {:6.2}  ESS {:6.2}",
                s.method, s.n, s.emr, s.esr, s.enrd, s.ess
            );
        }
    }
    Ok(())
}
