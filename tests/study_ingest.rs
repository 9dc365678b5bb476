//! Response ingest: the messy golden MTurk files, the re-saved / day-first / mixed-date golden
//! files of fixtures/study/ingest (expected values from its Python scripts), the attention rule's
//! boundaries, the design's venue through `trials analyse`, and parser robustness (proptest).

#[path = "fixtures/study/common.rs"]
mod common;

use std::path::{Path, PathBuf};

use clap::Parser;
use emobench::cli::trials::{run, TrialsCommand};
use emobench_core::emotion::Emotion;
use proptest::prelude::*;
use serde_json::Value;
use studies::analysis::AnalyseOptions;
use studies::cleaning::apply_attention_rule;
use studies::ingest::{
    ingest_bytes, ingest_files, parse_time, reason, write_tidy, DateOrder, Kind, Response, Side,
    TimeSpan,
};
use studies::report::analyse_files;

fn golden() -> Vec<PathBuf> {
    let d = common::root().join("tests/fixtures/study");
    vec![d.join("mturk_batch1.csv"), d.join("mturk_batch2.csv")]
}

#[test]
fn messy_mturk_files_give_exact_counts() {
    let (responses, log) = ingest_files(&golden(), "online").expect("ingest");
    assert_eq!(log.files.len(), 2);
    assert_eq!((log.files[0].rows_read, log.files[0].trials_read), (7, 56));
    assert_eq!((log.files[1].rows_read, log.files[1].trials_read), (3, 24));
    assert_eq!(log.files[0].format, "mturk");
    let d = |r: &str| {
        log.dropped
            .get(r)
            .map(|d| (d.rows, d.trials))
            .unwrap_or((0, 0))
    };
    assert_eq!(d(reason::REJECTED), (1, 8));
    assert_eq!(d(reason::DUP_ASSIGNMENT), (1, 8));
    assert_eq!(d(reason::DUP_WORKER), (1, 8));
    assert_eq!(d(reason::MISSING), (0, 1));
    assert_eq!(d(reason::INVALID), (0, 1));
    assert_eq!(log.dropped.len(), 5, "{:?}", log.dropped.keys());
    assert_eq!(log.unanswered_checks, 1);
    // W1, W2, W4, W5, W6, W7 (from batch 2, the earlier submission), W8.
    assert_eq!(responses.len(), 8 + 7 + 8 + 8 + 8 + 8 + 7);
    let w7: Vec<&Response> = responses.iter().filter(|r| r.participant == "W7").collect();
    assert_eq!(
        w7[0].choice,
        Some(Side::Right),
        "W7 kept from batch 2 (earlier SubmitTime)"
    );
    assert!(responses.iter().all(|r| r.venue == "online"));
    let cleaned = apply_attention_rule(&responses, 1);
    let kept: Vec<&str> = cleaned
        .participants
        .iter()
        .filter(|p| p.kept)
        .map(|p| p.participant.as_str())
        .collect();
    assert_eq!(kept, ["W1", "W2", "W4", "W6", "W7", "W8"]);
    assert_eq!(cleaned.real.len(), 34);

    let out = common::temp_dir("golden");
    let opts = AnalyseOptions {
        resamples: 200,
        figures: false,
        ..AnalyseOptions::default()
    };
    let a = analyse_files(&golden(), &opts, Some(&out), &[]).expect("analyse");
    assert_eq!(a.summary.trials_analysed, 34);
    let all = a
        .preferences
        .iter()
        .find(|r| r.baseline == "all" && r.subset == "overall")
        .expect("overall row");
    assert_eq!(
        (all.reference_chosen, all.trials, all.participants),
        (33, 34, 6)
    );
    assert_eq!(
        a.cleaning
            .participants_excluded
            .get("too many check errors"),
        Some(&1)
    );
    let md = std::fs::read_to_string(out.join("cleaning.md")).expect("cleaning.md");
    assert!(md.contains("rejected assignment | 1 | 8"), "{md}");
    let _ = std::fs::remove_dir_all(&out);
}

fn resp(p: &str, trial: u32, kind: Kind, choice: Option<Side>, correct: Option<Side>) -> Response {
    Response {
        participant: p.into(),
        venue: "lab".into(),
        trial,
        kind,
        source_id: "s".into(),
        source_emotion: Some(Emotion::Fear),
        target: Emotion::Awe,
        left_method: "emoeditor".into(),
        right_method: "ct".into(),
        choice,
        correct_side: correct,
        rt_ms: None,
    }
}

fn participant(p: &str, errors: usize, checks: usize, unanswered: usize) -> Vec<Response> {
    let mut v = vec![resp(p, 1, Kind::Real, Some(Side::Left), None)];
    for i in 0..checks {
        let choice = if i < unanswered {
            None
        } else if i < unanswered + errors {
            Some(Side::Right)
        } else {
            Some(Side::Left)
        };
        v.push(resp(p, 2 + i as u32, Kind::Check, choice, Some(Side::Left)));
    }
    v
}

#[test]
fn attention_rule_boundaries() {
    let mut all = Vec::new();
    all.extend(participant("zero", 0, 6, 0));
    all.extend(participant("one", 1, 6, 0));
    all.extend(participant("two", 2, 6, 0));
    all.extend(participant("none", 0, 0, 0));
    all.extend(participant("one_unanswered", 0, 6, 1));
    all.extend(participant("unanswered_and_wrong", 1, 6, 1));
    let c = apply_attention_rule(&all, 1);
    let status: Vec<(&str, bool, &str)> = c
        .participants
        .iter()
        .map(|p| (p.participant.as_str(), p.kept, p.reason.as_str()))
        .collect();
    assert_eq!(
        status,
        [
            ("none", false, "no attention checks"),
            ("one", true, "kept"),
            ("one_unanswered", true, "kept"),
            ("two", false, "too many check errors"),
            ("unanswered_and_wrong", false, "too many check errors"),
            ("zero", true, "kept"),
        ]
    );
    assert_eq!(c.real.len(), 3);
    // A stricter rule: zero errors allowed.
    let strict = apply_attention_rule(&all, 0);
    assert_eq!(strict.participants.iter().filter(|p| p.kept).count(), 1);
}

#[test]
fn tidy_files_with_bom_crlf_and_bad_rows() {
    let dir = common::temp_dir("tidy");
    let p = dir.join("r.csv");
    let text = "\u{feff}participant,venue,trial,kind,source_id,source_emotion,target,left_method,right_method,choice,correct_side,rt_ms\r\n\
a,lab,1,real,s1,fear,awe,emoeditor,ct,left,,900\r\n\
a,lab,1,real,s1,fear,awe,emoeditor,ct,right,,900\r\n\
a,lab,2,check,c1,,awe,check-a,check-b,left,left,800\r\n\
a,lab,3,real,s2,fear,joy,emoeditor,ct,left,,900\r\n\
a,lab,4,real,s2,fear,awe,emoeditor,ct,,,\r\n\
,lab,5,real,s2,fear,awe,emoeditor,ct,left,,900\r\n\
\"b\",\"lab, room 2\",1,real,s3,,anger,ct,emoeditor,RIGHT,,1200\r\n";
    std::fs::write(&p, text).expect("write");
    let (r, log) = ingest_files(&[p], "x").expect("ingest");
    assert_eq!(log.files[0].rows_read, 7);
    assert_eq!(r.len(), 3);
    let d = |k: &str| log.dropped.get(k).map(|d| d.rows).unwrap_or(0);
    assert_eq!(d(reason::DUP_TRIAL), 1);
    assert_eq!(d(reason::INVALID), 1);
    assert_eq!(d(reason::MISSING), 1);
    assert_eq!(d(reason::NO_PARTICIPANT), 1);
    assert_eq!(r[2].venue, "lab, room 2");
    assert_eq!(r[2].choice, Some(Side::Right));
    assert!(log.dropped[reason::INVALID].examples[0].contains("target='joy'"));
    // Physical lines (header = 1), the same for the CRLF text and its LF copy.
    let line = |log: &studies::ingest::IngestLog, k: &str, file: &Path| -> String {
        let e = &log.dropped[k].examples[0];
        let rest = e
            .strip_prefix(&format!("{}:", file.display()))
            .unwrap_or_else(|| panic!("{e} names {}", file.display()));
        rest.chars().take_while(char::is_ascii_digit).collect()
    };
    let p = dir.join("r.csv");
    assert_eq!(line(&log, reason::INVALID, &p), "5");
    assert_eq!(line(&log, reason::MISSING, &p), "6");
    assert_eq!(line(&log, reason::NO_PARTICIPANT, &p), "7");
    let lf = dir.join("lf.csv");
    std::fs::write(&lf, text.replace("\r\n", "\n")).expect("write");
    let (_, lf_log) = ingest_files(std::slice::from_ref(&lf), "x").expect("ingest");
    for k in [reason::INVALID, reason::MISSING, reason::NO_PARTICIPANT] {
        assert_eq!(line(&lf_log, k, &lf), line(&log, k, &p), "{k}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_header_is_an_error_naming_the_file() {
    let e =
        ingest_bytes(std::path::Path::new("x.csv"), b"a,b\n1,2\n", "online").expect_err("unknown");
    assert!(e.to_string().contains("x.csv:1"), "{e}");
}

fn ingest_fixtures() -> PathBuf {
    common::root().join("tests/fixtures/study/ingest")
}

/// Every text in times.csv (expected spans from pandas, dateutil and zoneinfo, written by
/// make_times.py) parses to exactly that span, or does not parse where the span is empty.
#[test]
fn time_texts_match_pandas_and_zoneinfo() {
    let mut rdr = csv::Reader::from_path(ingest_fixtures().join("times.csv")).expect("times.csv");
    let mut n = 0;
    for rec in rdr.records() {
        let rec = rec.expect("row");
        let order = match &rec[1] {
            "mdy" => DateOrder::MonthFirst,
            "dmy" => DateOrder::DayFirst,
            o => panic!("order {o}"),
        };
        let want = match (&rec[2], &rec[3]) {
            ("", "") => None,
            (lo, hi) => Some(TimeSpan {
                lo: lo.parse().expect("lo"),
                hi: hi.parse().expect("hi"),
            }),
        };
        assert_eq!(
            parse_time(&rec[0], order),
            want,
            "{:?} ({:?})",
            &rec[0],
            order
        );
        n += 1;
    }
    assert_eq!(n, 60);
}

/// `[file:line prefix, contained text]` pairs of expected.json against the log's examples.
fn assert_examples(got: &Value, want: &Value, dir: &str, what: &str) {
    let got: Vec<String> = got
        .as_array()
        .unwrap_or_else(|| panic!("{what}: examples"))
        .iter()
        .map(|e| e.as_str().expect("example").replace(dir, ""))
        .collect();
    let want = want.as_array().expect("expected examples");
    assert_eq!(got.len(), want.len(), "{what}: {got:?} vs {want:?}");
    for (g, w) in got.iter().zip(want) {
        let (prefix, text) = (w[0].as_str().expect("at"), w[1].as_str().expect("text"));
        assert!(
            g.starts_with(&format!("{prefix} ")) || g.starts_with(&format!("{prefix}:")),
            "{what}: '{g}' should start with '{prefix}'"
        );
        assert!(g.contains(text), "{what}: '{g}' should contain '{text}'");
    }
}

/// The golden files of fixtures/study/ingest (Excel re-save with BOM, CRLF and a multi-line
/// comment; MTurk's own format; a day-first re-save; a file of mixed slash dates; the web CSV):
/// counts, named lines, the repeat-worker rule on times, check answers that do not parse, the
/// attention rule and the tidy rows all as make_golden.py derived them.
#[test]
fn ingest_golden_files() {
    let d = ingest_fixtures();
    let names = [
        "mturk_original.csv",
        "mturk_resaved.csv",
        "mturk_dayfirst.csv",
        "mturk_mixed.csv",
        "web_crlf.csv",
    ];
    let files: Vec<PathBuf> = names.iter().map(|n| d.join(n)).collect();
    let (responses, log) = ingest_files(&files, "online").expect("ingest");
    let want: Value = serde_json::from_str(
        &std::fs::read_to_string(d.join("expected.json")).expect("expected.json"),
    )
    .expect("json");
    let got = serde_json::to_value(&log).expect("log");
    let dir = format!("{}/", d.display());

    let got_files = got["files"].as_array().expect("files");
    assert_eq!(got_files.len(), names.len());
    for (g, w) in got_files
        .iter()
        .zip(want["files"].as_array().expect("files"))
    {
        let mut g = g.clone();
        g["path"] = Value::from(g["path"].as_str().expect("path").replace(&dir, ""));
        assert_eq!(&g, w);
    }
    let got_dropped = got["dropped"].as_object().expect("dropped");
    let want_dropped = want["dropped"].as_object().expect("dropped");
    let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(got_dropped), keys(want_dropped));
    for (k, w) in want_dropped {
        let g = &got_dropped[k];
        assert_eq!(
            (&g["rows"], &g["trials"]),
            (&w["rows"], &w["trials"]),
            "{k}"
        );
        assert_examples(&g["examples"], &w["examples"], &dir, k);
    }
    for k in ["unparsed_check_answers", "unreadable_times"] {
        assert_eq!(got[k]["count"], want[k]["count"], "{k}");
        assert_examples(&got[k]["examples"], &want[k]["examples"], &dir, k);
    }
    assert_eq!(got["unanswered_checks"], want["unanswered_checks"]);
    assert_eq!(got["responses_kept"], want["responses_kept"]);

    let cleaned = apply_attention_rule(&responses, 1);
    let status: Vec<Value> = cleaned
        .participants
        .iter()
        .map(|p| {
            serde_json::json!({
                "participant": p.participant, "checks": p.checks, "check_errors": p.check_errors,
                "real_trials": p.real_trials, "kept": p.kept, "reason": p.reason,
            })
        })
        .collect();
    assert_eq!(Value::from(status), want["participants"]);

    let out = common::temp_dir("golden-ingest");
    write_tidy(&out.join("tidy.csv"), &responses).expect("tidy");
    let tidy = std::fs::read_to_string(out.join("tidy.csv")).expect("tidy");
    let want_tidy = std::fs::read_to_string(d.join("expected_tidy.csv")).expect("expected tidy");
    assert_eq!(tidy, want_tidy);

    // The cleaning report says it: garbled check answers and unreadable times, counted and named.
    let opts = AnalyseOptions {
        resamples: 50,
        figures: false,
        ..AnalyseOptions::default()
    };
    analyse_files(&files, &opts, Some(&out), &[]).expect("analyse");
    let md = std::fs::read_to_string(out.join("cleaning.md")).expect("cleaning.md");
    for text in [
        "Checks kept whose answer does not parse (counted as errors): 7 (e.g. ",
        "mturk_resaved.csv:5 trial 2: choice='on'",
        "SubmitTime / AcceptTime values that do not parse",
        "mturk_resaved.csv:7 SubmitTime='########'",
        "| repeat worker, order of submissions unknown | 6 | 72 |",
        "| day/month/year |",
    ] {
        assert!(md.contains(text), "cleaning.md lacks {text:?}:\n{md}");
    }
    let _ = std::fs::remove_dir_all(&out);
}

#[derive(Parser)]
struct Cli {
    #[command(subcommand)]
    cmd: TrialsCommand,
}

/// `trials analyse --design` gives MTurk rows the design's venue; `--venue` overrides it.
#[test]
fn analyse_takes_the_designs_venue() {
    use studies::config::Study;
    use studies::design::DesignInputs;
    use studies::publish::make_design;
    use studies::simulate::{simulate, write, ResponseFormat, SimulateOptions};

    let dir = common::temp_dir("venue");
    let runs = common::make_runs(&dir, &["emoeditor", "ct", "nst"], &[], false);
    // write_study's venue is "in-lab".
    let study = Study::load(&common::write_study(&dir, 4, 10, 3, "")).expect("study");
    let design = dir.join("design");
    let d = make_design(
        &study,
        &DesignInputs {
            runs,
            out: design.clone(),
        },
    )
    .expect("design");
    let people = simulate(&d.trials, &SimulateOptions::default()).expect("simulate");
    let mturk = dir.join("mturk.csv");
    write(&people, ResponseFormat::Mturk, &mturk).expect("write");
    let s = |p: &Path| p.display().to_string();
    let venues = |extra: &[&str], out: &Path| -> Vec<String> {
        let mut args = vec![
            "trials".to_string(),
            "analyse".into(),
            "--design".into(),
            s(&design),
            "--responses".into(),
            s(&mturk),
            "--out".into(),
            s(out),
            "--resamples".into(),
            "20".into(),
            "--no-figures".into(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        run(Cli::parse_from(args).cmd).expect("trials analyse");
        let c: Value = serde_json::from_str(
            &std::fs::read_to_string(out.join("cleaning.json")).expect("cleaning.json"),
        )
        .expect("json");
        c["trials_per_venue"]
            .as_object()
            .expect("venues")
            .keys()
            .cloned()
            .collect()
    };
    assert_eq!(venues(&[], &dir.join("r1")), ["in-lab"]);
    assert_eq!(venues(&["--venue", "online"], &dir.join("r2")), ["online"]);
    let _ = std::fs::remove_dir_all(&dir);
}

fn field() -> impl Strategy<Value = String> {
    // Commas, quotes, CR, LF and non-ASCII inside the value; no surrounding whitespace (ingest trims).
    "[a-zA-Z0-9,\"\r\n é;|]{0,12}".prop_map(|s| s.trim().to_string())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

    #[test]
    fn csv_fields_round_trip(pid in field().prop_filter("non-empty", |s| !s.is_empty()), venue in field(), sid in field()) {
        let dir = common::temp_dir("prop");
        let p = dir.join("r.csv");
        let mut r = resp(&pid, 7, Kind::Real, Some(Side::Right), None);
        r.venue = venue.clone();
        r.source_id = sid.clone();
        r.rt_ms = Some(1234.0);
        write_tidy(&p, &[r.clone()]).expect("write");
        let (back, _) = ingest_files(&[p], "x").expect("ingest");
        prop_assert_eq!(back.len(), 1);
        let mut want = r;
        if venue.is_empty() { want.venue = "unknown".into(); }
        prop_assert_eq!(&back[0], &want);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400), mturk in any::<bool>()) {
        let mut data = if mturk {
            b"AssignmentId,WorkerId,AssignmentStatus,SubmitTime,Input.trials,Answer.choice_001\n".to_vec()
        } else {
            b"participant,venue,trial,kind,source_id,source_emotion,target,left_method,right_method,choice,correct_side,rt_ms\n".to_vec()
        };
        data.extend_from_slice(&bytes);
        let _ = ingest_bytes(std::path::Path::new("fuzz.csv"), &data, "online");
        let _ = ingest_bytes(std::path::Path::new("fuzz.csv"), &bytes, "online");
    }
}
