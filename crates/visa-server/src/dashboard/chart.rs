//! The dashboard's bar charts' one frame: a fixed plot area (scaled down on phones by the
//! stylesheet), its baseline, and axes a person can read — the time the first and last bars
//! stand for under the baseline, and the value the tallest bar reaches above the plot.

use maud::{Markup, html};

pub const WIDTH: i64 = 600;
/// The bars' height at most.
pub const PLOT: i64 = 100;
/// Room above the plot for the value axis' label.
const TOP: i64 = 16;
/// Room below the plot for the time axis' labels.
const BOTTOM: i64 = 18;

/// The y at which a bar `height` tall starts.
pub fn bar_y(height: i64) -> i64 {
    TOP + PLOT - height
}

/// What the axes say: when the first and the last bar are, and what the tallest bar is worth.
pub struct Axes<'a> {
    pub first: &'a str,
    pub last: &'a str,
    pub max: String,
}

/// An SVG chart of `bars` (drawn with `bar_y`) with its baseline and labelled axes.
pub fn frame(label: &str, axes: &Axes<'_>, bars: Markup) -> Markup {
    let height = TOP + PLOT + BOTTOM;
    html! {
        svg role="img" viewBox={ "0 0 " (WIDTH) " " (height) } width=(WIDTH) height=(height) aria-label=(label) {
            text.axis x="0" y="12" { "max " (axes.max) }
            (bars)
            line x1="0" y1=(TOP + PLOT) x2=(WIDTH) y2=(TOP + PLOT) stroke="#888" {}
            text.axis x="0" y=(height - 4) { (axes.first) }
            text.axis x=(WIDTH) y=(height - 4) text-anchor="end" { (axes.last) }
        }
    }
}
