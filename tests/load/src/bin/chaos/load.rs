//! The clients: several per tenant, each with its own keep-alive HTTPS connection
//! pool (HTTP/2 or HTTP/1.1 by ALPN), sending a mix of JSON and streaming chat
//! completions and recording what they saw of each.

use crate::setup::{ApiKey, Authority};
use crate::sweep::Sweep;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Clients per tenant.
pub const CLIENTS_PER_TENANT: usize = 3;
/// A client's pause between requests: the soak is about correctness under chaos, not
/// throughput, and shares two cores with the gateway.
const PAUSE: Duration = Duration::from_millis(20);
/// Longer than any answer the gateway may give (its total timeout is 4 s per attempt).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// How a request ended, as its client saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Seen {
    /// 2xx, and the whole answer: JSON that parsed, or a stream ending with `[DONE]`.
    Completed,
    /// 2xx whose body broke off or carried an error event.
    Interrupted,
    /// An answer with another status (its OpenAI error code is kept).
    Refused,
    /// No answer: the connection failed (the gateway was down or restarting).
    Unreachable,
}

/// One request and what its client saw.
#[derive(Debug, Clone)]
pub struct Record {
    pub tenant: &'static str,
    pub key_id: String,
    pub stream: bool,
    pub request_id: Option<String>,
    pub status: Option<u16>,
    pub code: String,
    pub seen: Seen,
    /// The usage the answer reported (input, output), when it reported one.
    pub usage: Option<(u64, u64)>,
}

/// What every client shares.
pub struct Shared {
    pub records: Mutex<Vec<Record>>,
    pub stop: AtomicBool,
    pub sweep: Arc<Sweep>,
}

impl Shared {
    pub fn record(&self, record: Record) {
        if let Ok(mut records) = self.records.lock() {
            records.push(record);
        }
    }

    pub fn records(&self) -> Vec<Record> {
        self.records.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// An HTTPS client of the API listener.
pub struct ApiClient {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    url: String,
}

impl ApiClient {
    pub fn new(authority: &Authority, port: u16, h2: bool) -> anyhow::Result<ApiClient> {
        let alpn: &[&[u8]] = if h2 {
            &[b"h2", b"http/1.1"]
        } else {
            &[b"http/1.1"]
        };
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let config = Arc::unwrap_or_clone(authority.client_config(alpn)?);
        let connector = HttpsConnector::from((http, config));
        Ok(ApiClient {
            client: Client::builder(TokioExecutor::new()).build(connector),
            url: format!("https://127.0.0.1:{port}/v1/chat/completions"),
        })
    }

    /// Sends one chat completion and reads the whole answer; every header and byte
    /// of it goes through the sweep.
    pub async fn chat(
        &self,
        key: &ApiKey,
        stream: bool,
        include_usage: bool,
        headers: &[(&str, &str)],
        sweep: &Sweep,
    ) -> Record {
        let mut body =
            json!({"model": "m", "messages": [{"role": "user", "content": "Say a few words."}]});
        if stream {
            body["stream"] = json!(true);
            if include_usage {
                body["stream_options"] = json!({"include_usage": true});
            }
        }
        let mut record = Record {
            tenant: key.tenant,
            key_id: key.id.clone(),
            stream,
            request_id: None,
            status: None,
            code: String::new(),
            seen: Seen::Unreachable,
            usage: None,
        };
        let mut request = http::Request::post(&self.url)
            .header("authorization", format!("Bearer {}", key.secret))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let Ok(request) = request.body(Full::new(Bytes::from(body.to_string()))) else {
            return record;
        };
        let response =
            match tokio::time::timeout(REQUEST_TIMEOUT, self.client.request(request)).await {
                Ok(Ok(response)) => response,
                _ => return record,
            };
        let (parts, body) = response.into_parts();
        record.status = Some(parts.status.as_u16());
        record.request_id = parts
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        sweep.scan(
            "a response's headers",
            format!("{:?}", parts.headers).as_bytes(),
        );
        let read = tokio::time::timeout(REQUEST_TIMEOUT, body.collect()).await;
        let (bytes, whole) = match read {
            Ok(Ok(collected)) => (collected.to_bytes(), true),
            _ => (Bytes::new(), false),
        };
        sweep.scan("a response's body", &bytes);
        if !parts.status.is_success() {
            record.seen = Seen::Refused;
            record.code = serde_json::from_slice::<Value>(&bytes)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_owned))
                .unwrap_or_default();
            return record;
        }
        let (complete, usage) = if !whole {
            (false, None)
        } else if stream {
            read_stream(&bytes)
        } else {
            read_json(&bytes)
        };
        record.seen = if complete {
            Seen::Completed
        } else {
            Seen::Interrupted
        };
        record.usage = usage;
        record
    }
}

fn usage_of(v: &Value) -> Option<(u64, u64)> {
    Some((
        v["usage"]["prompt_tokens"].as_u64()?,
        v["usage"]["completion_tokens"].as_u64()?,
    ))
}

/// A JSON answer is complete when it parses as a chat completion.
fn read_json(bytes: &[u8]) -> (bool, Option<(u64, u64)>) {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(v) if v["choices"].is_array() => (true, usage_of(&v)),
        _ => (false, None),
    }
}

/// A stream is complete when every event is a JSON chunk without an error and the
/// last is `[DONE]`.
fn read_stream(bytes: &[u8]) -> (bool, Option<(u64, u64)>) {
    let text = String::from_utf8_lossy(bytes);
    let mut usage = None;
    let mut done = false;
    for event in text.split("\n\n").filter(|e| !e.trim().is_empty()) {
        let Some(data) = event.strip_prefix("data: ") else {
            return (false, None);
        };
        if done {
            return (false, None);
        }
        if data == "[DONE]" {
            done = true;
            continue;
        }
        match serde_json::from_str::<Value>(data) {
            Ok(v) if v.get("error").is_none() => {
                if let Some(u) = usage_of(&v) {
                    usage = Some(u);
                }
            }
            _ => return (false, None),
        }
    }
    (done, usage)
}

/// Starts `CLIENTS_PER_TENANT` clients for each tenant; each alternates its tenant's
/// keys, JSON and streams (two streams in three ask for the usage chunk).
pub fn spawn_clients(
    shared: &Arc<Shared>,
    authority: &Authority,
    port: u16,
    keys: &[ApiKey],
) -> anyhow::Result<Vec<tokio::task::JoinHandle<()>>> {
    let mut tasks = Vec::new();
    let tenants: Vec<&'static str> = {
        let mut t: Vec<_> = keys.iter().map(|k| k.tenant).collect();
        t.dedup();
        t
    };
    for (t, tenant) in tenants.iter().enumerate() {
        let own: Vec<ApiKey> = keys
            .iter()
            .filter(|k| k.tenant == *tenant)
            .cloned()
            .collect();
        for c in 0..CLIENTS_PER_TENANT {
            let client = ApiClient::new(authority, port, (t + c) % 2 == 0)?;
            let (shared, own) = (shared.clone(), own.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = c;
                while !shared.stop.load(Relaxed) {
                    let key = &own[n % own.len()];
                    let stream = (n / own.len()) % 2 == 0;
                    let record = client
                        .chat(key, stream, n % 3 != 0, &[], &shared.sweep)
                        .await;
                    let pause = if record.seen == Seen::Unreachable {
                        PAUSE * 5
                    } else {
                        PAUSE
                    };
                    shared.record(record);
                    n += 1;
                    tokio::time::sleep(pause).await;
                }
            }));
        }
    }
    Ok(tasks)
}
