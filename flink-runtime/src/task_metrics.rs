//! Where a subtask's time goes, measured as Flink does: busy, back-pressured (waiting
//! for an output buffer or credit) and idle (waiting for input).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::network::IoMetrics;

/// How Flink names one parallel instance: `name (index/parallelism)`, the index
/// 1-based. Thread names, errors (`JobError::OperatorFailed`), logs and printed
/// metrics all use this form.
pub fn subtask_label(name: &str, subtask_index: usize, parallelism: usize) -> String {
    format!("{name} ({}/{parallelism})", subtask_index + 1)
}

/// Live measurements of one subtask, shared between its thread and observers.
#[derive(Debug)]
pub struct TaskMetrics {
    /// Task name, e.g. "Source -> Map".
    pub task: String,
    /// 0-based subtask index.
    pub subtask: usize,
    /// Parallelism of the task.
    pub parallelism: usize,
    /// Blocking times and pool usage from the network layer.
    pub io: Arc<IoMetrics>,
    started: Instant,
    /// Nanoseconds from start to end, once the task ended (0 while running).
    ended_after_ns: std::sync::atomic::AtomicU64,
    /// The flush timer's tick at the task's last timed flush.
    flush_ticks: std::sync::atomic::AtomicU64,
}

/// Flink's back-pressure status of a subtask, from its back-pressured share of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum BackPressureLevel {
    /// At most 10 % of the time back-pressured.
    Ok,
    /// At most 50 %.
    Low,
    /// More than 50 %.
    High,
}

impl BackPressureLevel {
    /// The level of a back-pressured ratio in `0.0..=1.0`.
    pub fn of_ratio(ratio: f64) -> Self {
        if ratio <= 0.10 {
            Self::Ok
        } else if ratio <= 0.50 {
            Self::Low
        } else {
            Self::High
        }
    }
}

/// A reading of [`TaskMetrics`] at one moment.
#[derive(Debug, Clone, Serialize)]
pub struct TaskMetricsSnapshot {
    /// Task name.
    pub task: String,
    /// 0-based subtask index.
    pub subtask: usize,
    /// Parallelism of the task.
    pub parallelism: usize,
    /// Time since the subtask started (until it ended, once it has).
    pub elapsed: Duration,
    /// Whether the subtask has ended (finished, failed or was cancelled).
    pub ended: bool,
    /// Cumulative time blocked on output buffers or credit.
    pub back_pressured: Duration,
    /// Cumulative time waiting for input.
    pub idle: Duration,
    /// Fraction of the output buffer pool in use.
    pub out_pool_usage: f64,
    /// Fraction of the input buffers (exclusive and floating) in use.
    pub in_pool_usage: f64,
    /// The buffer size the task's input gate announced last to its producers (buffer
    /// debloating); `None` without debloating or without an input gate.
    pub debloated_buffer_size: Option<usize>,
    /// The flush timer's tick (one per buffer timeout) at the task's last timed
    /// flush: how far the flushes of a task got, counted in buffer timeouts.
    pub flush_ticks: u64,
}

impl TaskMetrics {
    /// Metrics for subtask `subtask` of `task`, starting now.
    pub fn new(task: String, subtask: usize, parallelism: usize, io: Arc<IoMetrics>) -> Self {
        Self {
            task,
            subtask,
            parallelism,
            io,
            started: Instant::now(),
            ended_after_ns: std::sync::atomic::AtomicU64::new(0),
            flush_ticks: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Records that the task flushed at tick `tick` of the job's flush timer.
    pub fn set_flush_ticks(&self, tick: u64) {
        self.flush_ticks
            .store(tick, std::sync::atomic::Ordering::Relaxed);
    }

    /// The task runs again (the job restarted): its time accounting goes on.
    pub fn restart(&self) {
        self.ended_after_ns
            .store(0, std::sync::atomic::Ordering::Relaxed);
    }

    /// Marks the task ended: its time accounting stops here.
    pub fn end(&self) {
        let ns = u64::try_from(self.started.elapsed().as_nanos())
            .unwrap_or(u64::MAX)
            .max(1);
        self.ended_after_ns
            .store(ns, std::sync::atomic::Ordering::Relaxed);
    }

    fn elapsed(&self) -> Duration {
        match self
            .ended_after_ns
            .load(std::sync::atomic::Ordering::Relaxed)
        {
            0 => self.started.elapsed(),
            ns => Duration::from_nanos(ns),
        }
    }

    /// Reads the current values.
    pub fn snapshot(&self) -> TaskMetricsSnapshot {
        TaskMetricsSnapshot {
            task: self.task.clone(),
            subtask: self.subtask,
            parallelism: self.parallelism,
            elapsed: self.elapsed(),
            ended: self
                .ended_after_ns
                .load(std::sync::atomic::Ordering::Relaxed)
                != 0,
            back_pressured: Duration::from_nanos(self.io.back_pressured_ns()),
            idle: Duration::from_nanos(self.io.idle_ns()),
            out_pool_usage: self.io.out_pool_usage(),
            in_pool_usage: self.io.in_pool_usage(),
            debloated_buffer_size: self.io.debloated_buffer_size(),
            flush_ticks: self.flush_ticks.load(std::sync::atomic::Ordering::Relaxed),
        }
    }
}

/// Busy, back-pressured and idle milliseconds per second over some window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeShares {
    /// Milliseconds per second doing work.
    pub busy_ms_per_s: f64,
    /// Milliseconds per second blocked on output.
    pub back_pressured_ms_per_s: f64,
    /// Milliseconds per second waiting for input.
    pub idle_ms_per_s: f64,
}

impl TimeShares {
    /// The back-pressure status these shares mean.
    pub fn level(&self) -> BackPressureLevel {
        BackPressureLevel::of_ratio(self.back_pressured_ms_per_s / 1000.0)
    }
}

impl TaskMetricsSnapshot {
    /// The subtask as Flink prints it: `Source -> Map (1/2)`, 1-based.
    pub fn label(&self) -> String {
        subtask_label(&self.task, self.subtask, self.parallelism)
    }

    /// Shares over the subtask's whole life.
    pub fn shares(&self) -> TimeShares {
        shares(self.elapsed, self.back_pressured, self.idle)
    }

    /// Shares over the window between `earlier` and this snapshot.
    pub fn shares_since(&self, earlier: &TaskMetricsSnapshot) -> TimeShares {
        shares(
            self.elapsed.saturating_sub(earlier.elapsed),
            self.back_pressured.saturating_sub(earlier.back_pressured),
            self.idle.saturating_sub(earlier.idle),
        )
    }
}

fn shares(window: Duration, back_pressured: Duration, idle: Duration) -> TimeShares {
    let w = window.as_secs_f64().max(1e-9);
    let bp = (back_pressured.as_secs_f64() / w * 1000.0).min(1000.0);
    let idle = (idle.as_secs_f64() / w * 1000.0).min(1000.0 - bp);
    TimeShares {
        busy_ms_per_s: 1000.0 - bp - idle,
        back_pressured_ms_per_s: bp,
        idle_ms_per_s: idle,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_sum_to_a_second_and_levels_follow_flink() {
        let s = shares(
            Duration::from_secs(2),
            Duration::from_millis(1200),
            Duration::from_millis(400),
        );
        assert_eq!(s.back_pressured_ms_per_s, 600.0);
        assert_eq!(s.idle_ms_per_s, 200.0);
        assert_eq!(s.busy_ms_per_s, 200.0);
        assert_eq!(s.level(), BackPressureLevel::High);
        assert_eq!(BackPressureLevel::of_ratio(0.1), BackPressureLevel::Ok);
        assert_eq!(BackPressureLevel::of_ratio(0.3), BackPressureLevel::Low);
    }
}
