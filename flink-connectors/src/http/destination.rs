//! An [`AckDestination`] POSTing each record as JSON; a 2xx answer is the ack.

use std::marker::PhantomData;
use std::time::Duration;

use flink_core::destination::{AckDestination, DeliveryError};
use futures::future::BoxFuture;
use serde::Serialize;

use super::client::{HttpClient, HttpRequest};

/// POSTs each record as a JSON document to one URL. A 2xx answer acknowledges it;
/// 5xx, 429, 408, timeouts and connection failures are [`DeliveryError::Retryable`];
/// other 4xx are [`DeliveryError::Permanent`] (see [`HttpClient`]). Retrying is the
/// caller's business (the async I/O operator's retry policy), so is the bound on
/// pending sends.
///
/// ```no_run
/// use flink_connectors::http::HttpDestination;
/// use flink_core::destination::AckDestination;
///
/// let dest = HttpDestination::<serde_json::Value>::new("http://127.0.0.1:8080/events").unwrap();
/// futures::executor::block_on(dest.send(serde_json::json!({"id": 1}))).unwrap();
/// ```
pub struct HttpDestination<T> {
    client: HttpClient,
    url: String,
    headers: Vec<(String, String)>,
    _records: PhantomData<fn(T)>,
}

impl<T> HttpDestination<T> {
    /// POSTs to `url`, each request timing out after 30 s.
    ///
    /// # Errors
    /// When the HTTP client cannot be created.
    pub fn new(url: &str) -> Result<Self, String> {
        Self::with_timeout(url, Duration::from_secs(30))
    }

    /// POSTs to `url`, each request timing out after `timeout`.
    ///
    /// # Errors
    /// When the HTTP client cannot be created.
    pub fn with_timeout(url: &str, timeout: Duration) -> Result<Self, String> {
        Ok(Self::with_client(HttpClient::new(timeout)?, url))
    }

    /// POSTs to `url` through `client`.
    pub fn with_client(client: HttpClient, url: &str) -> Self {
        Self {
            client,
            url: url.to_string(),
            headers: Vec::new(),
            _records: PhantomData,
        }
    }

    /// Adds a header to every request (an authorization token, say).
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

impl<T: Serialize + Send + 'static> AckDestination<T> for HttpDestination<T> {
    fn send(&self, record: T) -> BoxFuture<'static, Result<(), DeliveryError>> {
        let request = match HttpRequest::post_json(&self.url, &record) {
            Ok(r) => r,
            Err(e) => {
                let err = DeliveryError::Permanent(format!("cannot serialize the record: {e}"));
                return Box::pin(async move { Err(err) });
            }
        };
        let request = self
            .headers
            .iter()
            .fold(request, |r, (k, v)| r.header(k, v));
        let call = self.client.call(request);
        Box::pin(async move { call.await.map(|_| ()) })
    }
}
