//! Table 1 and the 8x8 matrices against pandas: `tests/fixtures/table1/scores.csv` is a synthetic
//! per-image score table, and `make_table1_fixture.py` (beside it) wrote what pandas' groupby
//! gives for every subset, method and metric, and for every matrix cell with its n.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use emobench_core::confusion::{cell_counts, matrix, METRICS};
use emobench_core::emotion::Emotion;
use emobench_core::metrics::PairMetrics;
use emobench_core::score::{by_method, ScoreRow};
use emobench_core::table1::{summarise, Subset};

/// Means of up to a few hundred values in a different summation order than pandas'.
const TOL: f64 = 1e-9;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/table1")
}

fn records(name: &str) -> (csv::StringRecord, Vec<csv::StringRecord>) {
    let mut rdr = csv::Reader::from_path(dir().join(name)).expect("fixture");
    let header = rdr.headers().expect("header").clone();
    let rows = rdr.records().map(|r| r.expect("row")).collect();
    (header, rows)
}

fn get<'a>(h: &csv::StringRecord, r: &'a csv::StringRecord, col: &str) -> &'a str {
    let i = h.iter().position(|c| c == col).expect(col);
    &r[i]
}

fn num(h: &csv::StringRecord, r: &csv::StringRecord, col: &str) -> f64 {
    get(h, r, col).parse().expect(col)
}

fn emotion(s: &str) -> Emotion {
    s.parse().expect("emotion")
}

fn score_rows() -> Vec<ScoreRow> {
    let (h, rows) = records("scores.csv");
    rows.iter()
        .map(|r| {
            let probs = |prefix: &str| {
                let mut p = [0f64; 8];
                for e in Emotion::ALL {
                    p[e.emoset_index()] = num(&h, r, &format!("{prefix}{e}"));
                }
                p
            };
            let source = get(&h, r, "source_emotion");
            ScoreRow {
                method: get(&h, r, "method").to_string(),
                source_id: get(&h, r, "source_id").to_string(),
                source_emotion: (!source.is_empty()).then(|| emotion(source)),
                target: emotion(get(&h, r, "target")),
                p_src: probs("p_src_"),
                p_gen: probs("p_gen_"),
                argmax_src: emotion(get(&h, r, "argmax_src")),
                argmax_gen: emotion(get(&h, r, "argmax_gen")),
                m: PairMetrics {
                    emr: get(&h, r, "emr") == "1",
                    esr: get(&h, r, "esr") == "1",
                    kl_src: num(&h, r, "kl_src"),
                    kl_gen: num(&h, r, "kl_gen"),
                    enrd: num(&h, r, "enrd"),
                    ess: num(&h, r, "ess"),
                    ssim: num(&h, r, "ssim"),
                    l1: num(&h, r, "l1"),
                },
            }
        })
        .collect()
}

fn close(what: &str, got: f64, want: f64) {
    assert!(
        (got - want).abs() <= TOL * want.abs().max(1.0),
        "{what}: {got} vs pandas {want}"
    );
}

#[test]
fn table1_matches_pandas_for_every_subset_and_metric() {
    let rows = score_rows();
    let methods: Vec<String> = ["ct", "emoeditor", "ip2p"].map(String::from).to_vec();
    let (h, expected) = records("expected_table1.csv");
    let mut want: BTreeMap<(String, String), csv::StringRecord> = BTreeMap::new();
    for r in expected {
        want.insert(
            (get(&h, &r, "subset").into(), get(&h, &r, "method").into()),
            r,
        );
    }
    let mut compared = 0;
    for subset in Subset::ALL {
        let got = summarise(&rows, &methods, subset);
        let expected_here = want.keys().filter(|(s, _)| s == subset.name()).count();
        assert_eq!(got.len(), expected_here, "{}: methods", subset.name());
        for s in got {
            let r = &want[&(subset.name().to_string(), s.method.clone())];
            let at = format!("{} {}", subset.name(), s.method);
            assert_eq!(s.n, num(&h, r, "n") as usize, "{at}: n");
            close(&format!("{at} EMR"), s.emr, num(&h, r, "emr"));
            close(&format!("{at} ESR"), s.esr, num(&h, r, "esr"));
            close(&format!("{at} ENRD"), s.enrd, num(&h, r, "enrd"));
            close(&format!("{at} ESS"), s.ess, num(&h, r, "ess"));
            close(&format!("{at} SSIM"), s.ssim, num(&h, r, "ssim"));
            close(&format!("{at} L1"), s.l1, num(&h, r, "l1"));
            compared += 1;
        }
    }
    assert_eq!(compared, want.len());
}

#[test]
fn confusion_matrices_match_pandas_cell_by_cell() {
    let rows = score_rows();
    let (h, expected) = records("expected_matrices.csv");
    let mut want: BTreeMap<(String, String, usize, usize), (usize, f64)> = BTreeMap::new();
    for r in &expected {
        let key = (
            get(&h, r, "method").to_string(),
            get(&h, r, "metric").to_string(),
            emotion(get(&h, r, "source")).emoset_index(),
            emotion(get(&h, r, "target")).emoset_index(),
        );
        want.insert(key, (num(&h, r, "n") as usize, num(&h, r, "value")));
    }
    let mut compared = 0;
    for (method, rows) in by_method(&rows) {
        let counts = cell_counts(&rows);
        for mm in &METRICS {
            let m = matrix(&rows, mm.value);
            for i in 0..8 {
                for j in 0..8 {
                    let at = format!("{method} {} [{i}][{j}]", mm.name);
                    match want.get(&(method.to_string(), mm.name.to_string(), i, j)) {
                        Some(&(n, value)) => {
                            assert_eq!(counts[i][j], n, "{at}: n");
                            close(&at, m[i][j], value);
                            compared += 1;
                        }
                        None => {
                            assert_eq!(counts[i][j], 0, "{at}: n");
                            assert!(m[i][j].is_nan(), "{at}: empty cell is NaN");
                        }
                    }
                }
            }
        }
    }
    assert_eq!(compared, want.len());
}
