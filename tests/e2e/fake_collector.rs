//! A fake OpenTelemetry collector: an OTLP/HTTP receiver on a real TCP port of
//! 127.0.0.1 that records every trace export and decodes it with the protocol's own
//! protobuf types, so a test sees the spans exactly as a real collector would.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
use prost::Message;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;

/// One span as exported, with what a test asserts on.
#[derive(Debug, Clone)]
pub struct ExportedSpan {
    pub name: String,
    pub trace_id: Vec<u8>,
    pub span_id: Vec<u8>,
    pub parent_span_id: Vec<u8>,
    /// `service.name` of the resource the span was exported under.
    pub service: String,
    pub attributes: Vec<(String, AttributeValue)>,
}

/// A span attribute's value, for the types the gateway records.
#[derive(Debug, Clone, PartialEq)]
pub enum AttributeValue {
    Str(String),
    Int(i64),
    Double(f64),
    Bool(bool),
    /// An array of strings (e.g. `gen_ai.response.finish_reasons`).
    Strs(Vec<String>),
    Other(String),
}

impl ExportedSpan {
    /// The attribute `key`, if the span has it.
    pub fn attribute(&self, key: &str) -> Option<&AttributeValue> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// The string attribute `key`, or "".
    pub fn str(&self, key: &str) -> &str {
        match self.attribute(key) {
            Some(AttributeValue::Str(s)) => s,
            _ => "",
        }
    }
}

/// A request the receiver got: its path, content type and raw body.
#[derive(Debug, Clone)]
pub struct Export {
    pub path: String,
    pub content_type: String,
    pub body: Bytes,
}

/// A running receiver; it stops when dropped.
pub struct FakeCollector {
    addr: std::net::SocketAddr,
    exports: Arc<Mutex<Vec<Export>>>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeCollector {
    /// Listens on a free port and answers every export with an empty success.
    pub async fn start() -> FakeCollector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let exports = Arc::new(Mutex::new(Vec::new()));
        let recorded = exports.clone();
        let task = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let recorded = recorded.clone();
                let service = hyper::service::service_fn(move |req| receive(recorded.clone(), req));
                tokio::spawn(async move {
                    // A client that goes away mid-request is no test failure here.
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        FakeCollector {
            addr,
            exports,
            task,
        }
    }

    /// The base URL, as `[telemetry] otlp_endpoint` takes it.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every request received so far.
    pub fn exports(&self) -> Vec<Export> {
        self.exports
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Every span of every trace export so far, decoded.
    pub fn spans(&self) -> Vec<ExportedSpan> {
        self.exports()
            .iter()
            .filter(|e| e.path == "/v1/traces")
            .flat_map(|e| decode(&e.body))
            .collect()
    }

    /// Waits until `done` holds for the spans received, or `within` passes.
    pub async fn wait_for_spans(
        &self,
        within: Duration,
        done: impl Fn(&[ExportedSpan]) -> bool,
    ) -> Vec<ExportedSpan> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let spans = self.spans();
            if done(&spans) || tokio::time::Instant::now() >= deadline {
                return spans;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for FakeCollector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn receive(
    exports: Arc<Mutex<Vec<Export>>>,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_owned();
    let content_type = request
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    exports
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(Export {
            path,
            content_type,
            body,
        });
    // An empty ExportTraceServiceResponse: everything accepted.
    let response = Response::builder()
        .status(StatusCode::OK)
        .header(http::header::CONTENT_TYPE, "application/x-protobuf")
        .body(Full::new(Bytes::new()))
        .unwrap();
    Ok(response)
}

/// The spans of one protobuf `ExportTraceServiceRequest`.
fn decode(body: &[u8]) -> Vec<ExportedSpan> {
    let request = ExportTraceServiceRequest::decode(body)
        .unwrap_or_else(|e| panic!("not an OTLP trace export ({e})"));
    let mut spans = Vec::new();
    for resource_spans in request.resource_spans {
        let resource = resource_spans.resource.unwrap_or_default();
        let service = attributes(&resource.attributes)
            .into_iter()
            .find(|(k, _)| k == "service.name")
            .map(|(_, v)| match v {
                AttributeValue::Str(s) => s,
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(ExportedSpan {
                    name: span.name,
                    trace_id: span.trace_id,
                    span_id: span.span_id,
                    parent_span_id: span.parent_span_id,
                    service: service.clone(),
                    attributes: attributes(&span.attributes),
                });
            }
        }
    }
    spans
}

fn attributes(list: &[KeyValue]) -> Vec<(String, AttributeValue)> {
    list.iter()
        .map(|kv| (kv.key.clone(), value(kv.value.as_ref())))
        .collect()
}

fn value(v: Option<&AnyValue>) -> AttributeValue {
    match v.and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => AttributeValue::Str(s.clone()),
        Some(any_value::Value::IntValue(i)) => AttributeValue::Int(*i),
        Some(any_value::Value::DoubleValue(d)) => AttributeValue::Double(*d),
        Some(any_value::Value::BoolValue(b)) => AttributeValue::Bool(*b),
        Some(any_value::Value::ArrayValue(array))
            if array
                .values
                .iter()
                .all(|v| matches!(v.value, Some(any_value::Value::StringValue(_)))) =>
        {
            AttributeValue::Strs(
                array
                    .values
                    .iter()
                    .filter_map(|v| match &v.value {
                        Some(any_value::Value::StringValue(s)) => Some(s.clone()),
                        _ => None,
                    })
                    .collect(),
            )
        }
        other => AttributeValue::Other(format!("{other:?}")),
    }
}
