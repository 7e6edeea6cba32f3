//! `signalbox policy push`: upload a policy to a running gateway's admin API and
//! activate it, or start it as a shadow or a canary.

use anyhow::{Context, bail};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::path::PathBuf;

/// Arguments of `policy push`.
#[derive(Debug, clap::Args)]
pub struct PushArgs {
    /// The policy component (`.wasm`).
    file: PathBuf,
    /// The tenant to deploy it for.
    #[arg(long)]
    tenant: String,
    /// The policy's config: inline JSON, or a JSON file (`FILE` or `@FILE`); default
    /// `{}`.
    #[arg(long, value_name = "JSON|FILE")]
    config: Option<String>,
    /// The version's name in labels (default: the file name without extension).
    #[arg(long)]
    name: Option<String>,
    /// Run it in shadow: it decides on every request, nothing it decides is acted on.
    #[arg(long, conflicts_with = "canary")]
    shadow: bool,
    /// Serve this percentage of users with it (sticky per user).
    #[arg(long, value_name = "PCT")]
    canary: Option<f64>,
    /// The admin API's base URL.
    #[arg(long, default_value = "http://127.0.0.1:9090")]
    admin: String,
    /// The admin token (default: the `SIGNALBOX_ADMIN_TOKEN` environment variable).
    #[arg(long, env = "SIGNALBOX_ADMIN_TOKEN", hide_env_values = true)]
    token: String,
}

pub fn run(args: PushArgs) -> anyhow::Result<()> {
    let wasm = std::fs::read(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let super::policy_config::PolicyConfig {
        text: config,
        value: config_json,
    } = super::policy_config::read(args.config.as_deref())?;
    let name = args.name.clone().unwrap_or_else(|| {
        args.file
            .file_stem()
            .map_or_else(|| "policy".into(), |s| s.to_string_lossy().into_owned())
    });
    let base = format!(
        "{}/admin/tenants/{}",
        args.admin.trim_end_matches('/'),
        encode(&args.tenant)
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("name", &name)
            .append_pair("config", &config)
            .finish();
        let uploaded = call(
            &args.token,
            &format!("{base}/policies?{query}"),
            "application/wasm",
            wasm,
        )
        .await?;
        let version = uploaded["version"].as_str().unwrap_or_default().to_owned();
        println!("uploaded {name} version {version}");
        let (path, body) = match (args.shadow, args.canary) {
            (true, _) => (
                "candidate",
                serde_json::json!({"version": version, "config": config_json, "mode": "shadow"}),
            ),
            (false, Some(pct)) => (
                "candidate",
                serde_json::json!({"version": version, "config": config_json, "mode": "canary", "percent": pct}),
            ),
            (false, None) => (
                "activate",
                serde_json::json!({"version": version, "config": config_json}),
            ),
        };
        let answer = call(
            &args.token,
            &format!("{base}/{path}"),
            "application/json",
            body.to_string().into_bytes(),
        )
        .await?;
        println!("{}", serde_json::to_string_pretty(&answer)?);
        Ok(())
    })
}

/// POSTs `body`; a non-2xx answer becomes an error carrying the server's message.
async fn call(
    token: &str,
    url: &str,
    content_type: &str,
    body: Vec<u8>,
) -> anyhow::Result<serde_json::Value> {
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
    let request = http::Request::post(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, content_type)
        .body(Full::new(Bytes::from(body)))
        .context("invalid admin URL")?;
    let response = client
        .request(request)
        .await
        .with_context(|| format!("cannot reach the admin API at {}", strip_query(url)))?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    if !status.is_success() {
        let message = value["error"]["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&bytes).into_owned(),
            str::to_owned,
        );
        bail!("{status}: {message}");
    }
    Ok(value)
}

fn strip_query(url: &str) -> &str {
    url.split('?').next().unwrap_or(url)
}

fn encode(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}
