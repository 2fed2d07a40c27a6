//! Naming the bottleneck of a running job: the task that is busy most of its time
//! while its own outputs are not back-pressured and the tasks upstream of it are.
//! Flink colours vertices and leaves the reader to infer this; flink-rs says it,
//! with the task's busy time, its rates and the operator of its chain that takes the
//! most time. [`JobClient::bottleneck`](crate::job_client::JobClient::bottleneck)
//! gives the verdict; the REST API and the web UI show the same one.

use std::fmt;
use std::time::Duration;

use serde::Serialize;

/// A task counts as busy from this many milliseconds per second of busy time.
pub const BUSY_MS_PER_S: f64 = 500.0;
/// A task's outputs count as free when it is back-pressured at most this long per
/// second (Flink's OK level).
pub const FREE_MS_PER_S: f64 = 100.0;
/// Upstream counts as held back when it is back-pressured more than this per second
/// (Flink's HIGH level).
pub const HELD_BACK_MS_PER_S: f64 = 500.0;

/// What one window of measurements says about where a job is limited.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "verdict", rename_all = "kebab-case")]
pub enum BottleneckVerdict {
    /// Nothing measured yet: the first window (about a second) closes after the
    /// first request for a verdict, which starts the sampling.
    Measuring,
    /// This task limits the job.
    Task(Bottleneck),
    /// No task qualifies because the sources are the limit: they are busy reading
    /// and nothing downstream holds them back.
    SourceBound {
        /// The busy source tasks (job vertex names).
        sources: Vec<String>,
    },
    /// No task qualifies and the sources are not busy either: the job keeps up with
    /// its input (or waits for it).
    NoBottleneck,
}

/// The task named as a job's bottleneck, over the last window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Bottleneck {
    /// The job vertex (chained task) index, as the REST API's vertex id.
    pub vertex: usize,
    /// The task's name, e.g. `Map -> Sink`.
    pub task: String,
    /// Its busiest subtask, 0-based.
    pub subtask: usize,
    /// Busy milliseconds per second of its busiest subtask.
    pub busy_ms_per_s: f64,
    /// Back-pressured milliseconds per second (the most of any of its subtasks).
    pub back_pressured_ms_per_s: f64,
    /// Records per second the task received (for a source: read), all subtasks.
    pub records_in_per_s: f64,
    /// Records per second the task emitted, all subtasks.
    pub records_out_per_s: f64,
    /// The upstream tasks it holds back (back-pressured HIGH), by name.
    pub held_back: Vec<String>,
    /// Where the task's working time goes, operator by operator of its chain, the
    /// largest share first (sampled; see [`OperatorShare`]).
    pub operators: Vec<OperatorShare>,
}

impl Bottleneck {
    /// The operator of the chain that takes the most time.
    pub fn hottest_operator(&self) -> Option<&OperatorShare> {
        self.operators.first()
    }
}

/// The share of a task's working (busy) time spent in one operator of its chain,
/// sampled about every 10 ms from flags each operator sets once per batch. Time
/// outside every chained operator (a source reading, a task decoding its input)
/// counts for the chain's head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OperatorShare {
    /// The operator's stream node id (the REST API's operator id).
    pub node: usize,
    /// The operator's name.
    pub name: String,
    /// Fraction of the busy samples, in `0.0..=1.0`.
    pub share: f64,
}

/// One task (job vertex) over one window, as [`judge`] reads it.
#[derive(Debug, Clone)]
pub(crate) struct VertexWindow {
    pub(crate) name: String,
    pub(crate) is_source: bool,
    /// The head node (the source, for a source task).
    pub(crate) head: usize,
    /// Vertices feeding this one.
    pub(crate) upstream: Vec<usize>,
    pub(crate) busiest_subtask: usize,
    pub(crate) busy_ms_per_s: f64,
    pub(crate) back_pressured_ms_per_s: f64,
    pub(crate) records_in_per_s: f64,
    pub(crate) records_out_per_s: f64,
    /// Largest share first.
    pub(crate) operators: Vec<OperatorShare>,
    /// Every subtask ended before or during the window.
    pub(crate) ended: bool,
}

/// The verdict of one window over every vertex (indexed by vertex id).
pub(crate) fn judge(vertices: &[VertexWindow]) -> BottleneckVerdict {
    let qualifies = |v: &VertexWindow| {
        let working = !v.ended
            && v.busy_ms_per_s >= BUSY_MS_PER_S
            && v.back_pressured_ms_per_s <= FREE_MS_PER_S;
        // A source task holds nothing back, but when an operator chained after the
        // source takes most of its time, that operator limits the job.
        let limits = if v.is_source {
            v.operators.first().is_some_and(|o| o.node != v.head)
        } else {
            !held_back(vertices, v).is_empty()
        };
        working && limits
    };
    let best = vertices
        .iter()
        .enumerate()
        .filter(|(_, v)| qualifies(v))
        .max_by(|(_, a), (_, b)| a.busy_ms_per_s.total_cmp(&b.busy_ms_per_s));
    if let Some((id, v)) = best {
        return BottleneckVerdict::Task(Bottleneck {
            vertex: id,
            task: v.name.clone(),
            subtask: v.busiest_subtask,
            busy_ms_per_s: v.busy_ms_per_s,
            back_pressured_ms_per_s: v.back_pressured_ms_per_s,
            records_in_per_s: v.records_in_per_s,
            records_out_per_s: v.records_out_per_s,
            held_back: held_back(vertices, v),
            operators: v.operators.clone(),
        });
    }
    let sources: Vec<String> = vertices
        .iter()
        .filter(|v| {
            v.is_source
                && !v.ended
                && v.busy_ms_per_s >= BUSY_MS_PER_S
                && v.back_pressured_ms_per_s <= FREE_MS_PER_S
        })
        .map(|v| v.name.clone())
        .collect();
    if sources.is_empty() {
        BottleneckVerdict::NoBottleneck
    } else {
        BottleneckVerdict::SourceBound { sources }
    }
}

/// The names of `v`'s upstream tasks that are back-pressured HIGH.
fn held_back(vertices: &[VertexWindow], v: &VertexWindow) -> Vec<String> {
    v.upstream
        .iter()
        .map(|&u| &vertices[u])
        .filter(|u| u.back_pressured_ms_per_s > HELD_BACK_MS_PER_S)
        .map(|u| u.name.clone())
        .collect()
}

impl BottleneckVerdict {
    /// The bottleneck task, when one is named.
    pub fn task(&self) -> Option<&Bottleneck> {
        match self {
            Self::Task(b) => Some(b),
            _ => None,
        }
    }
}

impl fmt::Display for BottleneckVerdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Measuring => write!(f, "measuring: the first window has not closed yet"),
            Self::Task(b) => {
                write!(
                    f,
                    "bottleneck: {} (subtask {}) busy {:.0} % of its time, {:.0} records/s in, \
                     {:.0} records/s out",
                    b.task,
                    b.subtask + 1,
                    b.busy_ms_per_s / 10.0,
                    b.records_in_per_s,
                    b.records_out_per_s
                )?;
                if let Some(op) = b.hottest_operator() {
                    write!(f, "; most time in {} ({:.0} %)", op.name, op.share * 100.0)?;
                }
                if !b.held_back.is_empty() {
                    write!(f, "; holds back {}", b.held_back.join(", "))?;
                }
                Ok(())
            }
            Self::SourceBound { sources } => write!(
                f,
                "no bottleneck: the job is source-bound ({} busy reading, nothing back-pressured)",
                sources.join(", ")
            ),
            Self::NoBottleneck => write!(
                f,
                "no bottleneck: no task is busy most of its time while holding back its upstream"
            ),
        }
    }
}

/// How long one window of the verdict is.
pub(crate) const WINDOW: Duration = Duration::from_secs(1);

#[cfg(test)]
mod tests {
    use super::*;

    fn vertex(name: &str, upstream: &[usize], busy: f64, bp: f64) -> VertexWindow {
        VertexWindow {
            name: name.into(),
            is_source: upstream.is_empty(),
            head: 0,
            upstream: upstream.to_vec(),
            busiest_subtask: 0,
            busy_ms_per_s: busy,
            back_pressured_ms_per_s: bp,
            records_in_per_s: 10.0,
            records_out_per_s: 10.0,
            operators: Vec::new(),
            ended: false,
        }
    }

    #[test]
    fn the_busy_task_holding_back_its_upstream_is_named() {
        let job = [
            vertex("Source", &[], 50.0, 950.0),
            vertex("Map", &[0], 990.0, 0.0),
            vertex("Sink", &[1], 20.0, 0.0),
        ];
        let verdict = judge(&job);
        let b = verdict.task().expect("a bottleneck");
        assert_eq!((b.vertex, b.held_back.clone()), (1, vec!["Source".into()]));
        assert!(verdict.to_string().starts_with("bottleneck: Map"));
    }

    #[test]
    fn a_busy_task_that_is_itself_back_pressured_is_not_the_bottleneck() {
        let job = [
            vertex("Source", &[], 50.0, 950.0),
            vertex("Map", &[0], 600.0, 390.0),
            vertex("Sink", &[1], 20.0, 0.0),
        ];
        assert_eq!(judge(&job), BottleneckVerdict::NoBottleneck);
    }

    #[test]
    fn busy_sources_with_free_outputs_are_source_bound() {
        let job = [
            vertex("Source", &[], 990.0, 0.0),
            vertex("Sink", &[0], 300.0, 0.0),
        ];
        assert_eq!(
            judge(&job),
            BottleneckVerdict::SourceBound {
                sources: vec!["Source".into()]
            }
        );
    }
}
