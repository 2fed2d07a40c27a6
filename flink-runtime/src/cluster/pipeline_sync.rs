//! The five-stage pipeline across processes: every process tells every other one,
//! at most every [`PERIOD`] and only when something changed, how many records of
//! each gateway subtask ended in it (running totals) and the pressure of its stages,
//! as a [`Frame::PipelineCounts`](crate::network::tcp::Frame::PipelineCounts). The
//! receiver keeps the latest totals per sender (see `flink_core::pipeline`'s ledger):
//! a gateway's in-pipeline count then covers the records it admitted wherever they
//! ended, never per record on the wire.
//!
//! Lag: a record that ended in another process is counted there at once and seen by
//! its gateway's process after at most one period, plus one tick of the receiving
//! coordinator (10 ms) and the time on the wire. Until then the gateway's count is
//! too high, never too low, so it admits less, never more than its share of the
//! limit.

use std::sync::Arc;
use std::time::{Duration, Instant};

use flink_core::pipeline::PipelineHandle;

use super::error::ClusterRunError;
use super::links::ClusterLinks;

/// The shortest time between two reports of one process.
pub(crate) const PERIOD: Duration = Duration::from_millis(10);

/// Bytes of one pipeline's part of a report: pressure (f64 bits), origin count, and
/// then one u64 per origin.
fn encoded_len(origins: usize) -> usize {
    8 + 4 + 8 * origins
}

/// The largest report a job with these pipelines, whose gateways run at most
/// `gateway_parallelism` subtasks, sends: it must fit one buffer.
pub(crate) fn max_report_len(pipelines: usize, gateway_parallelism: usize) -> usize {
    pipelines * encoded_len(gateway_parallelism)
}

/// Reports this process's pipeline counts and applies those of the others.
pub(crate) struct PipelineSync {
    pipelines: Vec<PipelineHandle>,
    links: Arc<ClusterLinks>,
    last_sent: Option<(Instant, Vec<u8>)>,
}

impl PipelineSync {
    /// For the job's `pipelines` over `links`; `None` without pipelines.
    pub(crate) fn new(pipelines: &[PipelineHandle], links: &Arc<ClusterLinks>) -> Option<Self> {
        (!pipelines.is_empty()).then(|| Self {
            pipelines: pipelines.to_vec(),
            links: links.clone(),
            last_sent: None,
        })
    }

    /// Applies the reports received, then sends this process's if one is due (a
    /// period passed and it changed) or `force`d. An unreadable report is an error
    /// naming its sender.
    pub(crate) fn tick(&mut self, force: bool) -> Result<(), ClusterRunError> {
        self.receive()?;
        let due = self
            .last_sent
            .as_ref()
            .is_none_or(|(at, _)| at.elapsed() >= PERIOD);
        if !(due || force) {
            return Ok(());
        }
        let report = self.encode();
        if self
            .last_sent
            .as_ref()
            .is_some_and(|(_, last)| *last == report)
        {
            return Ok(());
        }
        for (_, connection) in self.links.iter() {
            connection.send_pipeline_counts(&report);
        }
        self.last_sent = Some((Instant::now(), report));
        Ok(())
    }

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for p in &self.pipelines {
            let finished = p.state.finished_here();
            out.extend_from_slice(&p.state.local_downstream_pressure().to_bits().to_be_bytes());
            out.extend_from_slice(&(finished.len() as u32).to_be_bytes());
            for n in finished {
                out.extend_from_slice(&n.to_be_bytes());
            }
        }
        out
    }

    fn receive(&self) -> Result<(), ClusterRunError> {
        for (peer, connection) in self.links.iter() {
            let Some(bytes) = connection.take_pipeline_counts() else {
                continue;
            };
            let reports = decode(&bytes, self.pipelines.len()).map_err(|reason| {
                ClusterRunError::ConnectionLost {
                    process: peer,
                    address: self.links.cluster().peers[peer].clone(),
                    reason: format!("unreadable pipeline counts: {reason}"),
                }
            })?;
            for (p, (pressure, finished)) in self.pipelines.iter().zip(reports) {
                p.state.apply_remote(peer, finished, pressure);
            }
        }
        Ok(())
    }
}

/// The `(pressure, finished by origin)` of each of `pipelines` pipelines in `bytes`.
fn decode(bytes: &[u8], pipelines: usize) -> Result<Vec<(f64, Vec<u64>)>, String> {
    let mut at = 0;
    let mut take = |n: usize| -> Result<&[u8], String> {
        let part = bytes
            .get(at..at + n)
            .ok_or_else(|| format!("{} bytes where at least {} are needed", bytes.len(), at + n))?;
        at += n;
        Ok(part)
    };
    let u64_of = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("8 bytes"));
    let mut all = Vec::with_capacity(pipelines);
    for _ in 0..pipelines {
        let pressure = f64::from_bits(u64_of(take(8)?));
        let origins = u32::from_be_bytes(take(4)?.try_into().expect("4 bytes")) as usize;
        let finished = take(8 * origins)?.chunks_exact(8).map(u64_of).collect();
        all.push((pressure, finished));
    }
    if at != bytes.len() {
        return Err(format!(
            "{} bytes after the last pipeline",
            bytes.len() - at
        ));
    }
    Ok(all)
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn reports_decode_and_short_or_long_ones_are_errors() {
        let mut bytes = 0.5f64.to_bits().to_be_bytes().to_vec();
        bytes.extend_from_slice(&2u32.to_be_bytes());
        bytes.extend_from_slice(&7u64.to_be_bytes());
        bytes.extend_from_slice(&9u64.to_be_bytes());
        assert_eq!(decode(&bytes, 1).unwrap(), vec![(0.5, vec![7, 9])]);
        assert!(decode(&bytes[..bytes.len() - 1], 1).is_err());
        assert!(decode(&bytes, 2).is_err());
        bytes.push(0);
        assert!(decode(&bytes, 1).is_err());
    }
}
