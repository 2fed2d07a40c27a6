//! [`SubtaskReport`]: the live view of one subtask that a process other than 0 sends
//! process 0 (as a [`Frame::SubtaskState`](crate::network::tcp::Frame::SubtaskState)),
//! so process 0's REST API and `/metrics` show every subtask of the job.
//!
//! Body, all big endian: state u8, elapsed, back-pressured and idle nanoseconds,
//! bytes received and shipped (u64 each), output and input pool usage (f64 bits),
//! the chain's operator count u16, then per operator in chain order its records in,
//! records out, side-output records unconsumed and dead letters discarded (u64 each).

use std::sync::atomic::Ordering;
use std::time::Duration;

use flink_core::metrics::OperatorMetrics;

use crate::job_status::JobState;

/// A subtask's state, with Flink's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SubtaskState {
    /// Not heard of yet: a subtask of another process whose first report has not
    /// arrived.
    Created,
    /// Its thread runs.
    Running,
    /// The job is being cancelled and this subtask has not ended yet.
    Canceling,
    /// It ended and the job did not fail or get cancelled.
    Finished,
    /// It ended in a job that was cancelled.
    Canceled,
    /// It ended in a job that failed.
    Failed,
}

impl SubtaskState {
    /// The state of a subtask that `ended` (or not) in a job in state `job`. A job
    /// that failed reports its ended subtasks FAILED (the failing one is named in
    /// `/exceptions`).
    pub(crate) fn of(job: JobState, ended: bool) -> Self {
        match (ended, job) {
            (false, JobState::Cancelling) => Self::Canceling,
            (false, _) => Self::Running,
            (true, JobState::Cancelling | JobState::Canceled) => Self::Canceled,
            (true, JobState::Failed) => Self::Failed,
            (true, _) => Self::Finished,
        }
    }

    /// Flink's spelling, e.g. `"RUNNING"`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Created => "CREATED",
            Self::Running => "RUNNING",
            Self::Canceling => "CANCELING",
            Self::Finished => "FINISHED",
            Self::Canceled => "CANCELED",
            Self::Failed => "FAILED",
        }
    }

    /// Whether the subtask has ended.
    pub(crate) fn ended(self) -> bool {
        matches!(self, Self::Finished | Self::Canceled | Self::Failed)
    }

    fn code(self) -> u8 {
        match self {
            Self::Created => 0,
            Self::Running => 1,
            Self::Canceling => 2,
            Self::Finished => 3,
            Self::Canceled => 4,
            Self::Failed => 5,
        }
    }

    fn from_code(code: u8) -> Result<Self, String> {
        Ok(match code {
            0 => Self::Created,
            1 => Self::Running,
            2 => Self::Canceling,
            3 => Self::Finished,
            4 => Self::Canceled,
            5 => Self::Failed,
            c => return Err(format!("unknown subtask state {c}")),
        })
    }
}

/// One operator's counters in one subtask, in its chain's order.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ChainedCounts {
    /// Records received.
    pub(crate) records_in: u64,
    /// Records emitted.
    pub(crate) records_out: u64,
    /// Records written to side outputs nothing reads.
    pub(crate) side_output_unconsumed: u64,
    /// Dead letters dropped on purpose.
    pub(crate) dead_letters_discarded: u64,
}

impl ChainedCounts {
    /// The counters of `operator` in one subtask, now.
    pub(crate) fn of(operator: &OperatorMetrics) -> Self {
        Self {
            records_in: operator.records_in.load(Ordering::Relaxed),
            records_out: operator.records_out.load(Ordering::Relaxed),
            side_output_unconsumed: operator.side_output_unconsumed.load(Ordering::Relaxed),
            dead_letters_discarded: operator.dead_letters_discarded.load(Ordering::Relaxed),
        }
    }
}

/// What process 0 knows of a subtask running in another process.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SubtaskReport {
    pub(crate) state: SubtaskState,
    /// Time since the subtask started (until it ended, once it has).
    pub(crate) elapsed: Duration,
    /// Cumulative time blocked on output buffers or credit.
    pub(crate) back_pressured: Duration,
    /// Cumulative time waiting for input.
    pub(crate) idle: Duration,
    /// Bytes its input gate received.
    pub(crate) bytes_in: u64,
    /// Bytes its result partitions shipped.
    pub(crate) bytes_out: u64,
    /// Fraction of the output buffer pool in use.
    pub(crate) out_pool_usage: f64,
    /// Fraction of the input buffers in use.
    pub(crate) in_pool_usage: f64,
    /// Its chain's operators, in order.
    pub(crate) operators: Vec<ChainedCounts>,
}

/// Bytes of a report before its operators.
const FIXED_LEN: usize = 1 + 5 * 8 + 2 * 8 + 2;
/// Bytes of one operator's counts.
const OPERATOR_LEN: usize = 4 * 8;

/// Bytes of the report of a subtask whose chain has `operators` operators.
pub(crate) fn encoded_len(operators: usize) -> usize {
    FIXED_LEN + OPERATOR_LEN * operators
}

impl SubtaskReport {
    /// What process 0 shows of a subtask of a chain of `operators` operators before
    /// its first report: not started (`CREATED`), nothing counted.
    pub(crate) fn not_started(operators: usize) -> Self {
        Self {
            state: SubtaskState::Created,
            elapsed: Duration::ZERO,
            back_pressured: Duration::ZERO,
            idle: Duration::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            out_pool_usage: 0.0,
            in_pool_usage: 0.0,
            operators: vec![ChainedCounts::default(); operators],
        }
    }

    /// The report as sent.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(encoded_len(self.operators.len()));
        out.push(self.state.code());
        for d in [self.elapsed, self.back_pressured, self.idle] {
            out.extend_from_slice(&nanos(d).to_be_bytes());
        }
        out.extend_from_slice(&self.bytes_in.to_be_bytes());
        out.extend_from_slice(&self.bytes_out.to_be_bytes());
        out.extend_from_slice(&self.out_pool_usage.to_bits().to_be_bytes());
        out.extend_from_slice(&self.in_pool_usage.to_bits().to_be_bytes());
        let count = u16::try_from(self.operators.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&count.to_be_bytes());
        for o in self.operators.iter().take(usize::from(count)) {
            for v in [
                o.records_in,
                o.records_out,
                o.side_output_unconsumed,
                o.dead_letters_discarded,
            ] {
                out.extend_from_slice(&v.to_be_bytes());
            }
        }
        out
    }

    /// The report in `bytes`; the error says what does not fit.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() < FIXED_LEN {
            return Err(format!(
                "subtask report of {} bytes, at least {FIXED_LEN} needed",
                bytes.len()
            ));
        }
        let u64_at = |i: usize| u64::from_be_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
        let count = usize::from(u16::from_be_bytes([bytes[57], bytes[58]]));
        if bytes.len() != encoded_len(count) {
            return Err(format!(
                "subtask report of {} bytes for {count} operators ({} expected)",
                bytes.len(),
                encoded_len(count)
            ));
        }
        let operators = (0..count)
            .map(|i| {
                let at = FIXED_LEN + i * OPERATOR_LEN;
                ChainedCounts {
                    records_in: u64_at(at),
                    records_out: u64_at(at + 8),
                    side_output_unconsumed: u64_at(at + 16),
                    dead_letters_discarded: u64_at(at + 24),
                }
            })
            .collect();
        Ok(Self {
            state: SubtaskState::from_code(bytes[0])?,
            elapsed: Duration::from_nanos(u64_at(1)),
            back_pressured: Duration::from_nanos(u64_at(9)),
            idle: Duration::from_nanos(u64_at(17)),
            bytes_in: u64_at(25),
            bytes_out: u64_at(33),
            out_pool_usage: f64::from_bits(u64_at(41)),
            in_pool_usage: f64::from_bits(u64_at(49)),
            operators,
        })
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(operators: usize) -> SubtaskReport {
        SubtaskReport {
            state: SubtaskState::Running,
            elapsed: Duration::from_millis(1500),
            back_pressured: Duration::from_millis(700),
            idle: Duration::from_nanos(3),
            bytes_in: 11,
            bytes_out: u64::MAX,
            out_pool_usage: 0.25,
            in_pool_usage: 1.0,
            operators: (0..operators as u64)
                .map(|i| ChainedCounts {
                    records_in: i,
                    records_out: i + 1,
                    side_output_unconsumed: i + 2,
                    dead_letters_discarded: i + 3,
                })
                .collect(),
        }
    }

    #[test]
    fn reports_round_trip_and_a_wrong_length_or_state_is_an_error() {
        for n in [0, 1, 3] {
            let r = report(n);
            let bytes = r.encode();
            assert_eq!(bytes.len(), encoded_len(n));
            assert_eq!(SubtaskReport::decode(&bytes).unwrap(), r);
            assert!(SubtaskReport::decode(&bytes[..bytes.len() - 1]).is_err());
            let mut long = bytes.clone();
            long.push(0);
            assert!(SubtaskReport::decode(&long).is_err());
        }
        let mut bad = report(1).encode();
        bad[0] = 6;
        assert!(SubtaskReport::decode(&bad).is_err());
    }

    #[test]
    fn states_follow_the_job_and_whether_the_subtask_ended() {
        assert_eq!(
            SubtaskState::of(JobState::Running, false),
            SubtaskState::Running
        );
        assert_eq!(
            SubtaskState::of(JobState::Running, true),
            SubtaskState::Finished
        );
        assert_eq!(
            SubtaskState::of(JobState::Cancelling, false),
            SubtaskState::Canceling
        );
        assert_eq!(
            SubtaskState::of(JobState::Failed, true),
            SubtaskState::Failed
        );
        assert_eq!(SubtaskState::Created.as_str(), "CREATED");
        assert!(!SubtaskState::Created.ended() && SubtaskState::Canceled.ended());
    }
}
