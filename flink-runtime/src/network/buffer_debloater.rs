//! The buffer size an input gate announces to its producers (buffer debloating,
//! Flink's FLIP-183): computed from the gate's measured throughput, without clocks or
//! I/O, so it is tested with plain numbers.

use std::time::Duration;

use flink_core::buffer_debloat::BufferDebloatConfig;

/// Turns a gate's consumption per period into the buffer size to announce.
///
/// Each period: throughput = bytes consumed / time not spent waiting for input (so a
/// gate whose producers are slow does not shrink buffers that are empty anyway); the
/// data in flight should amount to `target` of it, spread over the buffers that hold
/// data in flight (at the gate and queued at the producers); the result is clamped to
/// `min_buffer_size..=max` and averaged over `samples` periods (shrinking faster than
/// growing, as Flink does, so a barrier soon stops waiting behind bloated buffers). A
/// larger size is announced only when it grew more than `threshold_percent` over the
/// last; a smaller one already when it shrank more than a tenth of that: the data in
/// flight then never stays above the target by up to the threshold (measured: 1.25 s
/// of data instead of 1 s with the symmetric threshold), while growth, which only
/// matters for throughput, is not announced for every small step.
///
/// Until its first measurement it announces a small size, a sixteenth of the full
/// one (at least `min_buffer_size`), so that the buffers filled while a job starts
/// hold little data: full-size ones, filled before anything was measured, held a
/// back-pressured job's first aligned checkpoint back by their whole content (~2.3 s
/// in `throughput backpressure-ckpt`). The first measurement (after one period)
/// then sets the size outright, full at once where nothing is back-pressured.
/// (Measuring earlier, after a quarter period, cost up to 15 % more instructions
/// under callgrind: the start-up's rates are no rates yet.)
#[derive(Debug, Clone)]
pub struct BufferDebloater {
    target: Duration,
    min: usize,
    max: usize,
    threshold_percent: u32,
    alpha: f64,
    average: f64,
    announced: usize,
    /// Whether a period measured anything yet.
    measured: bool,
}

impl BufferDebloater {
    /// A debloater for buffers of at most `max_buffer_size` bytes; it starts at a
    /// sixteenth of that (at least the configured minimum) until it measured.
    pub fn new(config: &BufferDebloatConfig, max_buffer_size: usize) -> Self {
        let min = config.min_buffer_size.min(max_buffer_size);
        let initial = (max_buffer_size / 16).clamp(min, max_buffer_size);
        Self {
            target: config.target,
            min,
            max: max_buffer_size,
            threshold_percent: config.threshold_percent,
            alpha: 2.0 / (f64::from(config.samples) + 1.0),
            average: initial as f64,
            announced: initial,
            measured: false,
        }
    }

    /// The size announced last (the initial size until the first measurement).
    pub fn buffer_size(&self) -> usize {
        self.announced
    }

    /// One period's measurement: `bytes` consumed while `busy` (the period minus the
    /// time spent waiting for input), with `buffers` holding data in flight. Returns
    /// the new size when it is to be announced.
    pub fn on_period(&mut self, bytes: u64, busy: Duration, buffers: usize) -> Option<usize> {
        if busy.is_zero() {
            return None; // nothing learned: the gate only waited
        }
        let throughput = bytes as f64 / busy.as_secs_f64();
        let buffers = buffers.max(1);
        let desired = (throughput * self.target.as_secs_f64() / buffers as f64)
            .clamp(self.min as f64, self.max as f64);
        if !self.measured {
            // The initial size was a guess: the first measurement replaces it.
            self.measured = true;
            self.average = desired;
            let size = (desired.round() as usize).clamp(self.min, self.max);
            if size == self.announced {
                return None;
            }
            self.announced = size;
            return Some(size);
        }
        let alpha = if desired < self.average {
            (self.alpha * buffers as f64).min(1.0)
        } else {
            self.alpha
        };
        self.average += alpha * (desired - self.average);
        let size = (self.average.round() as usize).clamp(self.min, self.max);
        let change = size.abs_diff(self.announced) as f64 / self.announced as f64 * 100.0;
        let threshold = f64::from(self.threshold_percent);
        let threshold = if size < self.announced {
            threshold / 10.0
        } else {
            threshold
        };
        // Reaching a bound is always announced, however small the step.
        let at_bound = size != self.announced && (size == self.min || size == self.max);
        if change > threshold || at_bound {
            self.announced = size;
            Some(size)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KB: usize = 1024;

    fn debloater(samples: u32, threshold_percent: u32) -> BufferDebloater {
        let config = BufferDebloatConfig {
            samples,
            threshold_percent,
            // The figures below are for a target of 1 s.
            target: Duration::from_secs(1),
            ..BufferDebloatConfig::default()
        };
        BufferDebloater::new(&config, 32 * KB)
    }

    #[test]
    fn size_follows_the_measured_rate() {
        // 220 KB/s consumed over 20 buffers in flight, target 1 s: 11 KB each.
        let mut d = debloater(1, 0);
        let size = d.on_period(44_000, Duration::from_millis(200), 20);
        assert_eq!(size, Some(11_000));
        // Twice the rate: twice the size.
        assert_eq!(
            d.on_period(88_000, Duration::from_millis(200), 20),
            Some(22_000)
        );
        // Far faster: capped at the full size.
        assert_eq!(
            d.on_period(100_000_000, Duration::from_millis(200), 20),
            Some(32 * KB)
        );
        // Nearly stopped: the minimum.
        assert_eq!(d.on_period(10, Duration::from_millis(200), 20), Some(256));
    }

    #[test]
    fn buffered_bytes_stay_within_the_target() {
        let mut d = debloater(20, 25);
        let rate = 220_000u64; // bytes per second
        for _ in 0..100 {
            d.on_period(rate / 5, Duration::from_millis(200), 20);
        }
        let in_flight = d.buffer_size() * 20;
        assert!(
            in_flight as u64 <= rate * 125 / 100,
            "{in_flight} bytes in flight exceed 1 s (+ threshold) of {rate} B/s"
        );
        assert!(in_flight as u64 >= rate * 75 / 100);
    }

    #[test]
    fn starts_small_and_the_first_measurement_sets_the_size_outright() {
        let mut d = debloater(20, 25);
        assert_eq!(d.buffer_size(), 2 * KB, "a sixteenth until measured");
        // Nothing back-pressured: full size at once, not over 20 samples.
        assert_eq!(
            d.on_period(100_000_000, Duration::from_millis(50), 20),
            Some(32 * KB)
        );
        // A slow consumer: its size at once.
        let mut d = debloater(20, 25);
        assert_eq!(
            d.on_period(44_000, Duration::from_millis(200), 20),
            Some(11_000)
        );
        // The initial guess is never below the minimum.
        let tiny = BufferDebloatConfig {
            min_buffer_size: 1_024,
            ..BufferDebloatConfig::default()
        };
        assert_eq!(BufferDebloater::new(&tiny, 4 * KB).buffer_size(), 1_024);
    }

    #[test]
    fn shrinks_at_once_and_grows_over_samples() {
        let mut d = debloater(20, 0);
        // 20 buffers: the shrinking weight is min(1, 20 * 2/21) = 1.
        assert_eq!(
            d.on_period(44_000, Duration::from_millis(200), 20),
            Some(11_000)
        );
        // Back to full speed: one period moves only 2/21 of the way up.
        let grown = d
            .on_period(100_000_000, Duration::from_millis(200), 20)
            .unwrap();
        let expected = 11_000.0 + 2.0 / 21.0 * (32.0 * KB as f64 - 11_000.0);
        assert_eq!(grown, expected.round() as usize);
    }

    #[test]
    fn small_changes_are_not_announced_and_idle_periods_teach_nothing() {
        let mut d = debloater(1, 25);
        assert_eq!(
            d.on_period(44_000, Duration::from_millis(200), 20),
            Some(11_000)
        );
        // 20 % more: below the threshold.
        assert_eq!(d.on_period(52_800, Duration::from_millis(200), 20), None);
        assert_eq!(d.buffer_size(), 11_000);
        // 2 % less: below a tenth of it.
        assert_eq!(d.on_period(43_120, Duration::from_millis(200), 20), None);
        // 10 % less: announced, so the data in flight does not stay above the target.
        assert_eq!(
            d.on_period(39_600, Duration::from_millis(200), 20),
            Some(9_900)
        );
        assert_eq!(d.on_period(0, Duration::ZERO, 20), None);
        assert_eq!(d.buffer_size(), 9_900);
    }
}
