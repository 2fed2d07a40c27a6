//! An HTTP client for connectors and the async I/O operator: `call` resolves to the
//! response for a 2xx answer and to a [`DeliveryError`] otherwise.

use std::sync::Arc;
use std::time::Duration;

use flink_core::destination::DeliveryError;
use futures::future::BoxFuture;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::runtime::OwnedRuntime;

/// An HTTP method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpMethod {
    /// GET.
    Get,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
}

/// A request to send with [`HttpClient::call`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// The method.
    pub method: HttpMethod,
    /// The absolute URL.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// The body, if any.
    pub body: Option<Vec<u8>>,
}

impl HttpRequest {
    /// A GET of `url`.
    pub fn get(url: &str) -> Self {
        Self {
            method: HttpMethod::Get,
            url: url.to_string(),
            headers: Vec::new(),
            body: None,
        }
    }

    /// A POST of `value` as JSON to `url`.
    ///
    /// # Errors
    /// When `value` cannot be serialized.
    pub fn post_json<T: Serialize + ?Sized>(
        url: &str,
        value: &T,
    ) -> Result<Self, serde_json::Error> {
        Ok(Self {
            method: HttpMethod::Post,
            url: url.to_string(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(serde_json::to_vec(value)?),
        })
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_string(), value.to_string()));
        self
    }
}

/// A 2xx response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// The status code.
    pub status: u16,
    /// The headers (values that are not UTF-8 are left out).
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// The body as JSON.
    ///
    /// # Errors
    /// When the body is not a JSON document of `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }
}

/// What a status code means for delivery: `Ok` for 2xx; [`DeliveryError::Retryable`]
/// for 5xx, 429 (too many requests) and 408 (request timeout); and
/// [`DeliveryError::Permanent`] for every other code (other 4xx, and 1xx or 3xx
/// left after redirects were followed). `detail` is added to the message.
pub fn status_outcome(status: u16, detail: &str) -> Result<(), DeliveryError> {
    let message = format!(
        "HTTP {status}{}{detail}",
        if detail.is_empty() { "" } else { ": " }
    );
    match status {
        200..=299 => Ok(()),
        408 | 429 | 500..=599 => Err(DeliveryError::Retryable(message)),
        _ => Err(DeliveryError::Permanent(message)),
    }
}

/// Sends requests on its own small tokio runtime (so the futures of [`call`] can be
/// awaited on any executor), with a per-request timeout. Cheap to clone: clones share
/// the connection pool and runtime.
///
/// - 2xx: `Ok(response)`.
/// - 5xx, 429, 408, a timeout, a refused or broken connection:
///   [`DeliveryError::Retryable`].
/// - any other status, or a request that cannot be built: [`DeliveryError::Permanent`].
///
/// Error messages name the method, URL and status, and carry the start of the
/// response body.
///
/// ```no_run
/// use flink_connectors::http::{HttpClient, HttpRequest};
///
/// let client = HttpClient::new(std::time::Duration::from_secs(5)).unwrap();
/// let response = futures::executor::block_on(client.call(HttpRequest::get("http://127.0.0.1:8080/health")));
/// # let _ = response;
/// ```
///
/// [`call`]: HttpClient::call
#[derive(Clone)]
pub struct HttpClient {
    client: reqwest::Client,
    runtime: Arc<OwnedRuntime>,
}

impl std::fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpClient").finish_non_exhaustive()
    }
}

/// How much of an error response's body goes into the error message.
const BODY_IN_MESSAGE: usize = 200;

impl HttpClient {
    /// A client whose requests time out after `timeout` (connecting included).
    ///
    /// # Errors
    /// When the client or its runtime cannot be created.
    pub fn new(timeout: Duration) -> Result<Self, String> {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| e.to_string())?;
        let runtime = OwnedRuntime::new("http-client", 1).map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            runtime: Arc::new(runtime),
        })
    }

    /// Sends `request`; resolves to the response of a 2xx answer, or to why not.
    ///
    /// Dropping the returned future (as the async operator does when its timeout
    /// fires) aborts the request and closes its connection at once, rather than
    /// leaving it to run until the client's own timeout.
    pub fn call(
        &self,
        request: HttpRequest,
    ) -> BoxFuture<'static, Result<HttpResponse, DeliveryError>> {
        let client = self.client.clone();
        let task = AbortOnDrop(self.runtime.handle().spawn(send(client, request)));
        Box::pin(async move {
            let mut task = task;
            (&mut task.0)
                .await
                .map_err(|e| DeliveryError::Retryable(format!("HTTP task ended: {e}")))?
        })
    }
}

/// A spawned request that is aborted when whoever awaits it gives up: the request
/// runs on the client's runtime, so dropping only the handle would leave it running.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        // A no-op when the request has already finished.
        self.0.abort();
    }
}

fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    s
}

async fn send(
    client: reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, DeliveryError> {
    let method = match request.method {
        HttpMethod::Get => reqwest::Method::GET,
        HttpMethod::Post => reqwest::Method::POST,
        HttpMethod::Put => reqwest::Method::PUT,
        HttpMethod::Patch => reqwest::Method::PATCH,
        HttpMethod::Delete => reqwest::Method::DELETE,
    };
    let what = format!("{method} {}", request.url);
    let mut builder = client.request(method, &request.url);
    for (k, v) in &request.headers {
        builder = builder.header(k, v);
    }
    if let Some(body) = request.body {
        builder = builder.body(body);
    }
    let response = match builder.send().await {
        Ok(r) => r,
        Err(e) if e.is_builder() => {
            return Err(DeliveryError::Permanent(format!(
                "{what}: {}",
                describe(&e)
            )));
        }
        Err(e) if e.is_timeout() => {
            return Err(DeliveryError::Retryable(format!(
                "{what}: timed out: {}",
                describe(&e)
            )));
        }
        Err(e) => {
            return Err(DeliveryError::Retryable(format!(
                "{what}: {}",
                describe(&e)
            )));
        }
    };
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_string())))
        .collect();
    let body = match response.bytes().await {
        Ok(b) => b.to_vec(),
        Err(e) if e.is_timeout() => {
            return Err(DeliveryError::Retryable(format!(
                "{what}: HTTP {status}, timed out reading the body: {}",
                describe(&e)
            )));
        }
        Err(e) => {
            return Err(DeliveryError::Retryable(format!(
                "{what}: HTTP {status}, reading the body: {}",
                describe(&e)
            )));
        }
    };
    let snippet: String = String::from_utf8_lossy(&body)
        .chars()
        .take(BODY_IN_MESSAGE)
        .collect();
    status_outcome(status, &format!("{what}: {snippet}"))?;
    Ok(HttpResponse {
        status,
        headers,
        body,
    })
}
