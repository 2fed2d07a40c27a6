//! [`WatermarkValve`]: the event time of a task with several input channels.
//!
//! Each channel's watermark only moves forward; the task's event time is the minimum
//! over the channels still open, so a record from the slowest producer is never
//! behind a watermark that already went downstream. A finished channel stops
//! holding the others back, as in Flink's `StatusWatermarkValve`.

use flink_core::watermark::Watermark;

/// Combines per-channel watermarks into the input's watermark.
#[derive(Debug)]
pub(crate) struct WatermarkValve {
    channels: Vec<Watermark>,
    finished: Vec<bool>,
    emitted: Watermark,
}

impl WatermarkValve {
    /// A valve over `channels` input channels, none of which has a watermark yet.
    pub(crate) fn new(channels: usize) -> Self {
        Self {
            channels: vec![Watermark::MIN; channels],
            finished: vec![false; channels],
            emitted: Watermark::MIN,
        }
    }

    /// `channel` reported `watermark`; returns the input's new watermark if it advanced.
    pub(crate) fn on_watermark(
        &mut self,
        channel: usize,
        watermark: Watermark,
    ) -> Option<Watermark> {
        let slot = &mut self.channels[channel];
        *slot = (*slot).max(watermark);
        self.advance()
    }

    /// `channel` ended; returns the input's new watermark if that let it advance.
    pub(crate) fn on_channel_finished(&mut self, channel: usize) -> Option<Watermark> {
        self.finished[channel] = true;
        self.advance()
    }

    fn advance(&mut self) -> Option<Watermark> {
        let open = self
            .channels
            .iter()
            .zip(&self.finished)
            .filter(|(_, finished)| !**finished)
            .map(|(w, _)| *w);
        let min = open.min()?;
        (min > self.emitted).then(|| {
            self.emitted = min;
            min
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_the_minimum_of_open_channels_once_it_advances() {
        let mut valve = WatermarkValve::new(3);
        assert_eq!(valve.on_watermark(0, Watermark(10)), None);
        assert_eq!(valve.on_watermark(1, Watermark(5)), None);
        assert_eq!(valve.on_watermark(2, Watermark(7)), Some(Watermark(5)));
        // A channel going back in time changes nothing.
        assert_eq!(valve.on_watermark(1, Watermark(3)), None);
        assert_eq!(valve.on_watermark(1, Watermark(20)), Some(Watermark(7)));
        // The slow channel finishing releases the others.
        assert_eq!(valve.on_channel_finished(2), Some(Watermark(10)));
        assert_eq!(valve.on_channel_finished(0), Some(Watermark(20)));
        assert_eq!(valve.on_channel_finished(1), None);
    }
}
