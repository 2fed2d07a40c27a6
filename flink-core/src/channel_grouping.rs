//! Grouping a batch's records by the channel they go to, so that each channel's
//! records are written as one run.

/// Record indices of a batch ordered by channel, stable within a channel (a counting
/// sort: two passes over the channels, no comparisons). Reused across batches.
#[derive(Debug, Default)]
pub(crate) struct ChannelGrouping {
    /// Record indices, channel 0's first.
    order: Vec<u32>,
    /// After [`group`](Self::group): `ends[c]` is where channel `c`'s run ends in `order`.
    ends: Vec<u32>,
}

impl ChannelGrouping {
    /// Groups the records whose channels are `picked` (one entry per record, each
    /// below `channels`).
    pub(crate) fn group(&mut self, picked: &[u32], channels: usize) {
        self.ends.clear();
        self.ends.resize(channels, 0);
        for &c in picked {
            self.ends[c as usize] += 1;
        }
        // Turn counts into run starts ...
        let mut start = 0;
        for slot in &mut self.ends {
            let count = *slot;
            *slot = start;
            start += count;
        }
        // ... and advance each as its records are placed, leaving the run ends.
        self.order.clear();
        self.order.resize(picked.len(), 0);
        for (index, &c) in picked.iter().enumerate() {
            let at = &mut self.ends[c as usize];
            self.order[*at as usize] = index as u32;
            *at += 1;
        }
    }

    /// The indices of channel `c`'s records, in batch order.
    pub(crate) fn run(&self, c: usize) -> &[u32] {
        let start = if c == 0 { 0 } else { self.ends[c - 1] };
        &self.order[start as usize..self.ends[c] as usize]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_hold_each_channels_records_in_batch_order() {
        let picked = [2, 0, 2, 1, 0, 2, 3, 3, 0];
        let mut grouping = ChannelGrouping::default();
        grouping.group(&picked, 5);
        assert_eq!(grouping.run(0), [1, 4, 8]);
        assert_eq!(grouping.run(1), [3]);
        assert_eq!(grouping.run(2), [0, 2, 5]);
        assert_eq!(grouping.run(3), [6, 7]);
        assert!(grouping.run(4).is_empty());
        grouping.group(&[1, 1], 2);
        assert!(grouping.run(0).is_empty());
        assert_eq!(grouping.run(1), [0, 1]);
    }
}
