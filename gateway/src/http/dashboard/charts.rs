//! Charts as inline SVG, drawn on the server: the dashboard needs no
//! JavaScript. Bars scale to the largest value; each bar carries a
//! `<title>` with its day and value, which browsers show on hover (and
//! screen readers read).

/// A bar chart of `points` (label, value; `None` draws no bar), with
/// values shown by `format`. The SVG scales to its container's width.
pub fn bars(
    title: &str,
    points: &[(String, Option<f64>)],
    format: impl Fn(f64) -> String,
) -> String {
    const W: f64 = 600.0;
    const H: f64 = 160.0;
    const TOP: f64 = 20.0;
    const BOTTOM: f64 = 22.0;
    let max = points
        .iter()
        .filter_map(|(_, v)| *v)
        .fold(0.0_f64, f64::max);
    let n = points.len().max(1) as f64;
    let slot = W / n;
    let plot = H - TOP - BOTTOM;
    let mut svg = format!(
        "<svg class=\"chart\" viewBox=\"0 0 {W} {H}\" width=\"100%\" role=\"img\" aria-label=\"{t}\" \
         preserveAspectRatio=\"xMidYMid meet\"><text x=\"0\" y=\"13\" class=\"chart-title\">{t}</text>\
         <line x1=\"0\" y1=\"{base}\" x2=\"{W}\" y2=\"{base}\" class=\"axis\"/>",
        t = escape(title),
        base = H - BOTTOM,
    );
    if max > 0.0 {
        svg.push_str(&format!(
            "<text x=\"{W}\" y=\"13\" text-anchor=\"end\" class=\"chart-max\">max {}</text>",
            escape(&format(max))
        ));
    }
    let label_every = (points.len() / 7).max(1);
    for (i, (label, value)) in points.iter().enumerate() {
        let x = i as f64 * slot;
        if let Some(v) = value {
            let h = if max > 0.0 { v / max * plot } else { 0.0 };
            svg.push_str(&format!(
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" class=\"bar\"><title>{}: {}</title></rect>",
                x + slot * 0.15,
                H - BOTTOM - h,
                slot * 0.7,
                h.max(0.5),
                escape(label),
                escape(&format(*v))
            ));
        }
        if i % label_every == 0 {
            let short = label.get(5..).unwrap_or(label);
            svg.push_str(&format!(
                "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\" class=\"tick\">{}</text>",
                x + slot / 2.0,
                H - 6.0,
                escape(short)
            ));
        }
    }
    svg.push_str("</svg>");
    svg
}

use crate::promptops::eval::html_escape as escape;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value_and_escape_labels() {
        let svg = bars(
            "Requests <per day>",
            &[
                ("2026-11-01".into(), Some(2.0)),
                ("2026-11-02".into(), Some(4.0)),
                ("x".into(), None),
            ],
            |v| format!("{v:.0}"),
        );
        assert!(svg.contains("Requests &lt;per day&gt;"));
        assert_eq!(svg.matches("<rect").count(), 2);
        assert!(
            svg.contains("height=\"118.0\""),
            "the largest bar fills the plot: {svg}"
        );
        assert!(svg.contains("height=\"59.0\""));
        assert!(svg.contains("<title>2026-11-02: 4</title>"));
    }
}
