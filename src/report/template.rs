//! Templates from `report-templates/`, rendered with minijinja. A template
//! found in the templates directory wins, so the look can change without
//! touching Rust; the copies built into vmbench make it work anywhere.

use super::formats::Input;
use anyhow::{Context, Result};
use minijinja::{context, Environment};

const BUILT_IN: &[(&str, &str)] = &[
    ("report.md.j2", include_str!("../../report-templates/report.md.j2")),
    ("report.html.j2", include_str!("../../report-templates/report.html.j2")),
];

/// A chart's SVG as it goes inline into the HTML report.
#[derive(Debug, serde::Serialize)]
struct InlineSvg {
    title: String,
    png: String,
    svg: String,
}

/// The run's SVG charts, read back for inlining (without an XML prolog,
/// which is not allowed inside HTML).
fn inline_svgs(input: &Input) -> Vec<InlineSvg> {
    input
        .charts
        .iter()
        .filter_map(|c| {
            let text = std::fs::read_to_string(input.dir.join(&c.svg)).ok()?;
            let start = text.find("<svg")?;
            Some(InlineSvg {
                title: c.title.clone(),
                png: c.png.clone(),
                svg: text[start..].to_string(),
            })
        })
        .collect()
}

pub fn render(name: &str, input: &Input) -> Result<String> {
    let source = match std::fs::read_to_string(input.templates.join(name)) {
        Ok(text) => text,
        Err(_) => BUILT_IN
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, t)| t.to_string())
            .context("no such template")?,
    };
    let mut env = Environment::new();
    env.add_filter("num", |v: f64| crate::report::table::number(v));
    env.add_filter("mib", |v: f64| format!("{:.1}", v / (1024.0 * 1024.0)));
    // MiB with the precision of small sizes kept (an image layer of a few KiB).
    env.add_filter("num_mib", |v: f64| crate::report::table::number(v / (1024.0 * 1024.0)));
    env.add_filter("pvalue", crate::report::p_text);
    env.add_filter("step", |text: String| crate::report::table::layer_step(&text));
    // A metric value in its display unit: bytes as MiB, the rest as recorded.
    env.add_filter("val", |v: f64, unit: String| {
        if unit == "bytes" {
            format!("{:.1}", v / (1024.0 * 1024.0))
        } else {
            crate::report::table::number(v)
        }
    });
    env.add_template(name, &source)
        .with_context(|| format!("parsing template {name}"))?;
    let template = env.get_template(name)?;
    let workloads: Vec<&str> = input.record.scenario.workloads.iter().map(|w| w.as_str()).collect();
    Ok(template.render(context! {
        run => input.record,
        summary => input.summary,
        workloads => workloads,
        tcg => input.record.targets.iter().any(|t| t.accel.as_deref() == Some("tcg")),
        charts => input.charts,
        svgs => inline_svgs(input),
        matrices => crate::report::ratio_matrices(&input.summary.pair_ratios, &input.record.scenario.workloads),
        bootstrap => crate::report::BOOTSTRAP_RESAMPLES,
    })?)
}
