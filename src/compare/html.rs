//! `vmbench compare --format html`: one self-contained page (styles inline,
//! every chart an inline SVG, no script, nothing fetched), in the manner of
//! criterion's comparison pages: per metric both runs' samples on one axis
//! with their medians, and the change with its interval, p-values and
//! verdict; regressions first.

use super::{Comparison, Key, Row, Verdict};
use crate::rundir::Run;
use crate::xml::escape;
use anyhow::{anyhow, Result};
use plotters::prelude::*;
use std::collections::BTreeMap;

/// The page for a comparison of `base` and `new` (the runs it was made of,
/// for their samples).
pub struct HtmlComparison<'a> {
    pub base: &'a Run,
    pub new: &'a Run,
}

impl crate::output::Render<Comparison> for HtmlComparison<'_> {
    fn name(&self) -> &'static str {
        "html"
    }

    fn render(&self, c: &Comparison) -> Result<Vec<u8>> {
        crate::charts::ensure_font()?;
        let (base, new) = (super::values(self.base), super::values(self.new));
        let mut rows: Vec<&Row> = c.rows.iter().collect();
        rows.sort_by_key(|r| match r.verdict {
            Verdict::Regressed => 0,
            Verdict::Improved => 1,
            Verdict::NoChange => 2,
        });
        let mut body = String::new();
        for row in rows {
            body.push_str(&row_html(row, &base, &new)?);
        }
        Ok(page(c, &body).into_bytes())
    }
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;color:#222}table{border-collapse:collapse}\
td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:right;vertical-align:middle;white-space:nowrap}\
td.m,th.m{text-align:left}.REGRESSED{color:#b00;font-weight:bold}.improved{color:#070;font-weight:bold}\
.env{background:#fee;border:1px solid #b00;padding:8px}.note{color:#555;max-width:70em}";

fn page(c: &Comparison, rows: &str) -> String {
    let env = if c.environment_changes.is_empty() {
        String::new()
    } else {
        let items: String = c.environment_changes.iter().map(|e| format!("<li>{}</li>", escape(e))).collect();
        format!("<div class=\"env\"><b>The runs' environments differ</b>; their numbers may not be comparable:<ul>{items}</ul></div>")
    };
    let only = |what: &str, keys: &[String]| {
        if keys.is_empty() {
            String::new()
        } else {
            format!("<p class=\"note\">Only in {what}: {}</p>", escape(&keys.join(", ")))
        }
    };
    let count = |v: Verdict| c.rows.iter().filter(|r| r.verdict == v).count();
    format!(
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>vmbench compare</title><style>{STYLE}</style></head><body>\n\
         <h1>vmbench compare</h1>\n<p>base: <code>{}</code><br>new: <code>{}</code></p>\n{env}\n\
         <p><b>{}</b> regressed, <b>{}</b> improved, {} no change, of {} metrics.</p>\n\
         <p class=\"note\">A change counts when its median moved by more than {}% and the permutation test of the difference of \
         medians, Holm-adjusted over all {} rows, is below {}. The interval is a 95% bootstrap interval of the change of the \
         medians. In each chart, grey dots are the base run's samples, coloured dots the new run's, black ticks their medians.</p>\n\
         {}{}<table>\n<tr><th class=\"m\">target · workload · metric</th><th>samples: base (top), new</th><th>base median</th>\
         <th>new median</th><th>change [95% CI]</th><th>p</th><th>p (Holm)</th><th>verdict</th></tr>\n{rows}</table>\n</body></html>\n",
        escape(&c.base),
        escape(&c.new),
        count(Verdict::Regressed),
        count(Verdict::Improved),
        count(Verdict::NoChange),
        c.rows.len(),
        c.options.threshold_pct,
        c.rows.len(),
        c.options.alpha,
        only("the base run", &c.only_in_base),
        only("the new run", &c.only_in_new),
    )
}

fn row_html(row: &Row, base: &BTreeMap<Key, Vec<f64>>, new: &BTreeMap<Key, Vec<f64>>) -> Result<String> {
    let key = (row.target.clone(), row.workload.clone(), row.metric.clone());
    let empty = Vec::new();
    let svg = strip(base.get(&key).unwrap_or(&empty), new.get(&key).unwrap_or(&empty))?;
    let verdict = row.verdict.as_str();
    Ok(format!(
        "<tr><td class=\"m\">{} · {} · {}</td><td>{svg}</td><td>{}</td><td>{}</td><td>{:+.1}% [{:+.1}, {:+.1}]</td>\
         <td>{}</td><td>{}</td><td class=\"{verdict}\">{verdict}</td></tr>\n",
        escape(&row.target),
        escape(&row.workload),
        escape(&row.metric),
        value(row.base_median, &row.unit),
        value(row.new_median, &row.unit),
        row.change_pct,
        row.change_low_pct,
        row.change_high_pct,
        super::format::p_cell(row.p_value),
        super::format::p_cell(row.p_adjusted),
    ))
}

fn value(v: f64, unit: &str) -> String {
    format!("{} {}", crate::report::table::number(v), escape(unit))
}

/// Both runs' samples on one horizontal axis (in the metric's unit, given
/// beside it), base above new, medians marked.
fn strip(base: &[f64], new: &[f64]) -> Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (380, 84)).into_drawing_area();
        let err = |e: DrawingAreaErrorKind<std::io::Error>| anyhow!("drawing a comparison strip: {e}");
        root.fill(&WHITE).map_err(err)?;
        let all = base.iter().chain(new).copied();
        let (lo, hi) = all.fold((f64::MAX, f64::MIN), |(a, b), v| (a.min(v), b.max(v)));
        if lo > hi {
            return Ok(String::new());
        }
        let pad = ((hi - lo) * 0.08).max(hi.abs() * 0.01).max(1e-12);
        let mut chart = ChartBuilder::on(&root)
            .margin(4)
            .margin_left(16)
            .margin_right(16)
            .x_label_area_size(18)
            .build_cartesian_2d(lo - pad..hi + pad, -0.6f64..1.6)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_y_axis()
            .x_labels(4)
            .x_label_formatter(&|x| crate::report::table::number(*x))
            .label_style(("sans-serif", 11))
            .draw()
            .map_err(err)?;
        for (y, values, colour) in [(1.0, base, RGBColor(150, 150, 150)), (0.0, new, crate::charts::colour(0))] {
            chart
                .draw_series(values.iter().map(|&v| Circle::new((v, y), 3, colour.mix(0.7).filled())))
                .map_err(err)?;
            if let Some(m) = crate::stats::median(values) {
                chart
                    .draw_series(std::iter::once(PathElement::new(
                        vec![(m, y - 0.45), (m, y + 0.45)],
                        BLACK.stroke_width(2),
                    )))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::Render;

    #[test]
    fn a_page_shows_every_row_with_its_samples_regressions_first() {
        let (base, new) = (crate::compare::tests::run(1.0, 8), crate::compare::tests::run(1.6, 8));
        let c = crate::compare::compare(&base, &new, "base<run>", "new", crate::compare::Options::default());
        assert!(
            c.regressions() > 0 && c.rows.iter().any(|r| r.verdict != Verdict::Regressed),
            "{c:#?}"
        );
        let page = crate::output::text(&HtmlComparison { base: &base, new: &new }, &c).unwrap();
        assert!(page.starts_with("<!DOCTYPE html>") && page.trim_end().ends_with("</html>"));
        assert_eq!(page.matches("<svg").count(), c.rows.len(), "one strip per row");
        assert!(page.contains("base&lt;run&gt;"), "names are escaped");
        assert!(
            !page.contains("<script") && !page.contains("src=\"http") && !page.contains("href=\"http"),
            "nothing runs or is fetched"
        );
        // Every regression is listed before the first row that is not one.
        let first_other = c
            .rows
            .iter()
            .filter(|r| r.verdict != Verdict::Regressed)
            .map(|r| r.verdict.as_str())
            .next()
            .unwrap();
        let last_regressed = page.rfind(">REGRESSED</td>").unwrap();
        assert!(last_regressed < page.find(&format!(">{first_other}</td>")).unwrap());
        // The strips hold every sample of both runs, each once.
        let samples: usize = c.rows.iter().map(|r| r.base_n + r.new_n).sum();
        assert_eq!(samples, page.matches("<circle").count());
        assert_eq!(HtmlComparison { base: &base, new: &new }.name(), "html");
    }
}
