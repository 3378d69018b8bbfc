//! Server-rendered charts: geometry computed here, drawn as SVG by the templates (which
//! escape every label, so a hostile agent name in a tooltip stays text).

/// Width and height of a chart's drawing area, in SVG user units.
pub const WIDTH: f64 = 720.0;
pub const HEIGHT: f64 = 160.0;

#[derive(Debug, Clone)]
pub struct Bar {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
    /// The tooltip: bucket and value.
    pub tip: String,
}

/// A bar chart over time buckets.
#[derive(Debug, Clone)]
pub struct BarChart {
    pub title: String,
    pub bars: Vec<Bar>,
    /// The top of the scale, formatted.
    pub max_label: String,
    pub first_label: String,
    pub last_label: String,
}

impl BarChart {
    /// `points`: (bucket label, value, value formatted), in time order.
    pub fn new(title: &str, points: &[(String, f64, String)]) -> Self {
        let max = points.iter().map(|(_, value, _)| *value).fold(0.0_f64, f64::max);
        let max_label = points
            .iter()
            .find(|(_, value, _)| *value == max)
            .map(|(_, _, label)| label.clone())
            .unwrap_or_else(|| "0".to_owned());
        let slot = WIDTH / points.len().max(1) as f64;
        let bars = points
            .iter()
            .enumerate()
            .map(|(index, (bucket, value, label))| {
                let height =
                    if max > 0.0 { (value / max * HEIGHT).max(if *value > 0.0 { 1.0 } else { 0.0 }) } else { 0.0 };
                Bar {
                    x: round(index as f64 * slot + slot * 0.1),
                    y: round(HEIGHT - height),
                    width: round((slot * 0.8).max(0.5)),
                    height: round(height),
                    tip: format!("{bucket}: {label}"),
                }
            })
            .collect();
        Self {
            title: title.to_owned(),
            bars,
            max_label,
            first_label: points.first().map(|(bucket, _, _)| bucket.clone()).unwrap_or_default(),
            last_label: points.last().map(|(bucket, _, _)| bucket.clone()).unwrap_or_default(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.bars.is_empty()
    }
}

/// One series of a line chart: an SVG `points` list and its CSS class.
#[derive(Debug, Clone)]
pub struct Line {
    pub class: &'static str,
    pub name: &'static str,
    pub points: String,
}

/// Lines over a shared time axis (latency percentiles).
#[derive(Debug, Clone)]
pub struct LineChart {
    pub lines: Vec<Line>,
    pub max_label: String,
    pub first_label: String,
    pub last_label: String,
}

impl LineChart {
    /// `xs`: bucket starts (ns) of every point; `series`: (class, name, y values per x).
    pub fn new(
        x_range: (i64, i64),
        xs: &[i64],
        series: Vec<(&'static str, &'static str, Vec<f64>)>,
        max_label: impl Fn(f64) -> String,
        x_label: impl Fn(i64) -> String,
    ) -> Self {
        let max = series.iter().flat_map(|(_, _, ys)| ys.iter().copied()).fold(0.0_f64, f64::max);
        let span = (x_range.1 - x_range.0).max(1) as f64;
        let lines = series
            .into_iter()
            .map(|(class, name, ys)| {
                let points = xs
                    .iter()
                    .zip(&ys)
                    .map(|(x, y)| {
                        let px = round((x - x_range.0) as f64 / span * WIDTH);
                        let py = round(if max > 0.0 { HEIGHT - y / max * HEIGHT } else { HEIGHT });
                        format!("{px},{py}")
                    })
                    .collect::<Vec<_>>()
                    .join(" ");
                Line { class, name, points }
            })
            .collect();
        Self { lines, max_label: max_label(max), first_label: x_label(x_range.0), last_label: x_label(x_range.1) }
    }
}

fn round(value: f64) -> f64 {
    (value * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_scale_to_the_largest_value() {
        let chart = BarChart::new("t", &[("a".into(), 1.0, "1".into()), ("b".into(), 4.0, "4".into())]);
        assert_eq!(chart.bars.len(), 2);
        assert_eq!(chart.bars[1].height, HEIGHT);
        assert_eq!(chart.bars[0].height, HEIGHT / 4.0);
        assert_eq!(chart.max_label, "4");
        assert!(BarChart::new("t", &[]).is_empty());
    }
}
