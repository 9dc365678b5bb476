//! Table 1 exporters, one per format behind one trait.

use serde::Serialize;

use emobench_core::number::shortest;
use emobench_core::table1::{paper_row, Subset, Summary, PAPER_TABLE1};

/// Everything a Table-1 file shows.
#[derive(Debug, Clone, Serialize)]
pub struct Table1Report {
    /// Lines that say what produced the table (stand-in notice first when there is one).
    pub notes: Vec<String>,
    /// The predictor's label (`stand-in` or the checkpoint's file name), a column of the CSV.
    pub predictor: String,
    /// Measured summaries per subset.
    pub subsets: Vec<(Subset, Vec<Summary>)>,
}

/// Renders a Table-1 report in one file format.
pub trait TableExporter {
    /// File extension, without the dot.
    fn extension(&self) -> &'static str;
    /// The file's contents.
    fn render(&self, report: &Table1Report) -> String;
}

fn fmt_paper(v: Option<f64>) -> String {
    v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "-".into())
}

/// GitHub-flavoured Markdown.
pub struct Markdown;

impl TableExporter for Markdown {
    fn extension(&self) -> &'static str {
        "md"
    }

    fn render(&self, r: &Table1Report) -> String {
        let mut s = String::from("# Table 1 (measured by emobench)\n\n");
        for n in &r.notes {
            s.push_str(&format!("> {n}\n"));
        }
        for (subset, rows) in &r.subsets {
            s.push_str(&format!("\n## {}\n\n", subset.name()));
            s.push_str("| method | n | EMR % | ESR % | ENRD | ESS | SSIM | L1 | paper EMR % | paper ESR % | paper ENRD | paper ESS |\n");
            s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for x in rows {
                let p = paper_row(&x.method).filter(|_| *subset == Subset::CrossValence);
                s.push_str(&format!(
                    "| {} | {} | {:.2} | {:.2} | {:.2} | {:.2} | {:.4} | {:.2} | {} | {} | {} | {} |\n",
                    x.method, x.n, x.emr, x.esr, x.enrd, x.ess, x.ssim, x.l1,
                    fmt_paper(p.map(|p| p.emr)), fmt_paper(p.map(|p| p.esr)),
                    fmt_paper(p.map(|p| p.enrd)), fmt_paper(p.map(|p| p.ess)),
                ));
            }
        }
        s.push_str("\n## Paper, Table 1 (cross-valence, 2,016 pairs)\n\n| method | EMR % | ESR % | ENRD | ESS |\n|---|---:|---:|---:|---:|\n");
        for p in PAPER_TABLE1 {
            s.push_str(&format!(
                "| {} | {:.2} | {:.2} | {:.2} | {:.2} |\n",
                p.paper_name, p.emr, p.esr, p.enrd, p.ess
            ));
        }
        s
    }
}

/// Long CSV: one row per (source of the numbers, subset, method).
pub struct Csv;

impl TableExporter for Csv {
    fn extension(&self) -> &'static str {
        "csv"
    }

    fn render(&self, r: &Table1Report) -> String {
        let mut s = String::from("origin,subset,method,n,emr,esr,enrd,ess,ssim,l1,predictor\n");
        for (subset, rows) in &r.subsets {
            for x in rows {
                let values = [x.emr, x.esr, x.enrd, x.ess, x.ssim, x.l1].map(shortest);
                s.push_str(&format!(
                    "emobench,{},{},{},{},{}\n",
                    subset.name(),
                    x.method,
                    x.n,
                    values.join(","),
                    r.predictor
                ));
            }
        }
        // The paper's rows were scored with the authors' predictor, whose name the paper does
        // not give; SSIM and L1 are not in Table 1.
        for p in PAPER_TABLE1 {
            let values = [p.emr, p.esr, p.enrd, p.ess].map(shortest);
            s.push_str(&format!(
                "paper,cross-valence,{},2016,{},,,\n",
                p.method,
                values.join(",")
            ));
        }
        s
    }
}

/// LaTeX `tabular` (booktabs), measured rows then the paper's.
pub struct Latex;

impl TableExporter for Latex {
    fn extension(&self) -> &'static str {
        "tex"
    }

    fn render(&self, r: &Table1Report) -> String {
        let mut s = String::new();
        for n in &r.notes {
            s.push_str(&format!("% {n}\n"));
        }
        for (subset, rows) in &r.subsets {
            s.push_str(&format!(
                "% subset: {}\n\\begin{{tabular}}{{lrrrrr}}\n\\toprule\nMethod & $n$ & EMR (\\%) $\\uparrow$ & ESR (\\%) $\\uparrow$ & ENRD $\\downarrow$ & ESS $\\downarrow$ \\\\\n\\midrule\n",
                subset.name()
            ));
            for x in rows {
                s.push_str(&format!(
                    "{} & {} & {:.2} & {:.2} & {:.2} & {:.2} \\\\\n",
                    x.method.replace('_', "\\_"),
                    x.n,
                    x.emr,
                    x.esr,
                    x.enrd,
                    x.ess
                ));
            }
            if *subset == Subset::CrossValence {
                s.push_str("\\midrule\n");
                for p in PAPER_TABLE1 {
                    s.push_str(&format!(
                        "{} (paper) & 2016 & {:.2} & {:.2} & {:.2} & {:.2} \\\\\n",
                        p.paper_name.replace('_', "\\_"),
                        p.emr,
                        p.esr,
                        p.enrd,
                        p.ess
                    ));
                }
            }
            s.push_str("\\bottomrule\n\\end{tabular}\n\n");
        }
        s
    }
}

/// JSON with raw (unrounded) values.
pub struct Json;

impl TableExporter for Json {
    fn extension(&self) -> &'static str {
        "json"
    }

    fn render(&self, r: &Table1Report) -> String {
        #[derive(Serialize)]
        struct Out<'a> {
            notes: &'a [String],
            measured: Vec<&'a Summary>,
            paper: &'a [emobench_core::table1::PaperRow],
        }
        let out = Out {
            notes: &r.notes,
            measured: r.subsets.iter().flat_map(|(_, v)| v.iter()).collect(),
            paper: &PAPER_TABLE1,
        };
        let mut s = serde_json::to_string_pretty(&out)
            .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
        s.push('\n');
        s
    }
}

/// Every exporter.
pub fn exporters() -> Vec<Box<dyn TableExporter>> {
    vec![
        Box::new(Markdown),
        Box::new(Csv),
        Box::new(Latex),
        Box::new(Json),
    ]
}
