//! The admin API, as an operator uses it: policy versions, usage, metrics. Every
//! answer goes through the sweep.

use crate::sweep::Sweep;
use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub struct Admin {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
    token: String,
    sweep: Arc<Sweep>,
}

impl Admin {
    pub fn new(port: u16, token: &str, sweep: Arc<Sweep>) -> Admin {
        Admin {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base: format!("http://127.0.0.1:{port}"),
            token: token.to_owned(),
            sweep,
        }
    }

    /// Status and body text of a call.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
    ) -> anyhow::Result<(u16, String)> {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))?;
        let response = tokio::time::timeout(Duration::from_secs(120), self.client.request(request))
            .await
            .with_context(|| format!("{method} {path}: no answer in 120 s"))?
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        self.sweep.scan(
            &format!("the admin API's headers for {path}"),
            format!("{:?}", response.headers()).as_bytes(),
        );
        let bytes = response.into_body().collect().await?.to_bytes();
        self.sweep
            .scan(&format!("the admin API's answer to {path}"), &bytes);
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }

    /// A call that must answer `expect`; its body as JSON.
    pub async fn expect(
        &self,
        method: &str,
        path: &str,
        body: Vec<u8>,
        expect: u16,
    ) -> anyhow::Result<Value> {
        let (status, text) = self.call(method, path, body).await?;
        if status != expect {
            bail!("{method} {path}: {status} (expected {expect}): {text}");
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Uploads a component, smoke-tested with `config`; its version.
    pub async fn upload(
        &self,
        tenant: &str,
        name: &str,
        wasm: Vec<u8>,
        config: &Value,
    ) -> anyhow::Result<String> {
        let config = percent_encode(&config.to_string());
        let path = format!("/admin/tenants/{tenant}/policies?name={name}&config={config}");
        let (status, text) = self.call("POST", &path, wasm).await?;
        if !matches!(status, 200 | 201) {
            bail!("POST {path}: {status}: {text}");
        }
        let meta: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        meta["version"]
            .as_str()
            .map(str::to_owned)
            .with_context(|| format!("upload answered without a version: {meta}"))
    }

    pub async fn activate(
        &self,
        tenant: &str,
        version: &str,
        config: &Value,
    ) -> anyhow::Result<()> {
        let body = serde_json::json!({"version": version, "config": config}).to_string();
        let path = format!("/admin/tenants/{tenant}/activate");
        self.expect("POST", &path, body.into_bytes(), 200).await?;
        Ok(())
    }

    pub async fn rollback(&self, tenant: &str) -> anyhow::Result<()> {
        let path = format!("/admin/tenants/{tenant}/rollback");
        self.expect("POST", &path, Vec::new(), 200).await?;
        Ok(())
    }

    /// The tenant's versions report.
    pub async fn report(&self, tenant: &str) -> anyhow::Result<Value> {
        self.expect(
            "GET",
            &format!("/admin/tenants/{tenant}/policies"),
            Vec::new(),
            200,
        )
        .await
    }

    /// A `/metrics` scrape.
    pub async fn metrics(&self) -> anyhow::Result<Metrics> {
        let (status, text) = self.call("GET", "/metrics", Vec::new()).await?;
        if status != 200 {
            bail!("/metrics: {status}: {text}");
        }
        Ok(Metrics(text))
    }
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A Prometheus text scrape.
pub struct Metrics(pub String);

impl Metrics {
    /// Samples of `name` whose labels contain every `label="value"` in `with`.
    pub fn samples(&self, name: &str, with: &[(&str, &str)]) -> Vec<f64> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let (metric, labels) = match series.split_once('{') {
                    Some((m, rest)) => (m, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                if metric != name {
                    return None;
                }
                with.iter()
                    .all(|(k, v)| labels.split(',').any(|p| p == format!("{k}=\"{v}\"")))
                    .then(|| value.parse().ok())
                    .flatten()
            })
            .collect()
    }

    /// The sum of [`samples`](Self::samples) (0 when there are none).
    pub fn sum(&self, name: &str, with: &[(&str, &str)]) -> f64 {
        self.samples(name, with).iter().sum()
    }
}
