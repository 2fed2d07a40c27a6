//! [`WatermarkValve`]: the event time of a task with several input channels.
//!
//! Each channel's watermark only moves forward; the task's event time is the minimum
//! over the channels still open and active, so a record from the slowest producer is
//! never behind a watermark that already went downstream. A finished channel stops
//! holding the others back, and so does an idle one (its producer saw no records
//! for its strategy's idleness timeout), as in Flink's `StatusWatermarkValve`. A
//! channel that becomes active again rejoins the minimum only once its watermark
//! caught up with the one already forwarded, so event time never goes backwards.
//! When every open channel is idle, the task's output goes idle too.

use flink_core::stream_type::RecordDecoder;
use flink_core::watermark::{Watermark, WatermarkStatus};

/// What one input channel told the valve so far.
#[derive(Debug, Clone, Copy)]
struct ChannelState {
    watermark: Watermark,
    idle: bool,
    /// Counts in the minimum: active, and its watermark is at or above the forwarded one.
    aligned: bool,
    finished: bool,
}

/// What the valve forwards after an input event: a new watermark, a status change, both or neither.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ValveOutput {
    pub(crate) watermark: Option<Watermark>,
    pub(crate) status: Option<WatermarkStatus>,
}

impl ValveOutput {
    /// Passes the output into the chain: going active before the watermark that
    /// follows from it, going idle after the last watermark.
    pub(crate) fn forward_to(self, decoder: &mut dyn RecordDecoder) {
        if self.status == Some(WatermarkStatus::Active) {
            decoder.watermark_status(WatermarkStatus::Active);
        }
        if let Some(watermark) = self.watermark {
            decoder.watermark(watermark);
        }
        if self.status == Some(WatermarkStatus::Idle) {
            decoder.watermark_status(WatermarkStatus::Idle);
        }
    }
}

/// Combines per-channel watermarks and statuses into the input's.
#[derive(Debug)]
pub(crate) struct WatermarkValve {
    channels: Vec<ChannelState>,
    emitted: Watermark,
    idle: bool,
}

impl WatermarkValve {
    /// A valve over `channels` active input channels, none of which has a watermark yet.
    pub(crate) fn new(channels: usize) -> Self {
        let channel = ChannelState {
            watermark: Watermark::MIN,
            idle: false,
            aligned: true,
            finished: false,
        };
        Self {
            channels: vec![channel; channels],
            emitted: Watermark::MIN,
            idle: false,
        }
    }

    /// `channel` reported `watermark`. An idle channel's watermark is ignored.
    pub(crate) fn on_watermark(&mut self, channel: usize, watermark: Watermark) -> ValveOutput {
        let state = &mut self.channels[channel];
        if state.idle {
            return ValveOutput::default();
        }
        state.watermark = state.watermark.max(watermark);
        if state.watermark >= self.emitted {
            state.aligned = true;
        }
        self.advance()
    }

    /// `channel` went idle or active again.
    pub(crate) fn on_status(&mut self, channel: usize, status: WatermarkStatus) -> ValveOutput {
        let emitted = self.emitted;
        let state = &mut self.channels[channel];
        state.idle = status.is_idle();
        state.aligned = !state.idle && state.watermark >= emitted;
        self.advance()
    }

    /// `channel` ended.
    pub(crate) fn on_channel_finished(&mut self, channel: usize) -> ValveOutput {
        self.channels[channel].finished = true;
        self.advance()
    }

    /// The new watermark (minimum of the aligned channels, or, once every open
    /// channel is idle, the highest of theirs) and a status change, if any.
    fn advance(&mut self) -> ValveOutput {
        let open = || self.channels.iter().filter(|c| !c.finished);
        let all_idle = open().next().is_some() && open().all(|c| c.idle);
        let candidate = if all_idle {
            open().map(|c| c.watermark).max()
        } else {
            open().filter(|c| c.aligned).map(|c| c.watermark).min()
        };
        let watermark = candidate.filter(|w| *w > self.emitted);
        if let Some(w) = watermark {
            self.emitted = w;
        }
        let status = (all_idle != self.idle).then(|| {
            self.idle = all_idle;
            if all_idle {
                WatermarkStatus::Idle
            } else {
                WatermarkStatus::Active
            }
        });
        ValveOutput { watermark, status }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use WatermarkStatus::{Active, Idle};

    fn wm(valve_output: ValveOutput) -> Option<Watermark> {
        assert_eq!(valve_output.status, None);
        valve_output.watermark
    }

    #[test]
    fn forwards_the_minimum_of_open_channels_once_it_advances() {
        let mut valve = WatermarkValve::new(3);
        assert_eq!(wm(valve.on_watermark(0, Watermark(10))), None);
        assert_eq!(wm(valve.on_watermark(1, Watermark(5))), None);
        assert_eq!(wm(valve.on_watermark(2, Watermark(7))), Some(Watermark(5)));
        // A channel going back in time changes nothing.
        assert_eq!(wm(valve.on_watermark(1, Watermark(3))), None);
        assert_eq!(wm(valve.on_watermark(1, Watermark(20))), Some(Watermark(7)));
        // The slow channel finishing releases the others.
        assert_eq!(wm(valve.on_channel_finished(2)), Some(Watermark(10)));
        assert_eq!(wm(valve.on_channel_finished(0)), Some(Watermark(20)));
        assert_eq!(wm(valve.on_channel_finished(1)), None);
    }

    #[test]
    fn an_idle_channel_holds_nothing_back_and_rejoins_without_moving_event_time_back() {
        let mut valve = WatermarkValve::new(2);
        assert_eq!(wm(valve.on_watermark(0, Watermark(100))), None);
        // Channel 1 never sent a watermark: idle, it no longer holds channel 0 back.
        assert_eq!(wm(valve.on_status(1, Idle)), Some(Watermark(100)));
        assert_eq!(
            wm(valve.on_watermark(0, Watermark(150))),
            Some(Watermark(150))
        );
        // Its watermarks while idle are ignored.
        assert_eq!(wm(valve.on_watermark(1, Watermark(10))), None);
        // Active again, but behind: it rejoins once it catches up.
        assert_eq!(wm(valve.on_status(1, Active)), None);
        assert_eq!(
            wm(valve.on_watermark(0, Watermark(200))),
            Some(Watermark(200))
        );
        assert_eq!(wm(valve.on_watermark(1, Watermark(180))), None);
        // Still behind 200, so it does not hold channel 0 back.
        assert_eq!(
            wm(valve.on_watermark(0, Watermark(300))),
            Some(Watermark(300))
        );
        assert_eq!(wm(valve.on_watermark(1, Watermark(250))), None);
        // Caught up: from now on it counts in the minimum.
        assert_eq!(wm(valve.on_watermark(1, Watermark(320))), None);
        assert_eq!(
            wm(valve.on_watermark(0, Watermark(400))),
            Some(Watermark(320))
        );
    }

    #[test]
    fn the_output_goes_idle_when_every_open_channel_is_and_active_with_the_first_back() {
        let mut valve = WatermarkValve::new(2);
        assert_eq!(wm(valve.on_watermark(0, Watermark(40))), None);
        assert_eq!(
            wm(valve.on_watermark(1, Watermark(30))),
            Some(Watermark(30))
        );
        assert_eq!(wm(valve.on_status(0, Idle)), None);
        // The last active channel goes idle: the highest watermark goes out, then Idle.
        assert_eq!(
            valve.on_status(1, Idle),
            ValveOutput {
                watermark: Some(Watermark(40)),
                status: Some(Idle)
            }
        );
        assert_eq!(
            valve.on_status(1, Active),
            ValveOutput {
                watermark: None,
                status: Some(Active)
            }
        );
        assert_eq!(
            wm(valve.on_watermark(1, Watermark(50))),
            Some(Watermark(50))
        );
        // A finished channel is neither idle nor active.
        assert_eq!(
            valve.on_channel_finished(1),
            ValveOutput {
                watermark: None,
                status: Some(Idle)
            }
        );
    }
}
