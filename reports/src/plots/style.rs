//! Colours and fonts every figure shares: DejaVu Sans embedded and registered once, the heatmap
//! colour scales and the qualitative series palette.

use std::sync::Once;

use plotters::prelude::*;
use plotters::style::FontStyle;

/// Font family name under which the embedded DejaVu Sans is registered.
pub const FONT: &str = "sans-serif";

static FONTS: Once = Once::new();

/// Registers the embedded DejaVu Sans (regular and bold) as [`FONT`]. Called by every drawing
/// function here; call it yourself before drawing with plotters directly.
pub fn register_fonts() {
    FONTS.call_once(|| {
        // Both fonts are valid TrueType files shipped inside the dejavu crate, so registration
        // cannot fail in practice; if it ever did, text would be missing but nothing would panic.
        let _ = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular());
        let _ = plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Colour scale of a heatmap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ColorMap {
    /// Sequential, dark blue to yellow (viridis-like): rates, distances.
    #[default]
    Viridis,
    /// Diverging, blue - white - red around the middle of the range: preferences around 50%.
    Diverging,
}
const PALETTE: [RGBColor; 8] = [
    RGBColor(55, 126, 184),
    RGBColor(228, 26, 28),
    RGBColor(77, 175, 74),
    RGBColor(152, 78, 163),
    RGBColor(255, 127, 0),
    RGBColor(166, 86, 40),
    RGBColor(247, 129, 191),
    RGBColor(120, 120, 120),
];

/// Colour of series `i` in bar charts (a fixed qualitative palette, cycling).
pub fn series_color(i: usize) -> RGBColor {
    PALETTE[i % PALETTE.len()]
}

fn lerp(a: (f64, f64, f64), b: (f64, f64, f64), t: f64) -> (f64, f64, f64) {
    (
        a.0 + (b.0 - a.0) * t,
        a.1 + (b.1 - a.1) * t,
        a.2 + (b.2 - a.2) * t,
    )
}

fn ramp(stops: &[(f64, f64, f64)], t: f64) -> RGBColor {
    let t = if t.is_nan() { 0.0 } else { t.clamp(0.0, 1.0) };
    let n = stops.len() - 1;
    let x = t * n as f64;
    let i = (x.floor() as usize).min(n - 1);
    let c = lerp(stops[i], stops[i + 1], x - i as f64);
    RGBColor(c.0 as u8, c.1 as u8, c.2 as u8)
}

/// Colour of value `v` on a colour map over `range`.
pub fn color_for(map: ColorMap, v: f64, range: (f64, f64)) -> RGBColor {
    let span = range.1 - range.0;
    let t = if span > 0.0 {
        (v - range.0) / span
    } else {
        0.5
    };
    match map {
        ColorMap::Viridis => ramp(
            &[
                (68.0, 1.0, 84.0),
                (59.0, 82.0, 139.0),
                (33.0, 145.0, 140.0),
                (94.0, 201.0, 98.0),
                (253.0, 231.0, 37.0),
            ],
            t,
        ),
        ColorMap::Diverging => ramp(
            &[
                (33.0, 102.0, 172.0),
                (146.0, 197.0, 222.0),
                (247.0, 247.0, 247.0),
                (244.0, 165.0, 130.0),
                (178.0, 24.0, 43.0),
            ],
            t,
        ),
    }
}

pub(crate) fn text_color_on(bg: RGBColor) -> RGBColor {
    let lum = 0.299 * bg.0 as f64 + 0.587 * bg.1 as f64 + 0.114 * bg.2 as f64;
    if lum < 128.0 {
        WHITE
    } else {
        BLACK
    }
}

pub(crate) fn font(size: f64) -> TextStyle<'static> {
    (FONT, size).into_font().color(&BLACK)
}

pub(crate) fn bold(size: f64) -> TextStyle<'static> {
    (FONT, size)
        .into_font()
        .style(FontStyle::Bold)
        .color(&BLACK)
}

pub(crate) fn text_width(s: &str, size: f64) -> u32 {
    // DejaVu Sans averages about 0.6 em per character; exact measurement is not worth a backend.
    (s.chars().count() as f64 * size * 0.6).ceil() as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_cover_the_range() {
        assert_eq!(
            color_for(ColorMap::Diverging, 50.0, (0.0, 100.0)),
            RGBColor(247, 247, 247)
        );
        assert_eq!(
            color_for(ColorMap::Viridis, -5.0, (0.0, 100.0)),
            RGBColor(68, 1, 84)
        );
        assert_eq!(
            color_for(ColorMap::Viridis, f64::NAN, (0.0, 100.0)),
            RGBColor(68, 1, 84)
        );
    }
}
