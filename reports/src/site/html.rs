//! The page as HTML: one document, no framework, no network; the filters and the opening of a
//! linked row are a few lines of plain script (`assets/report.js`).

use std::fmt::Write as _;

use super::collect::row_anchor;
use super::model::{CsvTable, ScoreSection, Site, TableRow};

/// `s` with the characters HTML gives meaning to escaped (text and attribute values).
pub(crate) fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\'' => o.push_str("&#39;"),
            _ => o.push(c),
        }
    }
    o
}

fn fixed(v: f64, decimals: usize) -> String {
    if v.is_nan() {
        "-".into()
    } else {
        format!("{v:.decimals$}")
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map(|x| fixed(x, decimals)).unwrap_or_else(|| "-".into())
}

fn file_links(files: &[(String, String)]) -> String {
    let links: Vec<String> = files
        .iter()
        .map(|(name, to)| format!("<a href=\"{}\">{}</a>", esc(to), esc(name)))
        .collect();
    format!("<p class=\"files\">Files: {}</p>\n", links.join(" · "))
}

fn csv_table(t: &CsvTable, class: &str) -> String {
    let mut s = format!("<div class=\"scroll\"><table class=\"{class}\">\n<thead><tr>");
    for h in &t.header {
        let _ = write!(s, "<th>{}</th>", esc(h));
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in &t.rows {
        s.push_str("<tr>");
        for c in r {
            let _ = write!(s, "<td>{}</td>", esc(c));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table></div>\n");
    s
}

fn table1_rows(rows: &[&TableRow], with_extra: bool) -> String {
    let mut s = String::from(
        "<table class=\"table1\">\n<thead><tr><th>method</th><th>n</th><th>EMR %</th><th>ESR %</th><th>ENRD</th><th>ESS</th>",
    );
    if with_extra {
        s.push_str("<th>SSIM</th><th>L1</th>");
    }
    s.push_str("</tr></thead>\n<tbody>\n");
    for r in rows {
        let _ = write!(
            s,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>",
            esc(&r.method),
            r.n.map(|n| n.to_string()).unwrap_or_default(),
            fixed(r.emr, 2),
            fixed(r.esr, 2),
            fixed(r.enrd, 2),
            fixed(r.ess, 2)
        );
        if with_extra {
            let _ = write!(s, "<td>{}</td><td>{}</td>", opt(r.ssim, 4), opt(r.l1, 2));
        }
        s.push_str("</tr>\n");
    }
    s.push_str("</tbody></table>\n");
    s
}

fn score_section(s: &ScoreSection) -> String {
    let mut o = format!(
        "<article class=\"scores\" id=\"table1-{}\">\n<h3>{}</h3>\n",
        esc(&s.slug),
        esc(&s.label)
    );
    for n in &s.notes {
        let class = if n.contains("STAND-IN") {
            "note stand-in"
        } else {
            "note"
        };
        let _ = writeln!(o, "<p class=\"{class}\">{}</p>", esc(n));
    }
    let mut subsets: Vec<&str> = Vec::new();
    for r in &s.table {
        if !subsets.contains(&r.subset.as_str()) {
            subsets.push(&r.subset);
        }
    }
    for subset in subsets {
        let rows: Vec<&TableRow> = s.table.iter().filter(|r| r.subset == subset).collect();
        let _ = writeln!(o, "<h4>{}</h4>", esc(subset));
        if subset == "cross-valence" {
            let paper: Vec<&TableRow> = s.paper.iter().collect();
            let _ = writeln!(
                o,
                "<div class=\"side-by-side\"><div><p class=\"caption\">measured</p>{}</div><div><p class=\"caption\">paper, Table 1 (2,016 pairs)</p>{}</div></div>",
                table1_rows(&rows, true),
                table1_rows(&paper, false)
            );
        } else {
            o.push_str(&table1_rows(&rows, true));
        }
    }
    o.push_str(&file_links(&s.files));
    let _ = writeln!(
        o,
        "<details><summary>Options and predictor (report.json)</summary><pre>{}</pre></details>\n</article>",
        esc(&s.report_json)
    );
    o
}

fn confusion(site: &Site) -> String {
    let mut o = String::from("<section id=\"confusion\">\n<h2>Confusion matrices</h2>\n");
    for s in &site.scores {
        let _ = writeln!(o, "<h3>{}</h3>\n<div class=\"grid\">", esc(&s.label));
        for (method, metric, png) in &s.confusion {
            let _ = writeln!(
                o,
                "<figure><img src=\"{}\" alt=\"{} {} by source and target emotion\" loading=\"lazy\"><figcaption>{} · {}</figcaption></figure>",
                esc(png),
                esc(method),
                esc(metric),
                esc(method),
                esc(metric)
            );
        }
        o.push_str("</div>\n");
    }
    o.push_str("</section>\n");
    o
}

fn gallery(site: &Site) -> String {
    let Some(g) = &site.gallery else {
        return String::new();
    };
    let mut o = String::from(
        "<section id=\"gallery\">\n<h2>Gallery</h2>\n<p>Source and each method's edit, per target, in the layout of Fig. 6. An image links to its scores row; “trace” links to its critic trace.</p>\n",
    );
    let mut emotions: Vec<&str> = Vec::new();
    let mut targets: Vec<&str> = Vec::new();
    for r in &g.rows {
        if !emotions.contains(&r.source_emotion.as_str()) {
            emotions.push(&r.source_emotion);
        }
        if !targets.contains(&r.target.as_str()) {
            targets.push(&r.target);
        }
    }
    let options = |values: &[&str]| -> String {
        let mut s = String::from("<option value=\"*\">all</option>");
        for v in values {
            let label = if v.is_empty() { "neutral" } else { v };
            let _ = write!(s, "<option value=\"{}\">{}</option>", esc(v), esc(label));
        }
        s
    };
    let _ = writeln!(
        o,
        "<form class=\"filters\"><label>source emotion <select id=\"filter-source\">{}</select></label> <label>target <select id=\"filter-target\">{}</select></label> <output id=\"gallery-count\">{} of {} shown</output></form>",
        options(&emotions),
        options(&targets),
        g.rows.len(),
        g.rows.len()
    );
    o.push_str("<div class=\"scroll\"><table class=\"gallery\">\n<thead><tr><th>source</th><th>target</th>");
    for m in &g.methods {
        let _ = write!(o, "<th>{}</th>", esc(m));
    }
    o.push_str("</tr></thead>\n<tbody>\n");
    for r in &g.rows {
        let _ = write!(
            o,
            "<tr class=\"gallery-row\" data-source-emotion=\"{}\" data-target=\"{}\"><td class=\"src\">",
            esc(&r.source_emotion),
            esc(&r.target)
        );
        if let Some(img) = &r.source_image {
            let _ = write!(
                o,
                "<img src=\"{}\" alt=\"source {}\" loading=\"lazy\">",
                esc(img),
                esc(&r.source_id)
            );
        }
        let emotion = if r.source_emotion.is_empty() {
            "neutral"
        } else {
            &r.source_emotion
        };
        let _ = write!(
            o,
            "<span>{} ({})</span></td><td class=\"target\">{}</td>",
            esc(&r.source_id),
            esc(emotion),
            esc(&r.target)
        );
        for (cell, m) in r.cells.iter().zip(&g.methods) {
            o.push_str("<td>");
            if let Some(c) = cell {
                let img = format!(
                    "<img src=\"{}\" alt=\"{} {} to {}\" loading=\"lazy\">",
                    esc(&c.image),
                    esc(m),
                    esc(&r.source_id),
                    esc(&r.target)
                );
                match &c.score_anchor {
                    Some(a) => {
                        let _ = write!(o, "<a href=\"#{}\">{img}</a>", esc(a));
                    }
                    None => o.push_str(&img),
                }
                if let Some(t) = &c.trace_anchor {
                    let _ = write!(
                        o,
                        "<a class=\"trace-link\" href=\"#{}\" title=\"critic trace\">trace</a>",
                        esc(t)
                    );
                }
            }
            o.push_str("</td>");
        }
        o.push_str("</tr>\n");
    }
    o.push_str("</tbody></table></div>\n</section>\n");
    o
}

fn traces(site: &Site) -> String {
    if site.traces.is_empty() {
        return String::new();
    }
    let mut o = String::from(
        "<section id=\"traces\">\n<h2>Critic traces</h2>\n<p>Each pass of the critic loop: the diffusion strength T, SSIM to the source, the predicted emotion, the target's probability, whether the critic accepted the pass, and which image was kept (pass 0 is the source).</p>\n",
    );
    for t in &site.traces {
        let _ = writeln!(
            o,
            "<details class=\"trace\" id=\"{}\"><summary>{} · {} → {}: kept {}, {} passes, stopped: {} (profile {})</summary>\n<table><thead><tr><th>pass</th><th>T</th><th>SSIM</th><th>predicted</th><th>target probability</th><th>accepted</th><th>kept</th></tr></thead><tbody>",
            esc(&t.anchor),
            esc(&t.method),
            esc(&t.source_id),
            esc(&t.target),
            if t.kept == 0 { "the source".to_string() } else { format!("pass {}", t.kept) },
            t.passes.len(),
            esc(&t.stopped),
            esc(&t.profile)
        );
        for p in &t.passes {
            let _ = writeln!(
                o,
                "<tr{}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                if p.kept { " class=\"kept\"" } else { "" },
                p.pass,
                p.t.map(|t| t.to_string()).unwrap_or_default(),
                fixed(p.ssim, 4),
                esc(&p.predicted),
                fixed(p.target_prob, 4),
                if p.accepted { "yes" } else { "no" },
                if p.kept { "kept" } else { "" }
            );
        }
        o.push_str("</tbody></table></details>\n");
    }
    o.push_str("</section>\n");
    o
}

fn iterations(site: &Site) -> String {
    if site.iterations.is_empty() {
        return String::new();
    }
    let mut o = String::from(
        "<section id=\"iterations\">\n<h2>Iterations (Fig. S11)</h2>\n<p>EMR, ESR, ENRD and ESS against the cap on critic passes, each cap derived from one long run.</p>\n",
    );
    for it in &site.iterations {
        let _ = writeln!(o, "<h3>{}</h3>", esc(&it.label));
        for f in &it.figures {
            let _ = writeln!(
                o,
                "<figure><img src=\"{}\" alt=\"metrics against the iteration cap\" loading=\"lazy\"></figure>",
                esc(f)
            );
        }
        o.push_str(&csv_table(&it.table, "data"));
        o.push_str(&file_links(&it.files));
    }
    o.push_str("</section>\n");
    o
}

fn study(site: &Site) -> String {
    let Some(s) = &site.study else {
        return String::new();
    };
    let mut o = String::from("<section id=\"study\">\n<h2>Human study</h2>\n");
    for (caption, png) in &s.figures {
        let _ = writeln!(
            o,
            "<figure><img src=\"{}\" alt=\"{}\" loading=\"lazy\"><figcaption>{}</figcaption></figure>",
            esc(png),
            esc(caption),
            esc(caption)
        );
    }
    o.push_str("<h3>Preferences</h3>\n");
    o.push_str(&csv_table(&s.preferences, "data"));
    if !s.cleaning.is_empty() {
        let _ = writeln!(
            o,
            "<details open><summary>Data cleaning</summary><pre>{}</pre></details>",
            esc(&s.cleaning)
        );
    }
    o.push_str(&file_links(&s.files));
    o.push_str("</section>\n");
    o
}

fn runs(site: &Site) -> String {
    if site.runs.is_empty() {
        return String::new();
    }
    let mut o = String::from("<section id=\"runs\">\n<h2>Runs</h2>\n");
    for r in &site.runs {
        let _ = writeln!(
            o,
            "<article class=\"run\" id=\"run-{}\"><h3>{}</h3><p>emobench {} (commit {}), seed {} · <a href=\"{}\">run.json</a></p>",
            esc(&super::collect::slug(&r.method)),
            esc(&r.method),
            esc(&r.version),
            esc(&r.commit),
            esc(&r.seed),
            esc(&r.file)
        );
        if !r.weights.is_empty() {
            o.push_str("<table><thead><tr><th>role</th><th>file</th><th>SHA-256</th></tr></thead><tbody>\n");
            for (role, path, sha, stand_in) in &r.weights {
                let _ = writeln!(
                    o,
                    "<tr><td>{}{}</td><td>{}</td><td><code>{}</code></td></tr>",
                    esc(role),
                    if *stand_in { " (stand-in)" } else { "" },
                    esc(path),
                    esc(sha)
                );
            }
            o.push_str("</tbody></table>\n");
        }
        let _ = writeln!(
            o,
            "<details><summary>options</summary><pre>{}</pre></details><details><summary>run.json</summary><pre>{}</pre></details></article>",
            esc(&r.parameters),
            esc(&r.json)
        );
    }
    o.push_str("</section>\n");
    o
}

fn score_rows(site: &Site) -> String {
    if site.scores.is_empty() {
        return String::new();
    }
    let mut o = String::from("<section id=\"scores\">\n<h2>Per-image scores</h2>\n");
    for s in &site.scores {
        let _ = writeln!(
            o,
            "<details class=\"score-rows\"><summary>{} ({} rows)</summary><div class=\"scroll\"><table class=\"data\"><thead><tr><th>method</th><th>source</th><th>source emotion</th><th>target</th><th>p(target)</th><th>argmax</th><th>EMR</th><th>ESR</th><th>ENRD</th><th>ESS</th><th>SSIM</th><th>L1</th></tr></thead><tbody>",
            esc(&s.label),
            s.rows.len()
        );
        for r in &s.rows {
            let _ = writeln!(
                o,
                "<tr id=\"{}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(&row_anchor(s, r)),
                esc(&r.method),
                esc(&r.source_id),
                esc(&r.source_emotion),
                esc(&r.target),
                esc(&r.p_gen_target),
                esc(&r.argmax_gen),
                esc(&r.emr),
                esc(&r.esr),
                esc(&r.enrd),
                esc(&r.ess),
                esc(&r.ssim),
                esc(&r.l1)
            );
        }
        o.push_str("</tbody></table></div></details>\n");
    }
    o.push_str("</section>\n");
    o
}

/// The whole document.
pub(crate) fn page(site: &Site) -> String {
    let mut o = String::from(
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>emobench report</title>\n<link rel=\"stylesheet\" href=\"assets/report.css\">\n</head>\n<body>\n<header>\n<h1>emobench report</h1>\n",
    );
    let _ = writeln!(o, "<p class=\"provenance\">{}</p>", esc(&site.provenance));
    if !site.stand_ins.is_empty() {
        o.push_str("<div class=\"stand-in\" id=\"stand-ins\"><strong>Stand-ins in these results</strong><ul>\n");
        for s in &site.stand_ins {
            let _ = writeln!(o, "<li>{}</li>", esc(s));
        }
        o.push_str("</ul></div>\n");
    }
    let mut nav = Vec::new();
    let sections: [(&str, &str, bool); 8] = [
        ("table1", "Table 1", !site.scores.is_empty()),
        ("confusion", "Confusion matrices", !site.scores.is_empty()),
        ("gallery", "Gallery", site.gallery.is_some()),
        ("traces", "Critic traces", !site.traces.is_empty()),
        ("iterations", "Iterations", !site.iterations.is_empty()),
        ("study", "Human study", site.study.is_some()),
        ("runs", "Runs", !site.runs.is_empty()),
        ("scores", "Per-image scores", !site.scores.is_empty()),
    ];
    for (id, label, present) in sections {
        if present {
            nav.push(format!("<a href=\"#{id}\">{label}</a>"));
        }
    }
    let _ = writeln!(o, "<nav>{}</nav>\n</header>\n<main>", nav.join(" "));
    if !site.scores.is_empty() {
        o.push_str("<section id=\"table1\">\n<h2>Table 1</h2>\n");
        for s in &site.scores {
            o.push_str(&score_section(s));
        }
        o.push_str("</section>\n");
        o.push_str(&confusion(site));
    }
    o.push_str(&gallery(site));
    o.push_str(&traces(site));
    o.push_str(&iterations(site));
    o.push_str(&study(site));
    o.push_str(&runs(site));
    o.push_str(&score_rows(site));
    o.push_str("</main>\n<script src=\"assets/report.js\"></script>\n</body>\n</html>\n");
    o
}
