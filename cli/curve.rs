//! Learning curves: a trial's reports of its objective metric against report number, as
//! a ratatui chart (drawn by `watch`) or as lines of text (printed by `get EXP TRIAL`).

use kestrel_core::MetricLog;
use ratatui::buffer::Buffer;
use ratatui::layout::Rect;
use ratatui::symbols::Marker;
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Widget};

/// The numeric reports of `metric`, oldest first, as (report number from 1, value).
pub fn points(logs: &[MetricLog], metric: &str) -> Vec<(f64, f64)> {
    logs.iter()
        .filter(|l| l.name == metric)
        .filter_map(|l| l.number())
        .enumerate()
        .map(|(i, v)| ((i + 1) as f64, v))
        .collect()
}

/// A number short enough for an axis label.
pub fn label(x: f64) -> String {
    if x != 0.0 && (x.abs() < 1e-3 || x.abs() >= 1e5) {
        format!("{x:.3e}")
    } else {
        format!("{x:.4}")
    }
}

/// The y range of `points` with a little room above and below (0..1 when empty).
pub fn y_bounds(points: &[(f64, f64)]) -> [f64; 2] {
    let lo = points.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let hi = points.iter().map(|p| p.1).fold(f64::NEG_INFINITY, f64::max);
    if !lo.is_finite() {
        return [0.0, 1.0];
    }
    let pad = ((hi - lo) * 0.05).max(1e-9);
    [lo - pad, hi + pad]
}

/// A chart of one curve titled `title` (`points` from [`points`]).
pub fn chart<'a>(title: String, metric: &'a str, points: &'a [(f64, f64)]) -> Chart<'a> {
    let n = points.len().max(1) as f64;
    let [lo, hi] = y_bounds(points);
    let data = Dataset::default()
        .name(metric)
        .marker(Marker::Braille)
        .graph_type(GraphType::Line)
        .data(points);
    Chart::new(vec![data])
        .block(Block::bordered().title(title))
        .x_axis(Axis::default().bounds([1.0, n.max(2.0)]).labels([
            "1".to_string(),
            if points.is_empty() {
                "no reports".to_string()
            } else {
                format!("{n:.0} reports")
            },
        ]))
        .y_axis(
            Axis::default()
                .bounds([lo, hi])
                .labels([label(lo), label(hi)]),
        )
}

/// `chart` drawn into `width` x `height` cells, as lines of text.
pub fn text(chart: Chart<'_>, width: u16, height: u16) -> Vec<String> {
    let area = Rect::new(0, 0, width, height);
    let mut buf = Buffer::empty(area);
    chart.render(area, &mut buf);
    (0..height)
        .map(|y| {
            let line: String = (0..width)
                .map(|x| buf.cell((x, y)).map_or(" ", |c| c.symbol()))
                .collect();
            line.trim_end().to_string()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn log(name: &str, value: &str) -> MetricLog {
        MetricLog {
            time: jiff::Timestamp::UNIX_EPOCH,
            name: name.into(),
            value: value.into(),
        }
    }

    #[test]
    fn points_number_the_numeric_reports_of_one_metric() {
        let logs = [
            log("loss", "0.9"),
            log("acc", "0.1"),
            log("loss", "nan"),
            log("loss", "0.5"),
        ];
        assert_eq!(points(&logs, "loss"), vec![(1.0, 0.9), (2.0, 0.5)]);
        assert!(points(&logs, "other").is_empty());
    }

    #[test]
    fn the_text_chart_has_the_title_the_labels_and_a_line() {
        let pts = vec![(1.0, 0.9), (2.0, 0.5), (3.0, 0.2)];
        let lines = text(chart("curve of t".into(), "loss", &pts), 60, 12);
        assert_eq!(lines.len(), 12);
        let all = lines.join("\n");
        assert!(all.contains("curve of t"), "{all}");
        assert!(all.contains("3 reports") && all.contains("0.9"), "{all}");
        // Braille dots draw the line.
        assert!(
            all.chars().any(|c| ('\u{2801}'..='\u{28ff}').contains(&c)),
            "{all}"
        );
    }
}
