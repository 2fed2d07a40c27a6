//! The launcher behind `flink-rs run --processes N -- <job binary> [args]`: starts N
//! processes of one job binary on this machine, each with its place in the
//! environment variables [`ClusterConfig::from_env`] reads, streams their output
//! with a `[p<i>]` prefix, and ends them all as soon as one fails. It supervises
//! the job: as the job's restart strategy allows, it then starts all of them again
//! from the latest completed checkpoint (see [`launch`]).

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use flink_core::checkpoint::{RestartStrategy, RestartTracker};
use flink_core::cluster::{
    ClusterConfig, ClusterRestart, ENV_CONNECT_TIMEOUT_MS, ENV_HEARTBEAT_TIMEOUT_MS, ENV_PEERS,
    ENV_PROCESS_INDEX, ENV_PROCESSES, ENV_RESTARTS, ENV_RESTORE_FROM, ENV_SECRET,
    ENV_SUPERVISOR_FILE,
};

use super::supervision::RestartPlan;
use thiserror::Error;

/// How often the launcher looks at its children.
const POLL: Duration = Duration::from_millis(20);

/// What to launch.
#[derive(Debug, Clone)]
pub struct Launch {
    /// How many processes.
    pub processes: usize,
    /// The job binary.
    pub program: PathBuf,
    /// Its arguments (the same for every process).
    pub args: Vec<OsString>,
    /// How long the processes wait for each other.
    pub connect_timeout: Duration,
}

/// Why the launcher could not run the job.
#[derive(Debug, Error)]
pub enum LaunchError {
    /// No processes asked for.
    #[error("launcher: at least one process is needed")]
    NoProcesses,
    /// No free loopback port could be found, or a process not started.
    #[error("launcher: {what}: {source}")]
    Io {
        /// What failed.
        what: String,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// How each process ended, by index.
#[derive(Debug)]
pub struct LaunchOutcome {
    /// Exit status per process (of the last start of the job).
    pub statuses: Vec<ExitStatus>,
    /// The first process that failed in the last start, if any (the others were
    /// then killed).
    pub first_failed: Option<usize>,
    /// Every restart of the job, oldest first.
    pub restarts: Vec<LaunchRestart>,
}

impl LaunchOutcome {
    /// Whether every process succeeded.
    pub fn success(&self) -> bool {
        self.first_failed.is_none()
    }
}

/// One restart of a job by the launcher.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LaunchRestart {
    /// The process whose end (death or failure) stopped the job.
    pub failed_process: usize,
    /// How it ended.
    pub status: String,
    /// The completed checkpoint every process restored from (`None`: from the
    /// beginning, no checkpoint had completed).
    pub restored_from: Option<PathBuf>,
}

/// `n` loopback ports free right now (bound and released; a race with another
/// program taking one is reported by the job as a port in use).
pub fn free_loopback_ports(n: usize) -> std::io::Result<Vec<u16>> {
    let listeners: Vec<TcpListener> = (0..n)
        .map(|_| TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    listeners
        .iter()
        .map(|l| l.local_addr().map(|a| a.port()))
        .collect()
}

/// The environment variables that give process `index` its place.
pub fn cluster_env(cluster: &ClusterConfig) -> Vec<(&'static str, String)> {
    vec![
        (ENV_PROCESSES, cluster.processes.to_string()),
        (ENV_PROCESS_INDEX, cluster.index.to_string()),
        (ENV_PEERS, cluster.peers.join(",")),
        (
            ENV_SECRET,
            String::from_utf8_lossy(&cluster.secret).into_owned(),
        ),
        (
            ENV_CONNECT_TIMEOUT_MS,
            cluster.connect_timeout.as_millis().to_string(),
        ),
        (
            ENV_HEARTBEAT_TIMEOUT_MS,
            cluster.heartbeat_timeout.as_millis().to_string(),
        ),
    ]
}

/// Starts the processes, streams their output prefixed, waits for all; kills the
/// others when one fails. Supervises the job: after a failure, if process 0 left a
/// [`RestartPlan`] whose restart strategy allows it, starts every process again from
/// the job's latest completed checkpoint ([`ENV_RESTORE_FROM`]).
pub fn launch(launch: &Launch) -> Result<LaunchOutcome, LaunchError> {
    if launch.processes == 0 {
        return Err(LaunchError::NoProcesses);
    }
    let secret = random_secret().map_err(io_error("making a secret"))?;
    let plan_file = std::env::temp_dir().join(format!(
        "flink-rs-launch-{}-{}.json",
        std::process::id(),
        String::from_utf8_lossy(&secret[..8])
    ));
    let started = Instant::now();
    let mut tracker: Option<RestartTracker> = None;
    let mut restarts = Vec::new();
    let mut restore_from: Option<PathBuf> = None;
    let mut last_plan: Option<RestartPlan> = None;
    // What process 0's job result lists as the restarts before its start.
    let mut history: Vec<ClusterRestart> = Vec::new();
    let outcome = loop {
        let outcome = start_once(
            launch,
            &secret,
            &plan_file,
            restore_from.as_deref(),
            &history,
        )?;
        let Some(failed) = outcome.first_failed else {
            break outcome;
        };
        // A restarted job that failed before its process 0 joined goes by the plan of
        // an earlier start.
        let plan = match RestartPlan::read(&plan_file) {
            Ok(Some(plan)) => plan,
            Ok(None) => match &last_plan {
                Some(plan) => plan.clone(),
                None => break outcome,
            },
            Err(e) => {
                eprintln!("[launcher] cannot read the job's restart plan: {e}");
                break outcome;
            }
        };
        last_plan = Some(plan.clone());
        if plan.checkpointing && plan.checkpoint_dir.is_none() {
            eprintln!(
                "[launcher] the job's checkpoints are not in a local directory: not restarting it (from the beginning it would repeat committed output)"
            );
            break outcome;
        }
        let tracker =
            tracker.get_or_insert_with(|| RestartTracker::new(plan.restart_strategy.clone()));
        let Some(delay) = tracker.on_failure(started.elapsed()) else {
            if !restarts.is_empty() || plan.restart_strategy != RestartStrategy::None {
                eprintln!(
                    "[launcher] the restart strategy allows no more restarts after {}",
                    restarts.len()
                );
            }
            break outcome;
        };
        restore_from = match plan.latest_checkpoint() {
            Ok(latest) => latest,
            Err(e) => {
                eprintln!("[launcher] cannot find the latest checkpoint: {e}");
                break outcome;
            }
        };
        let restart = LaunchRestart {
            failed_process: failed,
            status: outcome.statuses[failed].to_string(),
            restored_from: restore_from.clone(),
        };
        eprintln!(
            "[launcher] restart {} of job '{}' after process {failed} failed ({}): from {} in {delay:?}",
            restarts.len() + 1,
            plan.job_name,
            restart.status,
            restore_from
                .as_ref()
                .map_or("the beginning (no completed checkpoint)".to_string(), |p| p
                    .display()
                    .to_string())
        );
        history.push(ClusterRestart {
            cause: format!("process {failed} ended ({})", restart.status),
            restored_checkpoint: restore_from.as_deref().and_then(checkpoint_id),
        });
        restarts.push(restart);
        std::thread::sleep(delay);
    };
    let _ = std::fs::remove_file(&plan_file);
    Ok(LaunchOutcome {
        restarts,
        ..outcome
    })
}

/// The id of checkpoint directory `chk-<id>`.
fn checkpoint_id(dir: &std::path::Path) -> Option<u64> {
    dir.file_name()?
        .to_str()?
        .strip_prefix("chk-")?
        .parse()
        .ok()
}

fn io_error(what: &str) -> impl FnOnce(std::io::Error) -> LaunchError {
    let what = what.to_string();
    move |source| LaunchError::Io { what, source }
}

/// Starts every process once (on fresh ports), restoring from `restore_from` if
/// given, and waits for all of them.
fn start_once(
    launch: &Launch,
    secret: &[u8],
    plan_file: &std::path::Path,
    restore_from: Option<&std::path::Path>,
    history: &[ClusterRestart],
) -> Result<LaunchOutcome, LaunchError> {
    let history = serde_json::to_string(history).map_err(|e| LaunchError::Io {
        what: "writing the restart history".into(),
        source: std::io::Error::other(e),
    })?;
    let ports = free_loopback_ports(launch.processes).map_err(io_error("finding free ports"))?;
    let peers: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
    // Process 0 writes the plan again when it joins: what a failure finds is this
    // start's (or none, when the job failed before process 0 joined).
    match std::fs::remove_file(plan_file) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(io_error("removing the previous restart plan")(e));
        }
        _ => {}
    }
    let mut children = Vec::new();
    let mut pumps = Vec::new();
    for index in 0..launch.processes {
        let cluster = ClusterConfig::new(launch.processes, index, peers.clone(), secret.to_vec())
            .with_connect_timeout(launch.connect_timeout);
        let mut command = Command::new(&launch.program);
        command
            .args(&launch.args)
            .envs(cluster_env(&cluster))
            .env(ENV_SUPERVISOR_FILE, plan_file)
            .env(ENV_RESTARTS, &history)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        match restore_from {
            Some(path) => command.env(ENV_RESTORE_FROM, path),
            None => command.env_remove(ENV_RESTORE_FROM),
        };
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                kill_all(&mut children);
                return Err(io_error(&format!("starting {}", launch.program.display()))(
                    e,
                ));
            }
        };
        let prefix = format!("[p{index}] ");
        if let Some(out) = child.stdout.take() {
            pumps.push(pump(out, prefix.clone(), false));
        }
        if let Some(err) = child.stderr.take() {
            pumps.push(pump(err, prefix, true));
        }
        children.push(child);
    }
    let outcome = wait_all(&mut children).map_err(io_error("waiting for the processes"))?;
    for p in pumps.into_iter().flatten() {
        let _ = p.join();
    }
    Ok(outcome)
}

/// Waits for every child; on the first failure kills the rest.
fn wait_all(children: &mut [Child]) -> std::io::Result<LaunchOutcome> {
    let mut statuses: Vec<Option<ExitStatus>> = vec![None; children.len()];
    let mut first_failed = None;
    while statuses.iter().any(Option::is_none) {
        for i in 0..children.len() {
            if statuses[i].is_some() {
                continue;
            }
            if let Some(status) = children[i].try_wait()? {
                statuses[i] = Some(status);
                if !status.success() && first_failed.is_none() {
                    first_failed = Some(i);
                    eprintln!("[launcher] process {i} failed ({status}); stopping the others");
                    for (j, other) in children.iter_mut().enumerate() {
                        if j != i && statuses[j].is_none() {
                            let _ = other.kill();
                        }
                    }
                }
            }
        }
        std::thread::sleep(POLL);
    }
    Ok(LaunchOutcome {
        statuses: statuses
            .into_iter()
            .map(|s| s.expect("all ended"))
            .collect(),
        first_failed,
        restarts: Vec::new(),
    })
}

fn kill_all(children: &mut [Child]) {
    for c in children {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Copies `from` line by line to this process's stdout (or stderr), prefixed.
fn pump(
    from: impl Read + Send + 'static,
    prefix: String,
    to_stderr: bool,
) -> Option<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name(format!("{}output", prefix.trim()))
        .spawn(move || {
            for line in BufReader::new(from).lines() {
                let Ok(line) = line else { break };
                // One write per line so lines of two processes do not interleave.
                let text = format!("{prefix}{line}\n");
                let _ = if to_stderr {
                    std::io::stderr().lock().write_all(text.as_bytes())
                } else {
                    std::io::stdout().lock().write_all(text.as_bytes())
                };
            }
        })
        .ok()
}

/// 32 random hex digits: the processes of one launch share it, nothing else knows it.
fn random_secret() -> std::io::Result<Vec<u8>> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>()
        .into_bytes())
}
