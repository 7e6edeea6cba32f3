//! `signalbox route`: what a tenant's active policy would decide for a request, with
//! the reason, against the config (and stored bindings) as they are, calling no
//! upstream.

use crate::config::Config;
use crate::gateway::Gateway;
use anyhow::{Context, bail};
use std::path::PathBuf;
use std::sync::Arc;

/// Arguments of `route`.
#[derive(Debug, clap::Args)]
pub struct RouteArgs {
    /// The gateway's config file.
    #[arg(long)]
    config: PathBuf,
    /// The tenant whose policy decides.
    #[arg(long)]
    tenant: String,
    /// The prompt, sent as one user message.
    #[arg(long, conflicts_with = "request")]
    prompt: Option<String>,
    /// The model or alias asked for, with `--prompt`.
    #[arg(long, default_value = "auto")]
    model: String,
    /// A chat completions request body (JSON file) instead of `--prompt`.
    #[arg(long)]
    request: Option<PathBuf>,
    /// Routing metadata, as the `x-signalbox-<key>` headers give it (repeatable).
    #[arg(long = "meta", value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: RouteArgs) -> anyhow::Result<()> {
    let config = Config::load(&args.config)?;
    let body = match (&args.request, &args.prompt) {
        (Some(path), _) => {
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?
        }
        (None, Some(prompt)) => serde_json::to_vec(&serde_json::json!({
            "model": args.model,
            "messages": [{"role": "user", "content": prompt}],
        }))?,
        (None, None) => bail!("give --prompt or --request"),
    };
    let mut headers = http::HeaderMap::new();
    for pair in &args.metadata {
        let (k, v) = pair
            .split_once('=')
            .with_context(|| format!("--meta `{pair}`: expected KEY=VALUE"))?;
        headers.insert(
            http::HeaderName::from_bytes(
                format!("x-signalbox-{}", k.to_ascii_lowercase()).as_bytes(),
            )
            .with_context(|| format!("--meta `{pair}`: invalid key"))?,
            http::HeaderValue::from_str(v)
                .with_context(|| format!("--meta `{pair}`: invalid value"))?,
        );
    }
    let chat = crate::openai::parse_chat(body.into(), &headers)
        .map_err(|e| anyhow::anyhow!("invalid request: {}", e.message))?;

    // Policies are called on a runtime, as in the gateway (outcomes are not sent).
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let explanation = runtime.block_on(async {
        let gateway = Arc::new(Gateway::build(config)?);
        let tenant = gateway
            .tenants
            .get(args.tenant.as_str())
            .cloned()
            .with_context(|| format!("no tenant `{}` in the config", args.tenant))?;
        let request = chat.route_request("route-cli");
        anyhow::Ok(crate::routing::explain(&gateway, &tenant, &request))
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&explanation)?);
        return Ok(());
    }
    println!("policy:  {}", explanation.policy);
    match &explanation.rejection {
        Some((status, message)) => println!("rejects: {status} {message}"),
        None => {
            println!(
                "target:  {}",
                explanation.targets.first().map_or("-", String::as_str)
            );
            if explanation.targets.len() > 1 {
                println!("then:    {}", explanation.targets[1..].join(", "));
            }
            println!("reason:  {}", explanation.reason);
        }
    }
    Ok(())
}
