//! [`ResultQueue`]: where the async operator's results wait for their turn, like
//! Flink's ordered and unordered stream element queues.
//!
//! Ordered: results leave in input order. Unordered: results leave as they
//! complete, but a watermark splits the calls into segments and no result crosses
//! it: results of calls started after a watermark wait until every call started
//! before it has left, then the watermark leaves, then they do.

use std::collections::{HashMap, VecDeque};

use crate::async_io::OutputMode;
use crate::watermark::Watermark;

/// What leaves the queue, in order.
pub(crate) enum Released<R> {
    /// A call's result.
    Result(R),
    /// A watermark whose preceding calls have all left.
    Watermark(Watermark),
}

/// The results of calls in flight, and the watermarks between them.
pub(crate) enum ResultQueue<R> {
    /// Input order.
    Ordered {
        /// Calls (by sequence number) and watermarks in arrival order.
        entries: VecDeque<Entry>,
        /// Results whose call is not yet at the head.
        completed: HashMap<u64, R>,
    },
    /// Completion order within watermark-delimited segments; never empty, the last
    /// segment takes new calls.
    Unordered { segments: VecDeque<Segment<R>> },
}

/// One place in the ordered queue.
pub(crate) enum Entry {
    Call(u64),
    Watermark(Watermark),
}

/// Calls started between two watermarks.
pub(crate) struct Segment<R> {
    /// The first call's sequence number (calls are numbered in start order).
    first_seq: u64,
    /// Calls of this segment not completed yet.
    outstanding: usize,
    /// Completed results waiting for the segments before to leave.
    held: Vec<R>,
    /// The watermark that closed this segment.
    closed_by: Option<Watermark>,
}

impl<R> Segment<R> {
    fn open(first_seq: u64) -> Self {
        Self {
            first_seq,
            outstanding: 0,
            held: Vec::new(),
            closed_by: None,
        }
    }
}

impl<R> ResultQueue<R> {
    /// An empty queue for `mode`.
    pub(crate) fn new(mode: OutputMode) -> Self {
        match mode {
            OutputMode::Ordered => Self::Ordered {
                entries: VecDeque::new(),
                completed: HashMap::new(),
            },
            OutputMode::Unordered => Self::Unordered {
                segments: VecDeque::from([Segment::open(0)]),
            },
        }
    }

    /// Call `seq` started; sequence numbers increase by one per call.
    pub(crate) fn started(&mut self, seq: u64) {
        match self {
            Self::Ordered { entries, .. } => entries.push_back(Entry::Call(seq)),
            Self::Unordered { segments } => {
                if let Some(open) = segments.back_mut() {
                    open.outstanding += 1;
                }
            }
        }
    }

    /// Call `seq` completed with `result`; emits whatever may leave now.
    pub(crate) fn completed(&mut self, seq: u64, result: R, emit: &mut impl FnMut(Released<R>)) {
        match self {
            Self::Ordered { completed, .. } => {
                completed.insert(seq, result);
            }
            Self::Unordered { segments } => {
                let index = segments
                    .iter()
                    .rposition(|s| s.first_seq <= seq)
                    .unwrap_or(0);
                let segment = &mut segments[index];
                segment.outstanding -= 1;
                if index == 0 {
                    emit(Released::Result(result));
                } else {
                    segment.held.push(result);
                }
            }
        }
        self.release(emit);
    }

    /// A watermark arrived; `next_seq` is the number the next call will get.
    pub(crate) fn watermark(
        &mut self,
        watermark: Watermark,
        next_seq: u64,
        emit: &mut impl FnMut(Released<R>),
    ) {
        match self {
            Self::Ordered { entries, .. } => entries.push_back(Entry::Watermark(watermark)),
            Self::Unordered { segments } => {
                if let Some(open) = segments.back_mut() {
                    open.closed_by = Some(watermark);
                }
                segments.push_back(Segment::open(next_seq));
            }
        }
        self.release(emit);
    }

    /// Emits everything at the head that may leave.
    fn release(&mut self, emit: &mut impl FnMut(Released<R>)) {
        match self {
            Self::Ordered { entries, completed } => loop {
                match entries.front() {
                    Some(Entry::Watermark(w)) => emit(Released::Watermark(*w)),
                    Some(Entry::Call(seq)) => match completed.remove(seq) {
                        Some(result) => emit(Released::Result(result)),
                        None => break,
                    },
                    None => break,
                }
                entries.pop_front();
            },
            Self::Unordered { segments } => {
                while segments.len() > 1 && segments[0].outstanding == 0 {
                    let Some(done) = segments.pop_front() else {
                        break;
                    };
                    if let Some(w) = done.closed_by {
                        emit(Released::Watermark(w));
                    }
                    if let Some(next) = segments.front_mut() {
                        for result in next.held.drain(..) {
                            emit(Released::Result(result));
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(mode: OutputMode, script: &[(&str, u64)]) -> Vec<String> {
        let mut queue = ResultQueue::new(mode);
        let mut out = Vec::new();
        let mut emit = |r: Released<u64>| {
            out.push(match r {
                Released::Result(x) => format!("r{x}"),
                Released::Watermark(w) => format!("w{}", w.0),
            })
        };
        let mut next_seq = 0;
        for &(op, n) in script {
            match op {
                "start" => {
                    queue.started(next_seq);
                    next_seq += 1;
                }
                "done" => queue.completed(n, n, &mut emit),
                "wm" => queue.watermark(Watermark(n as i64), next_seq, &mut emit),
                _ => unreachable!(),
            }
        }
        out
    }

    const SCRIPT: &[(&str, u64)] = &[
        ("start", 0),
        ("start", 1),
        ("wm", 10),
        ("start", 2),
        ("done", 2),
        ("done", 1),
        ("wm", 20),
        ("done", 0),
    ];

    #[test]
    fn unordered_results_overtake_each_other_but_never_a_watermark() {
        assert_eq!(
            run(OutputMode::Unordered, SCRIPT),
            ["r1", "r0", "w10", "r2", "w20"]
        );
    }

    #[test]
    fn ordered_results_and_watermarks_leave_in_input_order() {
        assert_eq!(
            run(OutputMode::Ordered, SCRIPT),
            ["r0", "r1", "w10", "r2", "w20"]
        );
    }

    #[test]
    fn a_watermark_with_nothing_in_flight_leaves_at_once() {
        for mode in [OutputMode::Ordered, OutputMode::Unordered] {
            assert_eq!(
                run(mode, &[("wm", 5), ("start", 0), ("done", 0)]),
                ["w5", "r0"]
            );
        }
    }
}
