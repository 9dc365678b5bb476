//! The tidy-CSV check shared by the tests that write CSVs: every CSV under a folder starts with
//! its header (no `#` lines, no byte-order mark), every row has the header's width, and, where
//! Python with pandas and polars is at hand (`EMOBENCH_PYTHON`, which `.ci/run` sets), both read
//! each file with default options into the same shape, and so does R's `read.csv` where `Rscript`
//! is on PATH. Under CI the Python check is required.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Every `.csv` under `dir`, sorted.
fn csv_files(dir: &Path, found: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            csv_files(&p, found);
        } else if p.extension().is_some_and(|e| e == "csv") {
            found.push(p);
        }
    }
}

/// Checks every CSV under `dir` (at least `at_least` of them); returns how many.
pub fn assert_tidy_csvs(dir: &Path, at_least: usize) -> usize {
    let mut files = Vec::new();
    csv_files(dir, &mut files);
    assert!(
        files.len() >= at_least,
        "{} CSVs under {}, expected at least {at_least}",
        files.len(),
        dir.display()
    );
    let mut shapes = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).unwrap();
        assert!(
            !bytes.starts_with(b"#") && !bytes.starts_with(b"\xEF\xBB\xBF"),
            "{} does not start with its header",
            f.display()
        );
        // The csv crate's defaults are strict: a row of another width is an error.
        let mut r = csv::Reader::from_reader(bytes.as_slice());
        let header = r.headers().unwrap().clone();
        assert!(
            header.iter().all(|h| !h.is_empty()),
            "{}: empty column name in {header:?}",
            f.display()
        );
        let mut rows = 0;
        for rec in r.records() {
            rec.unwrap_or_else(|e| panic!("{}: {e}", f.display()));
            rows += 1;
        }
        shapes.push(format!("{}\t{rows}\t{}", f.display(), header.len()));
    }
    match std::env::var_os("EMOBENCH_PYTHON") {
        Some(python) => read_with(python.as_ref(), "read_csvs.py", &shapes, "pandas/polars"),
        None if std::env::var_os("CI").is_some() => {
            panic!("EMOBENCH_PYTHON is not set under CI: .ci/run installs pandas and polars")
        }
        None => eprintln!("skipped: the pandas/polars reading of CSVs (set EMOBENCH_PYTHON to a Python with both)"),
    }
    // R is not installed by .ci/run; where Rscript is at hand its read.csv defaults are checked.
    match Command::new("Rscript").arg("--version").output() {
        Ok(o) if o.status.success() => {
            read_with("Rscript".as_ref(), "read_csvs.R", &shapes, "R's read.csv")
        }
        _ => eprintln!("skipped: R's read.csv check (no Rscript on PATH)"),
    }
    files.len()
}

/// Runs `tests/tidy/<script>` with `program` on the counted shapes; fails naming `reader`.
fn read_with(program: &std::ffi::OsStr, script: &str, shapes: &[String], reader: &str) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/tidy")
        .join(script);
    let out = Command::new(program)
        .arg(script)
        .args(shapes)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{reader} could not read the CSVs as written: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
