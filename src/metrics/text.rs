//! Writing families of the Prometheus text format (0.0.4) straight into a
//! string, for the series there is one of per service.
//!
//! The `prometheus` crate keeps a labelled child (its label pairs as
//! protobuf messages, a hash entry, for a histogram two shards of buckets)
//! per series, about 1.6 KB for a service's counter and histogram, and a
//! scrape copies every series into protobuf messages once more before it
//! writes a line. At 100,000 services that was 120 MB held and several
//! times that per scrape. Written here instead, a service's series cost
//! what their numbers cost, and a scrape costs its text.

use std::fmt::Write as _;

/// One family's text: `# HELP`, `# TYPE`, then its series as they are
/// added. Its name is kept to merge it among the registry's families.
pub struct Family {
    pub name: &'static str,
    pub text: String,
    series: usize,
}

impl Family {
    pub fn new(name: &'static str, help: &str, kind: &str) -> Family {
        let mut text = String::new();
        let help = help.replace('\\', "\\\\").replace('\n', "\\n");
        let _ = write!(text, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
        Family {
            name,
            text,
            series: 0,
        }
    }

    /// Adds `{suffix}{labels} value`; labels in the order given (the
    /// callers give them sorted by name, as the `prometheus` crate does).
    pub fn series(&mut self, suffix: &str, labels: &[(&str, &str)], value: impl Number) {
        self.series += 1;
        self.text.push_str(self.name);
        self.text.push_str(suffix);
        if !labels.is_empty() {
            self.text.push('{');
            for (i, (name, value)) in labels.iter().enumerate() {
                if i > 0 {
                    self.text.push(',');
                }
                self.text.push_str(name);
                self.text.push_str("=\"");
                escape_label(&mut self.text, value);
                self.text.push('"');
            }
            self.text.push('}');
        }
        self.text.push(' ');
        value.write(&mut self.text);
        self.text.push('\n');
    }

    /// `None` when no series was added: a family without series is left
    /// out of a scrape, as the registry leaves out an unused vector.
    pub fn done(self) -> Option<(&'static str, String)> {
        (self.series > 0).then_some((self.name, self.text))
    }
}

/// A sample's value as the text format writes it.
pub trait Number {
    fn write(&self, out: &mut String);
}

impl Number for u64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Number for i64 {
    fn write(&self, out: &mut String) {
        let _ = write!(out, "{self}");
    }
}

impl Number for f64 {
    fn write(&self, out: &mut String) {
        // Rust writes neither an exponent nor "inf" the way Prometheus
        // reads them; no value here is infinite, but say so if one is.
        if self.is_nan() {
            out.push_str("NaN");
        } else if self.is_infinite() {
            out.push_str(if *self > 0.0 { "+Inf" } else { "-Inf" });
        } else {
            let _ = write!(out, "{self}");
        }
    }
}

/// A label value with `\`, `"` and newlines escaped.
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_family_writes_its_header_and_escaped_series() {
        let mut f = Family::new("beacon_x", "A help\\text\nwith a newline.", "gauge");
        f.series("", &[("service", "a\"b\\c\nd")], 1.5f64);
        f.series("_sum", &[], 3u64);
        let (name, text) = f.done().expect("two series");
        assert_eq!(name, "beacon_x");
        assert_eq!(
            text,
            "# HELP beacon_x A help\\\\text\\nwith a newline.\n# TYPE beacon_x gauge\n\
             beacon_x{service=\"a\\\"b\\\\c\\nd\"} 1.5\nbeacon_x_sum 3\n"
        );
        assert!(Family::new("beacon_y", "h", "counter").done().is_none());
    }

    #[test]
    fn floats_are_written_as_prometheus_reads_them() {
        let text = |v: f64| {
            let mut s = String::new();
            v.write(&mut s);
            s
        };
        assert_eq!(text(1.0), "1");
        assert_eq!(text(0.005), "0.005");
        assert_eq!(text(1_700_000_000.0), "1700000000");
        assert_eq!(text(f64::INFINITY), "+Inf");
        assert_eq!(text(f64::NAN), "NaN");
    }
}
