//! The CI recipes in docs/ stay runnable: docs/github-workflow.yml parses as
//! YAML, every vmbench command in it and in docs/ci.md parses with vmbench's
//! own command line, and the workflow checks and exports the run it just
//! made, not the stored baseline.

use clap::Parser;
use std::path::Path;
use vmbench::cli::{Cli, Command};
use yaml_rust2::{Yaml, YamlLoader};

/// What `$RUN_DIR` stands for when a command is parsed.
const RUN_DIR: &str = "results/boot-20261125T150102Z";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

/// A shell line's words up to the first operator (`>`, `|`, `;`, `&&`),
/// with quotes removed; GitHub expressions (`${{ ... }}`) become one word.
fn words(line: &str) -> Vec<String> {
    let mut line = line.replace("$RUN_DIR", RUN_DIR);
    while let Some(start) = line.find("${{") {
        let end = line[start..].find("}}").map(|e| start + e + 2).expect("closed expression");
        line.replace_range(start..end, "EXPR");
    }
    let (mut out, mut word, mut quote, mut in_word) = (Vec::new(), String::new(), None, false);
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some('"'), '\\') => word.extend(chars.next()),
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                in_word = true;
            }
            (None, c) if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            (None, '>' | '|' | ';') => break,
            (None, '&') if chars.peek() == Some(&'&') => break,
            (None, c) => {
                word.push(c);
                in_word = true;
            }
        }
    }
    assert!(quote.is_none(), "unclosed quote in {line}");
    if in_word {
        out.push(word);
    }
    out
}

/// The vmbench invocation in `line`, if any: its arguments after the binary.
fn vmbench_args(line: &str) -> Option<Vec<String>> {
    let words = words(line);
    let at = words.iter().position(|w| w == "vmbench" || w.ends_with("/vmbench"))?;
    Some(words[at + 1..].to_vec())
}

fn parse(args: &[String], origin: &str) -> Cli {
    let argv = std::iter::once("vmbench".to_string()).chain(args.iter().cloned());
    Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{origin}: `vmbench {}` does not parse:\n{e}", args.join(" ")))
}

fn steps(workflow: &Yaml) -> Vec<&Yaml> {
    let jobs = workflow["jobs"].as_hash().expect("jobs");
    jobs.values().flat_map(|job| job["steps"].as_vec().expect("steps")).collect()
}

#[test]
fn the_github_workflow_parses_and_so_does_every_vmbench_command_in_it() {
    let text = read("docs/github-workflow.yml");
    let docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    let workflow = &docs[0];
    assert!(!workflow["on"]["push"].is_badvalue() && !workflow["on"]["pull_request"].is_badvalue());
    let mut commands = Vec::new();
    for step in steps(workflow) {
        let Some(run) = step["run"].as_str() else { continue };
        for line in run.lines() {
            let Some(args) = vmbench_args(line) else { continue };
            let name = step["name"].as_str().unwrap_or("a step").to_string();
            if line.trim_start().starts_with("sudo") {
                assert!(
                    line.contains("sudo --preserve-env=GITHUB_STEP_SUMMARY,GITHUB_OUTPUT "),
                    "{name}: sudo would drop the job summary and the step outputs: {line}"
                );
            }
            commands.push((name.clone(), parse(&args, &name).command));
        }
    }
    let count = |pred: fn(&Command) -> bool| commands.iter().filter(|(_, c)| pred(c)).count();
    assert_eq!(count(|c| matches!(c, Command::Run(_))), 2, "a pull request's run and main's");
    // Whatever is checked, compared and exported is this job's run, named
    // by the run step's output, never the stored baseline.
    let mut judged = 0;
    for (name, command) in &commands {
        let run = match command {
            Command::Check(a) => &a.run,
            Command::Export(a) => &a.run,
            Command::Compare(a) => {
                assert_eq!(a.base, "main", "{name}");
                &a.new
            }
            _ => continue,
        };
        assert_eq!(run, RUN_DIR, "{name} must use this run's directory");
        judged += 1;
    }
    assert_eq!(judged, 3, "compare, check and export");
}

#[test]
fn the_dashboard_steps_read_the_files_the_export_writes_with_the_matching_tool() {
    let text = read("docs/github-workflow.yml");
    let workflow = &YamlLoader::load_from_str(&text).unwrap()[0];
    let export = steps(workflow)
        .into_iter()
        .filter_map(|s| s["run"].as_str())
        .find(|r| r.contains(" export "))
        .expect("an export step");
    let args = vmbench_args(export).unwrap();
    let base = args
        .windows(2)
        .find(|w| w[0] == "--output")
        .map(|w| w[1].clone())
        .expect("--output BASE");
    assert!(!args.iter().any(|a| a == "--direction"), "both directions, one file each");
    let mut tools = Vec::new();
    for step in steps(workflow) {
        if !step["uses"]
            .as_str()
            .is_some_and(|u| u.starts_with("benchmark-action/github-action-benchmark@"))
        {
            continue;
        }
        let with = &step["with"];
        let (tool, file) = (with["tool"].as_str().unwrap(), with["output-file-path"].as_str().unwrap());
        let expected = match tool {
            "customSmallerIsBetter" => format!("{base}-smaller.json"),
            "customBiggerIsBetter" => format!("{base}-bigger.json"),
            other => panic!("unexpected tool {other}"),
        };
        assert_eq!(file, expected, "{tool}");
        assert!(
            step["if"].as_str().unwrap().contains(&format!("hashFiles('{file}')")),
            "a direction without metrics has no file: its step must be skipped"
        );
        tools.push(tool.to_string());
    }
    tools.sort();
    assert_eq!(tools, ["customBiggerIsBetter", "customSmallerIsBetter"]);
}

#[test]
fn every_vmbench_command_in_the_ci_guide_parses() {
    let text = read("docs/ci.md");
    let mut in_code = false;
    let mut parsed = 0;
    for (n, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let command = line.trim_start().trim_start_matches("- ");
        if !in_code || !(command.starts_with("vmbench ") || command.starts_with("./target/release/vmbench ")) {
            continue;
        }
        parse(&vmbench_args(command).unwrap(), &format!("docs/ci.md:{}", n + 1));
        parsed += 1;
    }
    assert!(parsed >= 6, "found only {parsed} commands in docs/ci.md");
}

#[test]
fn shell_words_are_split_as_a_shell_would() {
    assert_eq!(
        words(r#"sudo -E ./vmbench run "a b.toml" --label 'x y' --n "q\"uote" > out.txt"#),
        ["sudo", "-E", "./vmbench", "run", "a b.toml", "--label", "x y", "--n", "q\"uote"]
    );
    assert_eq!(words("vmbench check \"$RUN_DIR\" && echo done"), ["vmbench", "check", RUN_DIR]);
    assert_eq!(words("--label \"pr-${{ github.event.number }}\""), ["--label", "pr-EXPR"]);
}
