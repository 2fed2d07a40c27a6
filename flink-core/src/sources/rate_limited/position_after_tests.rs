//! A rate-limited reader over an inner reader whose batches differ when re-read
//! (as a Kafka reader's do): a position saved mid-batch is the inner reader's
//! position after the records that went out, so the restore re-reads nothing.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::{FreshReader, RateLimitedReader, RatePosition};
use crate::checkpoint::StateError;
use crate::clock::ManualClock;
use crate::source::{SourceOutput, SourcePoll, SourceReader};

/// Records of the fake reader.
const N: u64 = 1_000;
/// Its batch size, and the size of its first batch after a restore.
const BATCH: u64 = 100;
const FIRST_AFTER_RESTORE: u64 = 7;

/// Emits `0..N` in batches of `BATCH`, but of `FIRST_AFTER_RESTORE` first after a
/// restore; says where it is after part of its last batch, logging the calls.
struct Shifty {
    next: u64,
    batch_start: u64,
    restored: bool,
    calls: Arc<Mutex<Vec<String>>>,
}

impl Shifty {
    fn boxed(calls: &Arc<Mutex<Vec<String>>>) -> Box<dyn SourceReader<u64>> {
        Box::new(Self {
            next: 0,
            batch_start: 0,
            restored: false,
            calls: calls.clone(),
        })
    }

    fn restore(&mut self, position: &[u8]) -> Result<(), StateError> {
        let bytes = position
            .try_into()
            .map_err(|_| StateError::Corrupt("not a position".into()))?;
        self.next = u64::from_le_bytes(bytes);
        self.restored = true;
        Ok(())
    }
}

impl SourceReader<u64> for Shifty {
    fn poll_next(&mut self, out: &mut SourceOutput<u64>) -> SourcePoll {
        let size = if std::mem::take(&mut self.restored) {
            FIRST_AFTER_RESTORE
        } else {
            BATCH
        };
        self.batch_start = self.next;
        let end = (self.next + size).min(N);
        out.batch.extend(self.next..end);
        self.next = end;
        if end == N {
            SourcePoll::Finished
        } else {
            SourcePoll::MoreAvailable
        }
    }

    fn snapshot_position(&mut self) -> Result<Option<Vec<u8>>, StateError> {
        Ok(Some(self.next.to_le_bytes().to_vec()))
    }

    fn snapshot_position_after(&mut self, emitted: usize) -> Result<Option<Vec<u8>>, StateError> {
        let at = self.batch_start + emitted as u64;
        assert!(at <= self.next, "more emitted than the batch had");
        Ok(Some(at.to_le_bytes().to_vec()))
    }

    fn snapshot_position_after_for_checkpoint(
        &mut self,
        checkpoint_id: u64,
        emitted: usize,
    ) -> Result<Option<Vec<u8>>, StateError> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("after {emitted} for {checkpoint_id}"));
        self.snapshot_position_after(emitted)
    }

    fn restore_position(&mut self, position: &[u8]) -> Result<(), StateError> {
        self.restore(position)
    }

    fn restore_rescaled(&mut self, positions: &[&[u8]]) -> Result<(), StateError> {
        match positions {
            [position] => self.restore(position),
            _ => Err(StateError::Corrupt("one position expected".into())),
        }
    }
}

/// A rate-limited reader of a fresh `Shifty` at 300 records a second (bursts of
/// 30, a third of a batch).
fn paced(calls: &Arc<Mutex<Vec<String>>>, clock: &Arc<ManualClock>) -> RateLimitedReader<u64> {
    let log = calls.clone();
    let fresh: FreshReader<u64> = Box::new(move || Shifty::boxed(&log));
    RateLimitedReader::new(Shifty::boxed(calls), fresh, 300.0, clock.clone())
}

/// Polls `polls` times, a second apart (a full burst each time).
fn poll(r: &mut dyn SourceReader<u64>, clock: &ManualClock, polls: usize) -> Vec<u64> {
    let mut out = SourceOutput::new();
    for _ in 0..polls {
        r.poll_next(&mut out);
        clock.advance(Duration::from_secs(1));
    }
    out.take()
}

fn drain(r: &mut dyn SourceReader<u64>, clock: &ManualClock) -> Vec<u64> {
    let mut out = SourceOutput::new();
    while r.poll_next(&mut out) != SourcePoll::Finished {
        clock.advance(Duration::from_secs(1));
    }
    out.take()
}

fn assert_exactly_once(mut all: Vec<u64>, what: &str) {
    all.sort_unstable();
    assert_eq!(all, (0..N).collect::<Vec<_>>(), "{what}");
}

/// Five polls of bursts of 30 (the fourth ends the first batch with its last 10):
/// saved 30 records into the second batch, the position is the inner reader's
/// after record 129, nothing to re-read (the restored inner reader's first batch
/// of 7 could not give those 30 again).
fn saved_mid_batch(
    calls: &Arc<Mutex<Vec<String>>>,
    clock: &Arc<ManualClock>,
) -> (Vec<u64>, Vec<u8>) {
    let mut reader = paced(calls, clock);
    let emitted = poll(&mut reader, clock, 5);
    assert_eq!(emitted, (0..130).collect::<Vec<_>>());
    let saved = reader.snapshot_position_for_checkpoint(3).unwrap().unwrap();
    let position = RatePosition::decode(&saved).unwrap();
    assert_eq!(position.skip, 0);
    assert_eq!(position.inner, Some(130u64.to_le_bytes().to_vec()));
    assert_eq!(*calls.lock().unwrap(), ["after 30 for 3"]);
    (emitted, saved)
}

#[test]
fn a_position_saved_mid_batch_restores_exactly_once_though_batches_differ() {
    let (calls, clock) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(ManualClock::new()),
    );
    let (emitted, saved) = saved_mid_batch(&calls, &clock);
    let mut restored = paced(&calls, &clock);
    restored.restore_position(&saved).unwrap();
    let mut all = emitted;
    all.extend(drain(&mut restored, &clock));
    assert_exactly_once(all, "restored");
}

#[test]
fn a_position_saved_mid_batch_restores_rescaled_exactly_once_though_batches_differ() {
    let (calls, clock) = (
        Arc::new(Mutex::new(Vec::new())),
        Arc::new(ManualClock::new()),
    );
    let (emitted, saved) = saved_mid_batch(&calls, &clock);
    let mut restored = paced(&calls, &clock);
    restored.restore_rescaled(&[&saved]).unwrap();
    let mut all = emitted;
    all.extend(drain(&mut restored, &clock));
    assert_exactly_once(all, "restored rescaled");
}
