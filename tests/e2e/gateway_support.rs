//! A real gateway on a real port, configured against fake upstreams, and a small HTTP
//! client to talk to it.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use signalbox::config::Config;
use signalbox::gateway::Gateway;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

/// The API key of tenant `acme` in [`config`].
pub const KEY: &str = "sb-test-acme-key";

/// A gateway serving on 127.0.0.1 until dropped, started exactly as `signalbox serve`
/// starts one; with `[admin] listen` in its config, its admin API too (on another
/// port), and with `policies_dir`, the watcher.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub admin: Option<SocketAddr>,
    pub gateway: Arc<Gateway>,
    running: signalbox::running::Running,
}

impl TestGateway {
    /// Starts a gateway from TOML config text (secrets: `TEST_KEY` is set). With a
    /// `[server.tls]` section it serves HTTPS, as `serve` does.
    pub async fn start(toml: &str) -> TestGateway {
        let mut config = Config::parse(toml, "test.toml", Path::new("."), &|name| {
            (name == "TEST_KEY").then(|| "upstream-secret".to_owned())
        })
        .unwrap();
        // The suite runs many gateways at once on two cores: a policy call preempted
        // for a few milliseconds must not miss the 2 ms production default and send a
        // request down the safe route. Tests that set a deadline keep theirs.
        if config.engine.deadline_ms == signalbox::config::EngineSection::default().deadline_ms {
            config.engine.deadline_ms = 50;
        }
        let listeners = signalbox::running::Listeners {
            api: tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap(),
            admin: match config.admin.listen {
                Some(_) => Some(tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()),
                None => None,
            },
        };
        let running = signalbox::running::start(config, listeners).await.unwrap();
        TestGateway {
            addr: running.addr,
            admin: running.admin_addr,
            gateway: running.gateway.clone(),
            running,
        }
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.running.tls { "https" } else { "http" };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// A URL of the admin API.
    pub fn admin_url(&self, path: &str) -> String {
        let addr = self.admin.expect("no admin listener");
        let scheme = if self.running.admin_tls {
            "https"
        } else {
            "http"
        };
        format!("{scheme}://{addr}{path}")
    }
}

/// One provider per upstream URL (`(name, kind, base_url)`), one target per
/// `(id, provider, model)`, tenant `acme` with [`KEY`] and the embedded default
/// policy, and `extra` TOML appended (e.g. `[aliases]`).
pub fn config(
    providers: &[(&str, &str, &str)],
    targets: &[(&str, &str, &str)],
    extra: &str,
) -> String {
    let mut toml = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\nmax_body_bytes = 65536\nbreaker_failures = 3\nbreaker_cool_down_ms = 300\n\n",
    );
    for (name, kind, url) in providers {
        toml += &format!(
            "[[providers]]\nname = \"{name}\"\nkind = \"{kind}\"\nbase_url = \"{url}\"\napi_key_env = \"TEST_KEY\"\n\n"
        );
    }
    for (i, (id, provider, model)) in targets.iter().enumerate() {
        toml += &format!(
            "[[targets]]\nid = \"{id}\"\nprovider = \"{provider}\"\nmodel = \"{model}\"\nupstream_model = \"{model}-upstream\"\ninput_price = {}\noutput_price = {}\nconnect_timeout_ms = 500\nfirst_byte_timeout_ms = 400\ntotal_timeout_ms = 5000\ncontext_window = 100000\n\n",
            1.0 + i as f64,
            2.0 + i as f64
        );
    }
    let hash = signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(KEY));
    toml += &format!(
        "[[tenants]]\nid = \"acme\"\nkey_hashes = [\"{hash}\"]\nsafe_route = [\"{}\"]\n\n{extra}",
        targets[0].0
    );
    toml
}

fn client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    /// The OpenAI error `code`.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_owned()
    }
}

/// Sends a request with optional bearer key and body; reads the whole response.
pub async fn send(method: &str, url: &str, key: Option<&str>, body: Option<&[u8]>) -> Reply {
    send_with(method, url, key, body, &[]).await
}

/// [`send`] with extra request headers.
pub async fn send_with(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<&[u8]>,
    headers: &[(&str, &str)],
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(url);
    if let Some(key) = key {
        request = request.header("authorization", format!("Bearer {key}"));
    }
    if body.is_some() {
        request = request.header("content-type", "application/json");
    }
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::copy_from_slice(body.unwrap_or_default())))
        .unwrap();
    let response = client().request(request).await.unwrap();
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    Reply {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
    }
}

/// `POST /v1/chat/completions` with `body`, as tenant `acme`.
pub async fn chat(gw: &TestGateway, body: &Value) -> Reply {
    send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(body.to_string().as_bytes()),
    )
    .await
}

/// The SSE `data:` payloads of a stream body, in order.
pub fn sse_data(body: &str) -> Vec<String> {
    body.split("\n\n")
        .filter_map(|event| event.strip_prefix("data: "))
        .map(str::to_owned)
        .collect()
}

/// The named events of a stream (Anthropic's, the Responses API's): (event name,
/// data parsed as JSON, `Null` when it is not).
pub fn events(body: &str) -> Vec<(String, Value)> {
    body.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("")
                .to_owned();
            let data = e
                .lines()
                .find_map(|l| l.strip_prefix("data: "))
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or(Value::Null);
            (name, data)
        })
        .collect()
}

/// The concatenated `delta.content` of OpenAI stream chunks.
pub fn streamed_text(body: &str) -> String {
    sse_data(body)
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .filter_map(|v| {
            v["choices"][0]["delta"]["content"]
                .as_str()
                .map(str::to_owned)
        })
        .collect()
}
