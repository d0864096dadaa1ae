//! Histograms in the Prometheus text format, written from bucket counts read at scrape time.
//!
//! The recorder of `metrics-exporter-prometheus` builds histograms from single observations;
//! Sluice's are already bucketed where they are measured (relaxed atomics, nothing kept per
//! observation), so they are written here as text and appended to the recorder's output.

use std::fmt::Write as _;

use sluice::metrics::HistogramSnapshot;

/// One labelled series of a histogram.
pub(super) struct Series {
    /// Its labels, without `le`.
    pub labels: Vec<(&'static str, String)>,
    /// Upper bounds of the buckets, increasing, in the unit of the metric.
    pub bounds: Vec<f64>,
    /// Per bucket, not cumulative: one per bound, then the overflow (`+Inf`) bucket.
    pub counts: Vec<u64>,
    /// Sum of the observations, in the unit of the metric.
    pub sum: f64,
}

impl Series {
    /// A series from an engine histogram whose values are scaled by `scale` into the metric's
    /// unit (1e-6: µs to seconds; 1.0: sizes).
    pub fn from_snapshot(
        labels: Vec<(&'static str, String)>,
        snapshot: &HistogramSnapshot,
        scale: f64,
    ) -> Series {
        Series {
            labels,
            bounds: snapshot.bounds.iter().map(|&b| b as f64 * scale).collect(),
            counts: snapshot.counts.clone(),
            sum: snapshot.sum as f64 * scale,
        }
    }
}

/// Appends the histogram `name` with these series (none: nothing is written).
pub(super) fn write(out: &mut String, name: &str, help: &str, series: &[Series]) {
    if series.is_empty() {
        return;
    }
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} histogram");
    for s in series {
        let labels: String = s
            .labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\",", escape(v)))
            .collect();
        let mut cumulative = 0;
        for (i, count) in s.counts.iter().enumerate() {
            cumulative += count;
            let le = s
                .bounds
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{le}\"}} {cumulative}");
        }
        let labels = labels.trim_end_matches(',');
        let labels = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(out, "{name}_sum{labels} {}", s.sum);
        let _ = writeln!(out, "{name}_count{labels} {cumulative}");
    }
    out.push('\n');
}

/// A label value as the text format wants it: backslash, quote and newline escaped.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative_and_end_with_inf() {
        let mut out = String::new();
        write(
            &mut out,
            "x_seconds",
            "X.",
            &[Series {
                labels: vec![("k", "a\"b".into())],
                bounds: vec![0.5, 1.0],
                counts: vec![1, 2, 3],
                sum: 7.5,
            }],
        );
        assert_eq!(
            out,
            "# HELP x_seconds X.\n# TYPE x_seconds histogram\n\
             x_seconds_bucket{k=\"a\\\"b\",le=\"0.5\"} 1\n\
             x_seconds_bucket{k=\"a\\\"b\",le=\"1\"} 3\n\
             x_seconds_bucket{k=\"a\\\"b\",le=\"+Inf\"} 6\n\
             x_seconds_sum{k=\"a\\\"b\"} 7.5\n\
             x_seconds_count{k=\"a\\\"b\"} 6\n\n"
        );
    }
}
