//! The job graph's fingerprint: processes that would wire different graphs refuse
//! each other in the handshake instead of exchanging records on misread channels.

use std::fmt::Write;

use flink_core::graph::JobGraph;
use sha2::{Digest, Sha256};

/// 16 hex digits of SHA-256 over what decides the wiring and the records' routes:
/// every operator (name, uid, parallelism, record type, sink or not), every edge
/// (ends, partitioner, side output), the chaining into vertices, the max parallelism
/// (key groups) and the buffer size. Two processes of one binary started with the
/// same arguments agree; another binary or other arguments most likely do not.
pub fn job_fingerprint(jg: &JobGraph) -> String {
    let sg = &jg.stream_graph;
    let mut text = String::new();
    let _ = writeln!(
        text,
        "max_parallelism={} buffer_size={}",
        sg.config.max_parallelism, sg.config.buffer_size
    );
    for n in &sg.nodes {
        let sides: Vec<&str> = n.side_types.iter().map(|(tag, _)| tag.as_str()).collect();
        let _ = writeln!(
            text,
            "node {} {:?} uid={:?} p={} type={} sink={} sides={sides:?}",
            n.id,
            n.name,
            n.uid,
            n.parallelism,
            n.output_type.type_name(),
            n.is_sink
        );
    }
    for e in &sg.edges {
        let _ = writeln!(
            text,
            "edge {} -> {} {} tag={:?}",
            e.source, e.target, e.partitioner.kind, e.tag
        );
    }
    for v in &jg.vertices {
        let _ = writeln!(
            text,
            "vertex {} p={} nodes={:?}",
            v.id, v.parallelism, v.nodes
        );
    }
    let digest = Sha256::digest(text.as_bytes());
    digest[..8].iter().fold(String::new(), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use flink_core::prelude::*;

    fn keyed(parallelism: usize, name: &str) -> JobGraph {
        let env = StreamExecutionEnvironment::new();
        env.set_parallelism(parallelism);
        env.from_sequence(1, 10)
            .map(|x| (x % 3, x))
            .key_by(|r: &(u64, u64)| r.0)
            .reduce(|a: (u64, u64), b: (u64, u64)| (a.0, a.1 + b.1))
            .name(name)
            .collect_vec();
        env.job_graph().unwrap()
    }

    #[test]
    fn same_program_same_fingerprint_and_any_change_another() {
        let a = job_fingerprint(&keyed(2, "Sum"));
        assert_eq!(a.len(), 16);
        assert_eq!(a, job_fingerprint(&keyed(2, "Sum")));
        assert_ne!(a, job_fingerprint(&keyed(4, "Sum")));
        assert_ne!(a, job_fingerprint(&keyed(2, "Total")));
    }
}
