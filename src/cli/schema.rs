//! `vmbench schema scenario|run|summary`: the JSON Schema of a scenario
//! file, of `run.json` or of `summary.json`, generated from the types vmbench
//! reads and writes them with (schemars), so it cannot fall behind them.
//! The same schemas are in docs/schema/ (a test keeps them current); editors
//! with Taplo use the scenario one to complete and check keys.

/// Which file's schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    /// A scenario file (TOML).
    Scenario,
    /// `run.json` of a run directory.
    Run,
    /// `summary.json` of a run directory.
    Summary,
}

#[derive(Debug, clap::Args)]
pub struct SchemaArgs {
    #[arg(value_enum)]
    pub which: Which,
}

/// The schema, as pretty JSON with a final newline.
pub fn text(which: Which) -> String {
    let schema = match which {
        Which::Scenario => crate::scenario::schema(),
        Which::Run => serde_json::to_value(schemars::schema_for!(crate::rundir::RunRecord)).expect("a schema is JSON"),
        Which::Summary => serde_json::to_value(schemars::schema_for!(crate::report::summary::RunSummary)).expect("a schema is JSON"),
    };
    serde_json::to_string_pretty(&schema).expect("a schema is JSON") + "\n"
}

pub fn exec(args: SchemaArgs) -> anyhow::Result<i32> {
    super::write_or_print(None, text(args.which).as_bytes())?;
    Ok(0)
}
