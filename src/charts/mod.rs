//! Charts with plotters, one file per kind, each written as SVG (for HTML)
//! and PNG (for slides and Markdown). Text is drawn with a TrueType font
//! from the system (DejaVu Sans by default; `VMBENCH_FONT` picks another).

pub mod history;

use anyhow::{bail, Result};
use std::sync::OnceLock;

const FONTS: &[&str] = &[
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers the chart font once per process.
pub fn ensure_font() -> Result<()> {
    static REGISTERED: OnceLock<Result<(), String>> = OnceLock::new();
    let result = REGISTERED.get_or_init(|| {
        let candidates: Vec<String> = std::env::var("VMBENCH_FONT")
            .into_iter()
            .chain(FONTS.iter().map(|s| s.to_string()))
            .collect();
        let Some(bytes) = candidates.iter().find_map(|p| std::fs::read(p).ok()) else {
            return Err(format!(
                "no font for charts (looked at {}); install fonts-dejavu-core or set VMBENCH_FONT",
                candidates.join(", ")
            ));
        };
        // plotters keeps the font for the life of the process.
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", plotters::style::FontStyle::Normal, bytes)
            .map_err(|_| "the chart font could not be read".to_string())
    });
    match result {
        Ok(()) => Ok(()),
        Err(e) => bail!("{e}"),
    }
}

/// Distinct colours for targets, in order.
pub fn colour(i: usize) -> plotters::style::RGBColor {
    const PALETTE: [(u8, u8, u8); 8] = [
        (31, 119, 180),
        (255, 127, 14),
        (44, 160, 44),
        (214, 39, 40),
        (148, 103, 189),
        (140, 86, 75),
        (227, 119, 194),
        (127, 127, 127),
    ];
    let (r, g, b) = PALETTE[i % PALETTE.len()];
    plotters::style::RGBColor(r, g, b)
}
