//! Running a described job: `env.execute("name")` for bounded jobs and
//! `env.execute_async("name")` for a [`JobClient`] on any job.

use flink_core::environment::StreamExecutionEnvironment;

use crate::job_client::JobClient;
use crate::job_result::{JobError, JobExecutionResult};
use crate::local_executor::submit;

/// Adds execution to [`StreamExecutionEnvironment`] (which, living in `flink-core`,
/// cannot run anything itself).
///
/// ```
/// use flink_runtime::prelude::*;
///
/// let env = StreamExecutionEnvironment::new();
/// let out = env.from_sequence(1, 5).map(|x| x * 10).collect_vec();
/// let result = env.execute("times ten").unwrap();
/// assert_eq!(out.take_sorted(), vec![10, 20, 30, 40, 50]);
/// assert_eq!(result.operator("Map").unwrap().records_out, 5);
/// ```
pub trait ExecuteExt {
    /// Runs the job until every source is exhausted and returns its result.
    fn execute(&self, job_name: &str) -> Result<JobExecutionResult, JobError>;

    /// Starts the job and returns a handle to watch, cancel or wait for it.
    fn execute_async(&self, job_name: &str) -> Result<JobClient, JobError>;
}

impl ExecuteExt for StreamExecutionEnvironment {
    fn execute(&self, job_name: &str) -> Result<JobExecutionResult, JobError> {
        self.execute_async(job_name)?.wait()
    }

    fn execute_async(&self, job_name: &str) -> Result<JobClient, JobError> {
        submit(self.job_graph()?, job_name)
    }
}
