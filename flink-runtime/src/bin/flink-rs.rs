//! `flink-rs run --processes N [--connect-timeout-ms T] -- <job binary> [args]`:
//! runs one job across N local processes (see docs/deployment.md). Exits with 0 when
//! every process succeeded, 1 otherwise (the others are then stopped), 2 on bad usage.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use flink_runtime::cluster::launcher::{Launch, launch};

const USAGE: &str =
    "usage: flink-rs run --processes N [--connect-timeout-ms T] -- <job binary> [args...]";

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let parsed = match parse(&args) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("flink-rs: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = launch(&parsed);
    if let Ok(outcome) = &result {
        for (i, r) in outcome.restarts.iter().enumerate() {
            eprintln!(
                "flink-rs: restart {}: process {} ended ({}); restored from {}",
                i + 1,
                r.failed_process,
                r.status,
                r.restored_from
                    .as_ref()
                    .map_or("the beginning".to_string(), |p| p.display().to_string())
            );
        }
    }
    match result {
        Ok(outcome) if outcome.success() => ExitCode::SUCCESS,
        Ok(outcome) => {
            let failed = outcome.first_failed.unwrap_or(0);
            eprintln!(
                "flink-rs: process {failed} failed ({})",
                outcome.statuses[failed]
            );
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("flink-rs: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse(args: &[OsString]) -> Result<Launch, String> {
    let mut it = args.iter();
    if it.next().and_then(|a| a.to_str()) != Some("run") {
        return Err("the only command is `run`".into());
    }
    let mut processes = None;
    let mut timeout = Duration::from_secs(30);
    let number = |v: Option<&OsString>, what: &str| -> Result<u64, String> {
        v.and_then(|v| v.to_str())
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{what} needs a number"))
    };
    loop {
        match it.next().and_then(|a| a.to_str()) {
            Some("--processes") => processes = Some(number(it.next(), "--processes")? as usize),
            Some("--connect-timeout-ms") => {
                timeout = Duration::from_millis(number(it.next(), "--connect-timeout-ms")?);
            }
            Some("--") => break,
            Some(other) => return Err(format!("unknown option {other:?}")),
            None => return Err("missing `-- <job binary>`".into()),
        }
    }
    let program = PathBuf::from(it.next().ok_or("missing the job binary after --")?);
    let processes = processes.ok_or("missing --processes N")?;
    if processes == 0 {
        return Err("--processes must be at least 1".into());
    }
    Ok(Launch {
        processes,
        program,
        args: it.cloned().collect(),
        connect_timeout: timeout,
    })
}
