//! `ClusterLinks`: the connections of the processes of one job, set up here by
//! threads standing in for processes, in plain TCP and over mutual TLS.

use std::path::PathBuf;
use std::time::Duration;

use flink_core::cluster::{ClusterConfig, ClusterTls};
use flink_runtime::cluster::launcher::free_loopback_ports;
use flink_runtime::cluster::{ClusterLinks, ClusterRunError};

fn configs(n: usize) -> Vec<ClusterConfig> {
    let peers: Vec<String> = free_loopback_ports(n)
        .unwrap()
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect();
    (0..n)
        .map(|i| {
            ClusterConfig::new(n, i, peers.clone(), b"s3cret".to_vec())
                .with_connect_timeout(Duration::from_secs(20))
        })
        .collect()
}

fn tls(node: &str, ca: &str) -> ClusterTls {
    let dir = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tls"));
    ClusterTls {
        cert: dir.join(format!("{node}-node.pem")),
        key: dir.join(format!("{node}-node.key")),
        ca: dir.join(format!("{ca}-ca.pem")),
        server_name: "flink-rs".into(),
    }
}

/// Every process's links, established concurrently.
fn establish(configs: Vec<ClusterConfig>) -> Vec<Result<ClusterLinks, ClusterRunError>> {
    let threads: Vec<_> = configs
        .into_iter()
        .map(|c| std::thread::spawn(move || ClusterLinks::establish(&c, "job graph 00", 4096)))
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// Closes every process's side and waits until every peer closed too.
fn close_all(links: &[ClusterLinks]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    // Every process asks every round (as each would in its own loop).
    while !links
        .iter()
        .map(|l| l.close_when_drained(&[]))
        .fold(true, |all, closed| all & closed)
    {
        assert!(std::time::Instant::now() < deadline, "Close never arrived");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(links.iter().all(|l| l.failure().is_none()));
}

#[test]
fn three_processes_connect_pairwise_and_close_in_order() {
    let links: Vec<ClusterLinks> = establish(configs(3))
        .into_iter()
        .map(Result::unwrap)
        .collect();
    for (me, l) in links.iter().enumerate() {
        assert!(l.to(me).is_none());
        for peer in (0..3).filter(|&p| p != me) {
            assert_eq!(l.to(peer).unwrap().peer_process() as usize, peer);
        }
    }
    close_all(&links);
}

#[test]
fn processes_connect_over_mutual_tls_and_refuse_a_foreign_ca() {
    let ok: Vec<ClusterConfig> = configs(2)
        .into_iter()
        .map(|c| c.with_tls(tls("cluster", "cluster")))
        .collect();
    let links: Vec<ClusterLinks> = establish(ok).into_iter().map(Result::unwrap).collect();
    close_all(&links);

    let mut mixed = configs(2);
    mixed[1] = mixed[1].clone().with_tls(tls("other", "other"));
    mixed[0] = mixed[0].clone().with_tls(tls("cluster", "cluster"));
    for result in establish(mixed) {
        let err = result.unwrap_err().to_string();
        assert!(err.contains("TLS"), "{err}");
    }
}

#[test]
fn unreadable_tls_files_are_a_clear_error() {
    let mut config = configs(1).remove(0);
    config.tls = Some(ClusterTls {
        cert: "/nonexistent/node.pem".into(),
        ..tls("cluster", "cluster")
    });
    let err = ClusterLinks::establish(&config, "job", 4096).unwrap_err();
    assert!(matches!(err, ClusterRunError::Tls(_)), "{err}");
    assert!(err.to_string().contains("/nonexistent/node.pem"), "{err}");
}
