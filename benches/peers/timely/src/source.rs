//! The harness's sequence source on timely: a worker's share of 1..=N in `Vec`s of
//! 1,024 numbers.

use std::ops::Range;

use timely::container::CapacityContainerBuilder;
use timely::dataflow::operators::generic::operator::source;
use timely::dataflow::{Scope, StreamVec};

/// Numbers per `Vec`: the harness's source batch (flink-rs `SOURCE_BATCH`).
pub const BATCH: u64 = 1024;

/// Batches handed over per activation unless `TIMELY_PEER_BATCHES` says otherwise.
///
/// Timely schedules each operator separately, a few microseconds per round of the
/// dataflow on this kind of machine, while the harness's source pushes a batch through
/// its chain with plain calls; one batch per activation would make `chain` measure
/// timely's scheduler. Sixteen (128 KiB queued per operator) is past the point where
/// more stops helping.
const DEFAULT_BATCHES_PER_ACTIVATION: usize = 16;

/// `index`'s contiguous part of `1..=n` split `peers` ways, sizes differing by at most
/// one, the lower indices taking the extra numbers (the harness's split).
pub fn share(n: u64, index: usize, peers: usize) -> Range<u64> {
    let (peers, index) = (peers as u64, index as u64);
    let (size, extra) = (n / peers, n % peers);
    let first = 1 + index * size + index.min(extra);
    first..first + size + u64::from(index < extra)
}

/// A source emitting `numbers` in batches of [`BATCH`] at time 0, then closing.
pub fn sequence<'s>(scope: Scope<'s, u64>, numbers: Range<u64>) -> StreamVec<'s, u64, u64> {
    let per_activation = batches_per_activation();
    source::<_, CapacityContainerBuilder<Vec<u64>>, _, _>(scope, "Sequence", move |cap, info| {
        let wake = scope.activator_for(info.address);
        let mut cap = Some(cap);
        let mut next = numbers.start;
        let mut batch: Vec<u64> = Vec::with_capacity(BATCH as usize);
        move |output| {
            let Some(time) = cap.as_ref() else { return };
            let mut session = output.session(time);
            for _ in 0..per_activation {
                if next == numbers.end {
                    break;
                }
                let end = numbers.end.min(next + BATCH);
                // The channel may hand back a used `Vec` for the next batch.
                batch.clear();
                batch.extend(next..end);
                session.give_container(&mut batch);
                next = end;
            }
            drop(session);
            if next == numbers.end {
                cap = None;
            } else {
                wake.activate();
            }
        }
    })
}

fn batches_per_activation() -> usize {
    std::env::var("TIMELY_PEER_BATCHES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&k| k > 0)
        .unwrap_or(DEFAULT_BATCHES_PER_ACTIVATION)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_cover_one_to_n_once_in_order() {
        for n in [1, 2, 17, 1024] {
            for peers in 1..=4 {
                let all: Vec<u64> = (0..peers).flat_map(|i| share(n, i, peers)).collect();
                assert_eq!(all, (1..=n).collect::<Vec<_>>(), "n={n} peers={peers}");
            }
        }
    }
}
