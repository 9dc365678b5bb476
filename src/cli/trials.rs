//! The `trials` subcommands, mounted by the main binary as `emobench trials ...`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};

use studies::analysis::AnalyseOptions;
use studies::config::Study;
use studies::design::{load_design, DesignInputs};
use studies::power::{power, PowerOptions};
use studies::publish::make_design;
use studies::report::analyse_files;
use studies::simulate::{parse_preferences, simulate, write, ResponseFormat, SimulateOptions};

/// Human-study commands: design a 2AFC study, simulate participants, analyse responses, plan
/// sample sizes.
#[derive(Debug, Subcommand)]
pub enum TrialsCommand {
    /// Build the trial table, image manifest, web page and crowd manifests from run folders.
    Design(DesignArgs),
    /// Simulate participants answering a design (planted preferences, random clickers,
    /// side-biased clickers) and write their responses.
    Simulate(SimulateArgs),
    /// Ingest response files, apply the attention rule, and write statistics, tables and figures.
    Analyse(AnalyseArgs),
    /// Participants needed to detect a preference, by normal approximation and by simulation.
    Power(PowerArgs),
}

/// `trials design`.
#[derive(Debug, Args)]
pub struct DesignArgs {
    /// Run folders: runs/<method>/<source_id>/<target>.png.
    #[arg(long)]
    pub runs: PathBuf,
    /// Study definition (studies/NAME/study.toml).
    #[arg(long)]
    pub study: PathBuf,
    /// Output design folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Override the study's seed.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Override the number of participants (trial sets).
    #[arg(long)]
    pub participants: Option<u32>,
    /// Print the design summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `trials simulate`.
#[derive(Debug, Args)]
pub struct SimulateArgs {
    /// Design folder written by `trials design`.
    #[arg(long)]
    pub design: PathBuf,
    /// Output response file.
    #[arg(long)]
    pub out: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value = "tidy")]
    pub format: ResponseFormat,
    /// Participants (default: one per trial set).
    #[arg(long)]
    pub participants: Option<u32>,
    /// Planted preference for the reference: `0.56` or `ct=0.6,nst=0.55,*=0.56`.
    #[arg(long, default_value = "0.56")]
    pub preference: String,
    /// Proportions attentive,random,side-biased.
    #[arg(long, default_value = "1,0,0")]
    pub mix: String,
    /// SD of participants' preferences on the logit scale.
    #[arg(long, default_value_t = 0.0)]
    pub heterogeneity: f64,
    /// Check error probability of attentive participants.
    #[arg(long, default_value_t = 0.02)]
    pub lapse: f64,
    /// P(left) of side-biased participants.
    #[arg(long, default_value_t = 0.9)]
    pub side_bias: f64,
    /// Probability of a missing answer.
    #[arg(long, default_value_t = 0.0)]
    pub missing: f64,
    /// Venue label (default: the study's).
    #[arg(long)]
    pub venue: Option<String>,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print a JSON summary.
    #[arg(long)]
    pub json: bool,
}

/// `trials analyse`.
#[derive(Debug, Args)]
pub struct AnalyseArgs {
    /// Design folder (supplies the reference method, exclusion rule, venue and baseline order);
    /// optional for tidy responses.
    #[arg(long)]
    pub design: Option<PathBuf>,
    /// Response files: tidy CSV, the web page's CSV, MTurk batch results (any mix).
    #[arg(long, num_args = 1.., required = true)]
    pub responses: Vec<PathBuf>,
    /// Output report folder.
    #[arg(long)]
    pub out: PathBuf,
    /// Reference method (default: the design's, else emoeditor).
    #[arg(long)]
    pub reference: Option<String>,
    /// Exclude participants with more check errors than this (default: the design's, else 1).
    #[arg(long)]
    pub max_check_errors: Option<u32>,
    /// Bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    pub resamples: usize,
    /// Seed of the bootstrap.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// 1 - confidence level.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Venue for files that do not name one, i.e. MTurk batch results (default: the design's
    /// venue, else online).
    #[arg(long)]
    pub venue: Option<String>,
    /// Skip the figures.
    #[arg(long)]
    pub no_figures: bool,
    /// Print the summary as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `trials power`.
#[derive(Debug, Args)]
pub struct PowerArgs {
    /// True preference for the reference.
    #[arg(long, default_value_t = 0.56)]
    pub preference: f64,
    /// Two-sided alpha.
    #[arg(long, default_value_t = 0.05)]
    pub alpha: f64,
    /// Target power.
    #[arg(long, default_value_t = 0.8)]
    pub power: f64,
    /// Real trials per participant in the comparison.
    #[arg(long, default_value_t = 100)]
    pub trials: u32,
    /// Intra-class correlation (from `trials analyse`'s summary.json of a pilot).
    #[arg(long, default_value_t = 0.02)]
    pub icc: f64,
    /// Expected share passing the attention rule (the paper's online study: 0.27).
    #[arg(long, default_value_t = 1.0)]
    pub pass_rate: f64,
    /// Simulated studies per size (0 = normal approximation only).
    #[arg(long, default_value_t = 1000)]
    pub simulations: usize,
    /// Seed.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_mix(s: &str) -> anyhow::Result<(f64, f64, f64)> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!("--mix '{s}': expected three numbers, attentive,random,side-biased")
        })?;
    match v.as_slice() {
        [a, b, c] => Ok((*a, *b, *c)),
        _ => anyhow::bail!("--mix '{s}': expected three numbers, attentive,random,side-biased"),
    }
}

fn pct(v: f64) -> String {
    if v.is_nan() {
        "n/a".into()
    } else {
        format!("{:.1}%", 100.0 * v)
    }
}

/// Runs one `trials` subcommand.
pub fn run(cmd: TrialsCommand) -> anyhow::Result<()> {
    match cmd {
        TrialsCommand::Design(a) => {
            let mut study = Study::load(&a.study)?;
            if let Some(s) = a.seed {
                study.config.seed = s;
            }
            if let Some(p) = a.participants {
                study.config.participants = p;
            }
            let d = make_design(
                &study,
                &DesignInputs {
                    runs: a.runs.clone(),
                    out: a.out.clone(),
                },
            )?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&d.summary)?);
            } else {
                let s = &d.summary;
                println!(
                    "designed {} participants x ({} real + {} check) trials into {}",
                    s.participants,
                    s.real_trials_per_participant,
                    s.checks_per_participant,
                    a.out.display()
                );
                for (m, n) in &s.trials_per_method {
                    println!(
                        "  {m}: {n} trials over {} conditions",
                        s.conditions_per_method.get(m).copied().unwrap_or(0)
                    );
                }
                println!(
                    "  images: {}; open {}/index.html?set=p001 to try the page",
                    s.images,
                    a.out.display()
                );
                if s.participants_with_repeats > 0 {
                    println!(
                        "  note: {} participants see a (source, target) twice (too few conditions)",
                        s.participants_with_repeats
                    );
                }
            }
        }
        TrialsCommand::Simulate(a) => {
            let design = load_design(&a.design)?;
            let mut preference: BTreeMap<String, f64> = parse_preferences(&a.preference)
                .map_err(|e| anyhow::anyhow!("--preference: {e}"))?;
            preference.entry("*".into()).or_insert(0.5);
            let opts = SimulateOptions {
                participants: a.participants,
                mix: parse_mix(&a.mix)?,
                preference,
                heterogeneity_sd: a.heterogeneity,
                lapse: a.lapse,
                side_bias: a.side_bias,
                missing: a.missing,
                venue: a
                    .venue
                    .clone()
                    .unwrap_or_else(|| design.study.venue.clone()),
                seed: a.seed,
                reference: design.study.reference.clone(),
            };
            let people = simulate(&design.trials, &opts)?;
            write(&people, a.format, &a.out)?;
            let meta_path = a.out.with_extension("metadata.json");
            studies::write_metadata_file(
                &meta_path,
                "trials simulate",
                serde_json::json!({"options": opts, "format": a.format, "design": a.design.display().to_string()}),
                Some(a.seed),
                &[a.design.join("design.json"), a.design.join("trials.csv")],
            )?;
            let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
            for p in &people {
                *kinds
                    .entry(
                        serde_json::to_value(p.behaviour)?
                            .as_str()
                            .unwrap_or("?")
                            .to_string(),
                    )
                    .or_default() += 1;
            }
            if a.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "out": a.out.display().to_string(),
                        "participants": people.len(),
                        "behaviours": kinds,
                        "seed": a.seed,
                    }))?
                );
            } else {
                println!(
                    "wrote {} simulated participants ({:?}) to {}",
                    people.len(),
                    kinds,
                    a.out.display()
                );
            }
        }
        TrialsCommand::Analyse(a) => {
            let mut opts = AnalyseOptions {
                resamples: a.resamples,
                seed: a.seed,
                alpha: a.alpha,
                figures: !a.no_figures,
                ..AnalyseOptions::default()
            };
            let mut extra = Vec::new();
            if let Some(d) = &a.design {
                let design = load_design(d)?;
                opts.reference = design.study.reference.clone();
                opts.max_check_errors = design.study.max_check_errors;
                opts.baseline_order = design.study.compared.clone();
                opts.venue = design.study.venue.clone();
                extra.push(d.join("design.json"));
                extra.push(d.join("trials.csv"));
            }
            if let Some(r) = a.reference {
                opts.reference = r;
            }
            if let Some(m) = a.max_check_errors {
                opts.max_check_errors = m;
            }
            if let Some(v) = a.venue {
                opts.venue = v;
            }
            let an = analyse_files(&a.responses, &opts, Some(&a.out), &extra)?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&an.summary)?);
            } else {
                let s = &an.summary;
                println!(
                    "kept {} of {} participants; {} real trials; preference for {} {} (SE {}, bootstrap {}-{}, p = {:.3e})",
                    s.participants_kept,
                    s.participants_seen,
                    s.trials_analysed,
                    s.options.reference,
                    pct(s.preference),
                    pct(s.se_participants),
                    pct(s.boot_interval.0),
                    pct(s.boot_interval.1),
                    s.p_binomial
                );
                for r in an
                    .preferences
                    .iter()
                    .filter(|r| r.subset == "overall" && r.baseline != "all")
                {
                    println!(
                        "  vs {:<12} {:>6} +- {:>5} ({} trials, {} participants, p_holm = {:.3e}) [{}]",
                        r.baseline,
                        pct(r.preference),
                        pct(r.se_participants),
                        r.trials,
                        r.participants,
                        r.p_holm,
                        r.venue
                    );
                }
                println!("report: {}", a.out.join("report.md").display());
            }
        }
        TrialsCommand::Power(a) => {
            let r = power(&PowerOptions {
                preference: a.preference,
                alpha: a.alpha,
                power: a.power,
                trials_per_participant: a.trials,
                icc: a.icc,
                pass_rate: a.pass_rate,
                simulations: a.simulations,
                seed: a.seed,
            })?;
            if a.json {
                println!("{}", serde_json::to_string_pretty(&r)?);
            } else {
                println!(
                    "independent judgments: {} (p = {}, alpha = {}, power = {})",
                    r.independent_trials, a.preference, a.alpha, a.power
                );
                println!(
                    "design effect 1 + ({} - 1) x {} = {:.3}: {:.0} trials, {} kept participants, recruit {}",
                    a.trials, a.icc, r.design_effect, r.clustered_trials, r.participants_normal, r.recruit_normal
                );
                if let (Some(k), Some(rec)) = (r.participants_simulated, r.recruit_simulated) {
                    println!(
                        "simulation ({} studies per size): {} kept participants, recruit {}",
                        a.simulations, k, rec
                    );
                }
            }
        }
    }
    Ok(())
}
