//! A comparison as text for a CI log, as Markdown, or as JSON.

use super::{Comparison, Row, Verdict};
use crate::report::table::{number, render};

fn cells(r: &Row) -> Vec<String> {
    vec![
        r.target.clone(),
        format!("{} {}", r.workload, r.metric),
        number(r.base_median),
        number(r.new_median),
        format!("{:+.1}%", r.change_pct),
        format!("[{:+.1}, {:+.1}]", r.change_low_pct, r.change_high_pct),
        p_cell(r.p_value),
        p_cell(r.p_adjusted),
        r.verdict.as_str().to_string(),
    ]
}

/// Three decimals, or `<0.001` rather than a 0 no permutation test gives.
pub(crate) fn p_cell(p: f64) -> String {
    if p < 0.001 {
        "<0.001".to_string()
    } else {
        format!("{p:.3}")
    }
}

const HEADER: [&str; 9] = ["target", "metric", "base", "new", "change", "95% CI", "p", "p (Holm)", "verdict"];
/// Where the verdict is in [`HEADER`].
const VERDICT: usize = 8;

fn footer(c: &Comparison) -> Vec<String> {
    let mut lines = Vec::new();
    for label in &c.only_in_base {
        lines.push(format!("only in base: {label}"));
    }
    for label in &c.only_in_new {
        lines.push(format!("only in new: {label}"));
    }
    for change in &c.environment_changes {
        lines.push(format!("ENVIRONMENT CHANGED: {change}"));
    }
    let regressions = c.regressions();
    lines.push(format!(
        "{regressions} regression(s) beyond {}% at Holm-adjusted p < {} ({} metrics compared)",
        c.options.threshold_pct,
        c.options.alpha,
        c.rows.len()
    ));
    lines.push(format!(
        "p: permutation test of the medians, per row; p (Holm): adjusted for all {} rows (Holm–Bonferroni), \
         so that the chance of any false verdict in this comparison stays under {}; verdicts use it",
        c.rows.len(),
        c.options.alpha
    ));
    lines
}

/// Plain text for a terminal or CI log.
pub fn text(c: &Comparison) -> String {
    let rows: Vec<Vec<String>> = c.rows.iter().map(cells).collect();
    let mut out = format!("base: {}\nnew:  {}\n\n", c.base, c.new);
    out.push_str(&render(&HEADER, &rows));
    out.push('\n');
    for line in footer(c) {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

/// GitHub-flavoured Markdown (also what goes to `GITHUB_STEP_SUMMARY`).
pub fn markdown(c: &Comparison) -> String {
    let mut out = format!("### vmbench compare\n\nbase `{}` → new `{}`\n\n", c.base, c.new);
    out.push_str(&format!(
        "| {} |\n|{}|\n",
        HEADER.join(" | "),
        HEADER.iter().map(|_| "---").collect::<Vec<_>>().join("|")
    ));
    for r in &c.rows {
        let mut row = cells(r);
        if r.verdict == Verdict::Regressed {
            row[VERDICT] = format!("**{}**", row[VERDICT]);
        }
        out.push_str(&format!("| {} |\n", row.join(" | ")));
    }
    out.push('\n');
    for line in footer(c) {
        out.push_str(&format!("- {line}\n"));
    }
    out
}

pub fn json(c: &Comparison) -> String {
    serde_json::to_string_pretty(c).expect("comparisons serialize")
}

/// `--format table`, `md` and `json` of `vmbench compare`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareFormat {
    Table,
    Markdown,
    Json,
}

impl crate::output::Render<Comparison> for CompareFormat {
    fn name(&self) -> &'static str {
        match self {
            CompareFormat::Table => "table",
            CompareFormat::Markdown => "md",
            CompareFormat::Json => "json",
        }
    }

    fn render(&self, c: &Comparison) -> anyhow::Result<Vec<u8>> {
        let text = match self {
            CompareFormat::Table => text(c),
            CompareFormat::Markdown => markdown(c),
            CompareFormat::Json => json(c),
        };
        Ok(text.into_bytes())
    }
}
