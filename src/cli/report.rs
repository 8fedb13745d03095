//! `vmbench report RUN_DIR`: re-render reports from a run's files alone.

use std::path::PathBuf;

/// The report files, as `--format` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ReportFormat {
    /// summary.json: every statistic, for scripts and `history`.
    Json,
    /// samples.csv: one row per sample and metric.
    Csv,
    /// report.md: the summary and charts as Markdown.
    Md,
    /// report.html: one self-contained page.
    Html,
    /// summary.tex: booktabs tables of the summary, one per workload.
    Tex,
}

impl ReportFormat {
    /// The name the report formats know themselves by.
    fn name(self) -> String {
        clap::ValueEnum::to_possible_value(&self)
            .expect("no format is skipped")
            .get_name()
            .to_string()
    }
}

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run directory or a baseline name.
    pub run: String,
    /// Formats to write, comma-separated. Default: all.
    #[arg(long, value_enum, value_delimiter = ',')]
    pub format: Vec<ReportFormat>,
    /// Templates directory; templates missing there come from vmbench itself.
    #[arg(long, default_value = "report-templates")]
    pub templates: PathBuf,
    #[command(flatten)]
    pub results: super::ResultsDir,
}

pub fn exec(args: ReportArgs) -> anyhow::Result<i32> {
    let dir = match crate::compare::baseline::resolve(&args.run, &args.results.results_dir).and_then(|d| crate::rundir::load(&d).map(|_| d))
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    };
    let names: Vec<String> = args.format.iter().map(|f| f.name()).collect();
    let written = crate::publish::write_all(&dir, &names, &args.templates)?;
    for file in written {
        println!("{}", dir.join(file).display());
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_report_format_has_a_flag_value_and_every_value_a_format() {
        let known: Vec<&str> = crate::report::formats::all().iter().map(|f| f.name()).collect();
        let values: Vec<String> = <ReportFormat as clap::ValueEnum>::value_variants()
            .iter()
            .map(|f| f.name())
            .collect();
        assert_eq!(values, known);
    }
}
