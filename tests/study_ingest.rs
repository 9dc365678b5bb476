//! Response ingest: the messy golden MTurk files, the attention rule's boundaries, and parser
//! robustness (proptest).

#[path = "fixtures/study/common.rs"]
mod common;

use std::path::PathBuf;

use emobench_core::emotion::Emotion;
use proptest::prelude::*;
use studies::analysis::AnalyseOptions;
use studies::cleaning::apply_attention_rule;
use studies::ingest::{ingest_bytes, ingest_files, reason, write_tidy, Kind, Response, Side};
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
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_header_is_an_error_naming_the_file() {
    let e =
        ingest_bytes(std::path::Path::new("x.csv"), b"a,b\n1,2\n", "online").expect_err("unknown");
    assert!(e.to_string().contains("x.csv:1"), "{e}");
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
