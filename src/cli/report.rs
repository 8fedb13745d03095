//! `vmbench report RUN_DIR`: re-render reports from a run's files alone.

use std::path::PathBuf;

#[derive(Debug, clap::Args)]
pub struct ReportArgs {
    /// A run directory or a baseline name.
    pub run: String,
    /// Formats to write (comma-separated): json (summary.json), csv (samples.csv), md (report.md). Default: all.
    #[arg(long, value_delimiter = ',')]
    pub format: Vec<String>,
    /// Templates directory; templates missing there come from vmbench itself.
    #[arg(long, default_value = "report-templates")]
    pub templates: PathBuf,
    #[command(flatten)]
    pub results: super::ResultsDir,
}

pub fn exec(args: ReportArgs) -> anyhow::Result<i32> {
    let known: Vec<&str> = crate::report::formats::all().iter().map(|f| f.name()).collect();
    if let Some(bad) = args.format.iter().find(|f| !known.contains(&f.as_str())) {
        eprintln!("error: --format {bad}: expected one of {}", known.join(", "));
        return Ok(super::EXIT_INPUT);
    }
    let dir = match crate::compare::baseline::resolve(&args.run, &args.results.results_dir).and_then(|d| crate::rundir::load(&d).map(|_| d))
    {
        Ok(dir) => dir,
        Err(e) => {
            eprintln!("error: {e:#}");
            return Ok(super::EXIT_INPUT);
        }
    };
    let written = crate::publish::write_all(&dir, &args.format, &args.templates)?;
    for file in written {
        println!("{}", dir.join(file).display());
    }
    Ok(0)
}
