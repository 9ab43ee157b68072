//! Order statistics over measured durations.

use std::time::Duration;

/// A sorted sample of durations.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    sorted: Vec<Duration>,
}

impl Summary {
    pub fn of(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self { sorted: samples }
    }

    pub fn len(&self) -> usize {
        self.sorted.len()
    }

    pub fn min(&self) -> Option<Duration> {
        self.sorted.first().copied()
    }

    pub fn max(&self) -> Option<Duration> {
        self.sorted.last().copied()
    }

    pub fn mean(&self) -> Option<Duration> {
        let count = u32::try_from(self.sorted.len()).ok().filter(|n| *n > 0)?;
        Some(self.sorted.iter().sum::<Duration>() / count)
    }

    pub fn median(&self) -> Option<Duration> {
        self.percentile(50.0)
    }

    /// Nearest-rank percentile: always a value that was actually measured,
    /// which keeps p99 honest on small samples.
    pub fn percentile(&self, p: f64) -> Option<Duration> {
        if self.sorted.is_empty() {
            return None;
        }
        let rank = (p / 100.0 * self.sorted.len() as f64).ceil() as usize;
        let index = rank.clamp(1, self.sorted.len()) - 1;
        Some(self.sorted[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(values: &[u64]) -> Vec<Duration> {
        values.iter().map(|&v| Duration::from_millis(v)).collect()
    }

    #[test]
    fn nearest_rank_percentiles() {
        let summary = Summary::of(ms(&[5, 1, 4, 2, 3]));
        assert_eq!(summary.min(), Some(Duration::from_millis(1)));
        assert_eq!(summary.median(), Some(Duration::from_millis(3)));
        assert_eq!(summary.percentile(99.0), Some(Duration::from_millis(5)));
        assert_eq!(summary.max(), Some(Duration::from_millis(5)));
        assert_eq!(summary.mean(), Some(Duration::from_millis(3)));
    }

    #[test]
    fn an_empty_sample_has_no_statistics() {
        let summary = Summary::of(Vec::new());
        assert_eq!(summary.median(), None);
        assert_eq!(summary.mean(), None);
        assert_eq!(summary.len(), 0);
    }
}
