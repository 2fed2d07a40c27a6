//! A small blocking Kafka-protocol client for the requests librdkafka does not offer:
//! finding a transactional id's coordinator, describing and listing transactions,
//! and ending a transaction with a producer id and epoch learnt from the broker
//! (which is how the exactly-once sink commits a transaction whose producer died
//! with its process, as Flink's `KafkaCommitter` does with the producer id and epoch
//! stored in its checkpoint).
//!
//! Messages are the `kafka-protocol` crate's generated types; the client only frames
//! them (`length | header | body`) on a plaintext TCP connection and picks, per API,
//! the highest version both sides support (from `ApiVersions`). SASL and TLS are not
//! spoken: see `docs/connectors.md`.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use kafka_protocol::messages::{
    ApiVersionsRequest, DescribeTransactionsRequest, EndTxnRequest, FindCoordinatorRequest,
    InitProducerIdRequest, ListTransactionsRequest, MetadataRequest, RequestHeader, ResponseHeader,
    TransactionalId,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

use super::error::KafkaConnectorError;

/// Connect, read and write timeout of every request.
const IO_TIMEOUT: Duration = Duration::from_secs(30);
/// `FindCoordinator`'s key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;
/// Kafka's `COORDINATOR_LOAD_IN_PROGRESS`, `COORDINATOR_NOT_AVAILABLE`,
/// `NOT_COORDINATOR` and `CONCURRENT_TRANSACTIONS`: worth asking again.
const RETRIABLE: [i16; 4] = [14, 15, 16, 51];
/// Kafka's `TRANSACTIONAL_ID_NOT_FOUND`.
pub(super) const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;
/// How often a retriable answer is asked again, 100 ms apart.
const RETRIES: u32 = 100;

/// One connection to one broker, with the API versions it supports.
struct Connection {
    address: String,
    stream: TcpStream,
    correlation: i32,
    /// Highest supported version by API key.
    versions: HashMap<i16, (i16, i16)>,
}

impl Connection {
    fn open(address: &str) -> Result<Self, KafkaConnectorError> {
        let io = |e: std::io::Error| protocol_error(address, format!("connect: {e}"));
        let socket = address
            .to_socket_addrs()
            .map_err(io)?
            .next()
            .ok_or_else(|| protocol_error(address, "no address".into()))?;
        let stream = TcpStream::connect_timeout(&socket, IO_TIMEOUT).map_err(io)?;
        stream.set_read_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_write_timeout(Some(IO_TIMEOUT)).map_err(io)?;
        stream.set_nodelay(true).map_err(io)?;
        let mut conn = Self {
            address: address.to_string(),
            stream,
            correlation: 0,
            versions: HashMap::new(),
        };
        // Version 0: every broker answers it, whatever it supports.
        let answer = conn.exchange(&ApiVersionsRequest::default(), 0)?;
        if answer.error_code != 0 {
            return Err(protocol_error(
                address,
                format!("ApiVersions error {}", answer.error_code),
            ));
        }
        conn.versions = answer
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        Ok(conn)
    }

    /// Sends `request` at the highest version both sides support.
    fn call<R: Request>(&mut self, request: &R) -> Result<R::Response, KafkaConnectorError> {
        let version = self.version::<R>()?;
        self.exchange(request, version)
    }

    /// The highest version of `R` both sides support.
    fn version<R: Request>(&self) -> Result<i16, KafkaConnectorError> {
        let (broker_min, broker_max) = self.versions.get(&R::KEY).copied().ok_or_else(|| {
            protocol_error(
                &self.address,
                format!("the broker lacks API key {}", R::KEY),
            )
        })?;
        let version = broker_max.min(R::VERSIONS.max);
        if version < broker_min.max(R::VERSIONS.min) {
            return Err(protocol_error(
                &self.address,
                format!("no common version of API key {}", R::KEY),
            ));
        }
        Ok(version)
    }

    /// One request and its response, at `version`.
    fn exchange<R: Request>(
        &mut self,
        request: &R,
        version: i16,
    ) -> Result<R::Response, KafkaConnectorError> {
        self.correlation = self.correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("flink-rs-txn")));
        let address = self.address.clone();
        let mut body = BytesMut::new();
        header
            .encode(&mut body, R::header_version(version))
            .and_then(|()| request.encode(&mut body, version))
            .map_err(|e| protocol_error(&address, format!("encode API key {}: {e}", R::KEY)))?;
        let io = |e: std::io::Error| protocol_error(&address, format!("I/O: {e}"));
        let length = i32::try_from(body.len()).expect("requests are small");
        self.stream
            .write_all(&length.to_be_bytes())
            .and_then(|()| self.stream.write_all(&body))
            .map_err(io)?;
        let mut length = [0u8; 4];
        self.stream.read_exact(&mut length).map_err(io)?;
        let length = usize::try_from(i32::from_be_bytes(length))
            .map_err(|_| protocol_error(&address, "negative response length".into()))?;
        let mut answer = vec![0u8; length];
        self.stream.read_exact(&mut answer).map_err(io)?;
        let mut answer = bytes::Bytes::from(answer);
        let header = ResponseHeader::decode(
            &mut answer,
            <R::Response as HeaderVersion>::header_version(version),
        )
        .map_err(|e| protocol_error(&address, format!("decode: {e}")))?;
        if header.correlation_id != self.correlation {
            return Err(protocol_error(
                &address,
                format!(
                    "answer {} to request {}",
                    header.correlation_id, self.correlation
                ),
            ));
        }
        let response = R::Response::decode(&mut answer, version)
            .map_err(|e| protocol_error(&address, format!("decode: {e}")))?;
        if answer.has_remaining() {
            tracing::debug!(left = answer.remaining(), "kafka: unread response bytes");
        }
        Ok(response)
    }
}

fn protocol_error(address: &str, message: String) -> KafkaConnectorError {
    KafkaConnectorError::Protocol {
        broker: address.to_string(),
        message,
    }
}

/// A transaction's state as its coordinator describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct TxnDescription {
    /// The producer id that holds the transactional id.
    pub(super) producer_id: i64,
    /// Its current epoch.
    pub(super) producer_epoch: i16,
    /// `Empty`, `Ongoing`, `PrepareCommit`, `CompleteCommit`, `PrepareAbort`,
    /// `CompleteAbort`, `Dead`, ...
    pub(super) state: String,
    /// Its transaction timeout.
    pub(super) transaction_timeout_ms: i32,
}

/// Speaks to the transaction coordinators of a cluster, connecting on demand.
pub(super) struct TxnCoordinators {
    bootstrap: Vec<String>,
    /// Open connections by `host:port`.
    connections: HashMap<String, Connection>,
}

impl TxnCoordinators {
    /// A client of the cluster behind `bootstrap` (`host:port,host:port`).
    pub(super) fn new(bootstrap: &str) -> Self {
        Self {
            bootstrap: bootstrap
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect(),
            connections: HashMap::new(),
        }
    }

    fn connection(&mut self, address: &str) -> Result<&mut Connection, KafkaConnectorError> {
        if !self.connections.contains_key(address) {
            let conn = Connection::open(address)?;
            self.connections.insert(address.to_string(), conn);
        }
        Ok(self.connections.get_mut(address).expect("just inserted"))
    }

    /// Calls the request `make` builds for the version chosen on the first bootstrap
    /// broker that answers.
    fn call_any<R: Request>(
        &mut self,
        make: impl Fn(i16) -> R,
    ) -> Result<R::Response, KafkaConnectorError> {
        let mut last = None;
        for address in self.bootstrap.clone() {
            let answer = self.connection(&address).and_then(|c| {
                let version = c.version::<R>()?;
                c.exchange(&make(version), version)
            });
            match answer {
                Ok(r) => return Ok(r),
                Err(e) => {
                    self.connections.remove(&address);
                    last = Some(e);
                }
            }
        }
        Err(last.unwrap_or(KafkaConnectorError::Missing("bootstrap_servers")))
    }

    /// Calls `request` on `address`, once more on a new connection if it broke.
    fn call_at<R: Request>(
        &mut self,
        address: &str,
        request: &R,
    ) -> Result<R::Response, KafkaConnectorError> {
        match self.connection(address).and_then(|c| c.call(request)) {
            Ok(r) => Ok(r),
            Err(_) => {
                self.connections.remove(address);
                self.connection(address)?.call(request)
            }
        }
    }

    /// The `host:port` of the coordinator of `transactional_id`.
    fn coordinator(&mut self, transactional_id: &str) -> Result<String, KafkaConnectorError> {
        let key = StrBytes::from_string(transactional_id.to_string());
        // Versions 4 and later take a list of keys, earlier ones a single key.
        let request = |version: i16| {
            let request = FindCoordinatorRequest::default().with_key_type(KEY_TYPE_TRANSACTION);
            if version >= 4 {
                request.with_coordinator_keys(vec![key.clone()])
            } else {
                request.with_key(key.clone())
            }
        };
        for _ in 0..RETRIES {
            let answer = self.call_any(request)?;
            // Versions 4 and later answer per key, earlier ones at the top level.
            let (error, host, port) = match answer.coordinators.first() {
                Some(c) => (c.error_code, c.host.to_string(), c.port),
                None => (answer.error_code, answer.host.to_string(), answer.port),
            };
            if error == 0 {
                return Ok(format!("{host}:{port}"));
            }
            if !RETRIABLE.contains(&error) {
                return Err(KafkaConnectorError::Coordinator {
                    transactional_id: transactional_id.to_string(),
                    request: "FindCoordinator",
                    error_code: error,
                });
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(KafkaConnectorError::Coordinator {
            transactional_id: transactional_id.to_string(),
            request: "FindCoordinator",
            error_code: 15,
        })
    }

    /// The state of `transactional_id`'s transaction; `None` when the coordinator
    /// does not know the id (it expired, or never had a transaction).
    pub(super) fn describe(
        &mut self,
        transactional_id: &str,
    ) -> Result<Option<TxnDescription>, KafkaConnectorError> {
        let request =
            DescribeTransactionsRequest::default().with_transactional_ids(vec![TransactionalId(
                StrBytes::from_string(transactional_id.to_string()),
            )]);
        for _ in 0..RETRIES {
            let coordinator = self.coordinator(transactional_id)?;
            let answer = self.call_at(&coordinator, &request)?;
            let state = answer
                .transaction_states
                .into_iter()
                .next()
                .ok_or_else(|| {
                    protocol_error(&coordinator, "DescribeTransactions: no state".into())
                })?;
            match state.error_code {
                0 => {
                    return Ok(Some(TxnDescription {
                        producer_id: state.producer_id.0,
                        producer_epoch: state.producer_epoch,
                        transaction_timeout_ms: state.transaction_timeout_ms,
                        state: state.transaction_state.to_string(),
                    }));
                }
                TRANSACTIONAL_ID_NOT_FOUND => return Ok(None),
                e if RETRIABLE.contains(&e) => std::thread::sleep(Duration::from_millis(100)),
                e => {
                    return Err(KafkaConnectorError::Coordinator {
                        transactional_id: transactional_id.to_string(),
                        request: "DescribeTransactions",
                        error_code: e,
                    });
                }
            }
        }
        Err(KafkaConnectorError::Coordinator {
            transactional_id: transactional_id.to_string(),
            request: "DescribeTransactions",
            error_code: 51,
        })
    }

    /// Ends the transaction of `transactional_id` held by `producer_id` at `epoch`:
    /// commits it (`commit`) or aborts it. Returns the broker's error code (0 on
    /// success) once it is not retriable: the caller knows what an error means.
    pub(super) fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    ) -> Result<i16, KafkaConnectorError> {
        let request = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            )))
            .with_producer_id(producer_id.into())
            .with_producer_epoch(epoch)
            .with_committed(commit);
        let mut error = 0;
        for _ in 0..RETRIES {
            let coordinator = self.coordinator(transactional_id)?;
            error = self.call_at(&coordinator, &request)?.error_code;
            if !RETRIABLE.contains(&error) {
                return Ok(error);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(error)
    }

    /// Fences `transactional_id` (`InitProducerId`, what a new producer with that id
    /// does): the coordinator aborts its open transaction and bumps its epoch, so
    /// requests of the old producer that arrive later are refused.
    pub(super) fn fence(
        &mut self,
        transactional_id: &str,
        transaction_timeout_ms: i32,
    ) -> Result<(), KafkaConnectorError> {
        let request = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(StrBytes::from_string(
                transactional_id.to_string(),
            ))))
            .with_transaction_timeout_ms(transaction_timeout_ms);
        let mut error = 0;
        for _ in 0..RETRIES {
            let coordinator = self.coordinator(transactional_id)?;
            error = self.call_at(&coordinator, &request)?.error_code;
            if error == 0 {
                return Ok(());
            }
            if !RETRIABLE.contains(&error) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(KafkaConnectorError::Coordinator {
            transactional_id: transactional_id.to_string(),
            request: "InitProducerId",
            error_code: error,
        })
    }

    /// The ongoing transactions whose ids start with `prefix`, on every broker of
    /// the cluster (each coordinates a share of the ids): (id, producer id).
    pub(super) fn ongoing(
        &mut self,
        prefix: &str,
    ) -> Result<Vec<(String, i64)>, KafkaConnectorError> {
        // No topics: only the brokers are wanted.
        let metadata = self.call_any(|version| {
            MetadataRequest::default()
                .with_topics(Some(Vec::new()))
                .with_allow_auto_topic_creation(version < 4)
        })?;
        let brokers: Vec<String> = metadata
            .brokers
            .iter()
            .map(|b| format!("{}:{}", b.host, b.port))
            .collect();
        let request = ListTransactionsRequest::default()
            .with_state_filters(vec![StrBytes::from_static_str("Ongoing")]);
        let mut found = Vec::new();
        for broker in brokers {
            let answer = self.call_at(&broker, &request)?;
            if answer.error_code != 0 {
                return Err(protocol_error(
                    &broker,
                    format!("ListTransactions error {}", answer.error_code),
                ));
            }
            found.extend(
                answer
                    .transaction_states
                    .into_iter()
                    .filter(|t| &*t.transaction_state == "Ongoing")
                    .map(|t| (t.transactional_id.0.to_string(), t.producer_id.0))
                    .filter(|(id, _)| id.starts_with(prefix)),
            );
        }
        Ok(found)
    }
}
