//! Plain aligned tables, like SkyPilot's.

pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Self {
        Self {
            headers: headers.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate() {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells
                .iter()
                .enumerate()
                .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
                .collect();
            padded.join("  ").trim_end().to_owned()
        };
        let mut out = line(&self.headers);
        for row in &self.rows {
            out.push('\n');
            out.push_str(&line(row));
        }
        out
    }
}

/// "5 secs ago", "3 mins ago", … for a Unix time.
pub fn ago(timestamp: f64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    let secs = (now - timestamp).max(0.0) as u64;
    match secs {
        0..60 => format!("{secs} secs ago"),
        60..3600 => format!("{} mins ago", secs / 60),
        3600..86400 => format!("{} hrs ago", secs / 3600),
        _ => format!("{} days ago", secs / 86400),
    }
}

/// `< 1s`, `42s`, `1m 2s`, `3h 5s`: how long something ran, as SkyPilot's
/// DURATION column shows it (zero parts left out).
pub fn duration(seconds: f64) -> String {
    if seconds < 1.0 {
        return "< 1s".to_owned();
    }
    let total = seconds as u64;
    let parts = [
        (total / 86400, "d"),
        (total % 86400 / 3600, "h"),
        (total % 3600 / 60, "m"),
        (total % 60, "s"),
    ];
    parts
        .iter()
        .filter(|(value, _)| *value > 0)
        .map(|(value, unit)| format!("{value}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let mut table = Table::new(&["ID", "NAME"]);
        table.row(vec!["abc123".into(), "sky.status".into()]);
        assert_eq!(table.render(), "ID      NAME\nabc123  sky.status");
    }

    #[test]
    fn durations_leave_out_zero_parts() {
        assert_eq!(duration(0.2), "< 1s");
        assert_eq!(duration(42.0), "42s");
        assert_eq!(duration(62.5), "1m 2s");
        assert_eq!(duration(3605.0), "1h 5s");
        assert_eq!(duration(90000.0), "1d 1h");
    }
}
