//! `summary.tex`: the summary as LaTeX tables for a paper or coursework, one
//! `table` float per workload, ruled with booktabs (`\toprule`, `\midrule`,
//! `\bottomrule`; no vertical lines). The file is a fragment to `\input`;
//! the document needs `\usepackage{booktabs}`. Written in code rather than a
//! template: LaTeX's braces and backslashes fight a template language, and
//! every string from the run must be escaped.

use super::summary::{MetricSummary, RunSummary};
use super::table::{display, number};
use crate::rundir::WorkloadKind;

/// `text` safe in LaTeX's text mode: its ten special characters escaped and
/// the few non-ASCII signs vmbench itself writes spelled out.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str(r"\textbackslash{}"),
            '&' | '%' | '$' | '#' | '_' | '{' | '}' => {
                out.push('\\');
                out.push(c);
            }
            '~' => out.push_str(r"\textasciitilde{}"),
            '^' => out.push_str(r"\textasciicircum{}"),
            'µ' => out.push_str(r"\textmu{}"),
            '×' => out.push_str(r"$\times$"),
            '–' => out.push_str("--"),
            c => out.push(c),
        }
    }
    out
}

/// A `\label` key: letters, digits and dashes only.
fn label(parts: &[&str]) -> String {
    let joined = parts.join("-");
    joined
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' })
        .collect()
}

/// One row: target, metric, unit, n, median, interval, ratio to native.
/// `†` marks an interval below 95% coverage, `*` a ratio of medians.
fn row(m: &MetricSummary) -> String {
    let (metric, scale) = display(&m.metric);
    let unit = if m.unit == "bytes" { "MiB" } else { m.unit.as_str() };
    let low_coverage = if m.median_ci_coverage < crate::stats::CONFIDENCE {
        r"$^\dagger$"
    } else {
        ""
    };
    let ratio = match &m.vs_native {
        Some(r) => format!(
            r"{}$\times$ [{}, {}]{}",
            number(r.value),
            number(r.low),
            number(r.high),
            if r.paired { "" } else { "$^*$" }
        ),
        None => "--".to_string(),
    };
    format!(
        "    {} & {} & {} & {} & {} & [{}, {}]{low_coverage} & {ratio} \\\\\n",
        escape(&m.target),
        escape(&metric),
        escape(unit),
        m.n,
        number(m.median / scale),
        number(m.median_low / scale),
        number(m.median_high / scale),
    )
}

/// The table of one workload's metrics.
fn workload_table(summary: &RunSummary, workload: WorkloadKind, tcg: bool) -> String {
    let metrics: Vec<&MetricSummary> = summary.metrics.iter().filter(|m| m.workload == workload).collect();
    let mut out = String::from("\\begin{table}[htbp]\n  \\centering\n");
    out.push_str(&format!(
        "  \\caption{{vmbench, scenario \\texttt{{{}}}, workload \\texttt{{{workload}}}: medians with their 95\\,\\% confidence intervals{}.}}\n",
        escape(&summary.scenario),
        if tcg { "; VMs under TCG (emulated CPU)" } else { "" }
    ));
    out.push_str(&format!(
        "  \\label{{tab:{}}}\n",
        label(&["vmbench", &summary.scenario, workload.as_str()])
    ));
    out.push_str("  \\begin{tabular}{lllrrll}\n    \\toprule\n");
    out.push_str("    Target & Metric & Unit & $n$ & Median & 95\\,\\% CI & vs native [95\\,\\% CI] \\\\\n    \\midrule\n");
    for (i, m) in metrics.iter().enumerate() {
        if i > 0 && metrics[i - 1].target != m.target {
            out.push_str("    \\addlinespace\n");
        }
        out.push_str(&row(m));
    }
    out.push_str("    \\bottomrule\n  \\end{tabular}\n");
    let mut notes = vec![
        "Median: of the measured repetitions; CI: the exact distribution-free interval of the median. vs native: median of \
         the per-round ratios against the native target, above 1 = costs more (slower or less throughput)."
            .to_string(),
    ];
    if metrics.iter().any(|m| m.median_ci_coverage < crate::stats::CONFIDENCE) {
        notes.push("$^\\dagger$ fewer than 6 samples: the interval is [min, max], below 95\\,\\% coverage.".into());
    }
    if metrics.iter().any(|m| m.vs_native.is_some_and(|r| !r.paired)) {
        notes.push("$^*$ ratio of the two medians: the targets lack values for the same repetitions.".into());
    }
    out.push_str(&format!("  \\par\\smallskip\\footnotesize {}\n", notes.join(" ")));
    out.push_str("\\end{table}\n");
    out
}

/// The whole file: a comment saying where it came from and what it needs,
/// then one table per workload, in the run's order.
pub fn render(summary: &RunSummary, workloads: &[WorkloadKind], tcg: bool) -> String {
    let mut out = format!(
        "% vmbench summary of run {} (scenario {}), started {}{}.\n\
         % Needs \\usepackage{{booktabs}}; \\input this file where the tables go.\n",
        summary.run_id,
        summary.scenario,
        summary.started_at,
        if summary.incomplete {
            ", an incomplete run: the numbers cover only the trials that finished"
        } else {
            ""
        }
    );
    for w in workloads.iter().filter(|w| summary.metrics.iter().any(|m| m.workload == **w)) {
        out.push('\n');
        out.push_str(&workload_table(summary, *w, tcg));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_characters_are_escaped() {
        assert_eq!(
            escape(r"a_b & 50% $x #1 {y} ~ ^ \ 3 µs ×2 –"),
            r"a\_b \& 50\% \$x \#1 \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{} 3 \textmu{}s $\times$2 --"
        );
        assert_eq!(label(&["vmbench", "my scenario_1", "boot"]), "vmbench-my-scenario-1-boot");
    }

    #[test]
    fn one_booktabs_table_per_workload_with_intervals_and_ratios() {
        let run = crate::compare::tests::run(1.0, 5);
        let summary = crate::report::summary::build(&run.record, &run.samples);
        let tex = render(&summary, &[WorkloadKind::Boot, WorkloadKind::Cpu], true);
        assert_eq!(tex.matches("\\begin{table}").count(), 1, "no table for a workload without metrics");
        for rule in ["\\toprule", "\\midrule", "\\bottomrule"] {
            assert_eq!(tex.matches(rule).count(), 1, "{rule}");
        }
        assert!(!tex.contains('|'), "booktabs: no vertical rules");
        let vm = summary.metrics.iter().find(|m| m.target == "vm").unwrap();
        let ratio = vm.vs_native.unwrap();
        let expected = format!(
            "    vm & ready\\_ms & ms & 5 & {} & [{}, {}]$^\\dagger$ & {}$\\times$ [{}, {}] \\\\\n",
            number(vm.median),
            number(vm.median_low),
            number(vm.median_high),
            number(ratio.value),
            number(ratio.low),
            number(ratio.high)
        );
        assert!(tex.contains(&expected), "{tex}");
        assert!(
            tex.contains("    native & ready\\_ms & ms & 5 &") && tex.contains("& -- \\\\\n"),
            "{tex}"
        );
        assert!(tex.contains("\\addlinespace"), "targets are set apart");
        assert!(tex.contains("\\label{tab:vmbench-s-boot}") && tex.contains("VMs under TCG"));
        assert!(tex.contains("$^\\dagger$ fewer than 6 samples"));
        // Every brace opened is closed.
        assert_eq!(tex.matches('{').count(), tex.matches('}').count());
    }
}
