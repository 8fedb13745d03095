//! The HTML report in a real browser: Debian's Chromium (installed by
//! scripts/setup.sh), headless, opens `report.html` of a real run from the
//! file system, with networking off. The page must load without errors and
//! its screenshot must show the charts, not a blank page.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

/// Whether a headless Chromium can run here. Not where it is missing (only
/// .ci/run installs it) or is Ubuntu's snap shim: then the test below says it
/// skips, unless `VMBENCH_REQUIRE_CHROMIUM=1` (set by .ci/run) makes that a
/// failure.
fn chromium_available() -> bool {
    let runs = Command::new("chromium").arg("--version").output();
    let real = runs
        .as_ref()
        .is_ok_and(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains("Chromium"));
    if !real {
        let why = match &runs {
            Err(e) => format!("cannot run chromium: {e}"),
            Ok(o) => format!(
                "`chromium --version` said: {}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            ),
        };
        assert!(
            std::env::var("VMBENCH_REQUIRE_CHROMIUM").as_deref() != Ok("1"),
            "VMBENCH_REQUIRE_CHROMIUM=1 but {why}"
        );
        eprintln!("skipped: no headless Chromium here ({why}); `apt-get install chromium` on Debian (.ci/run does); on Ubuntu the package is a snap");
    }
    real
}

/// Runs headless Chromium on `page` with a fresh profile; returns its stderr.
fn chromium(args: &[&str], page: &Path, profile: &Path) -> std::process::Output {
    Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()))
        .output()
        .expect("chromium runs (checked above)")
}

/// Pixels of the screenshot: how many are not white, and how many carry the
/// first chart colour (the first target's bars and points).
fn pixel_counts(png_path: &Path) -> (usize, usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(png_path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let (mut total, mut inked, mut chart_blue) = (0, 0, 0);
    for px in buf[..info.buffer_size()].chunks(channels) {
        let (r, g, b) = (px[0] as i32, px[1] as i32, px[2] as i32);
        total += 1;
        if r < 245 || g < 245 || b < 245 {
            inked += 1;
        }
        // vmbench's first chart colour, rgb(31, 119, 180), possibly blended.
        if (r - 31).abs() < 40 && (g - 119).abs() < 40 && (b - 180).abs() < 40 {
            chart_blue += 1;
        }
    }
    (total, inked, chart_blue)
}

#[test]
fn report_html_opens_in_chromium_with_its_charts_drawn_and_no_errors() {
    let _guard = serial();
    if !chromium_available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let scenario = write(tmp.path(), "html.toml", &three_targets("html", 2, 0, 60.0));
    let out = tmp.path().join("run");
    let result = run_in(tmp.path(), &["run", scenario.to_str().unwrap(), "--out", out.to_str().unwrap()]);
    assert_eq!(result.status.code(), Some(0), "{}", stderr(&result));
    let page = out.join("report.html");
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.matches("<svg").count() >= 3,
        "boot distribution, phases and footprint charts inline"
    );

    let shot = tmp.path().join("shot.png");
    let browser = chromium(
        &["--window-size=1280,2400", &format!("--screenshot={}", shot.display())],
        &page,
        &tmp.path().join("profile-1"),
    );
    let log = String::from_utf8_lossy(&browser.stderr).to_string();
    assert!(browser.status.success(), "{log}");
    // Page errors: a console message, a resource that failed to load, a
    // blocked or missing file. (D-Bus and GPU noise from a headless host is
    // not about the page.)
    for needle in ["CONSOLE", "Failed to load resource", "ERR_", "Uncaught"] {
        assert!(!log.contains(needle), "{needle} in Chromium's log:\n{log}");
    }
    let (total, inked, chart_blue) = pixel_counts(&shot);
    assert!(inked * 20 > total, "the page is nearly blank: {inked} of {total} pixels drawn");
    assert!(chart_blue > 2000, "the charts' colours are missing: {chart_blue} pixels");

    // The DOM Chromium built: the tables and the charts' own elements.
    let dom = chromium(&["--dump-dom"], &page, &tmp.path().join("profile-2"));
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(dom.contains("<h2>Methodology</h2>") && dom.contains("Workload <code>boot</code>"));
    assert!(dom.matches("<rect").count() > 20, "SVG shapes in the DOM");
}
