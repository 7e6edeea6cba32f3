//! The command line: `signalbox serve`, `signalbox route`, `signalbox usage`,
//! `signalbox keys new`, `signalbox tokens new`, `signalbox config print-default`,
//! `signalbox replay`, `signalbox policy check|bench|push|new`.

mod keys_new;
mod policy_bench;
mod policy_check;
mod policy_config;
mod policy_new;
mod policy_push;
mod quickstart;
mod replay;
mod route;
mod serve;
mod tokens_new;
mod usage;

use clap::{Parser, Subcommand};
use std::path::PathBuf;

pub use crate::telemetry::LogFormat;

/// Signalbox: an LLM gateway whose routing decisions run in sandboxed WebAssembly
/// policies.
#[derive(Debug, Parser)]
#[command(name = "signalbox", version, about)]
pub struct Cli {
    /// Log more (repeat for more detail).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// Log lines as human-readable text or as JSON objects (one per line).
    #[arg(long, value_enum, default_value = "text", global = true)]
    pub log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway (the embedded default config when no --config is given).
    Serve {
        /// The TOML config file.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Listen here instead of the config's `server.listen`.
        #[arg(long)]
        listen: Option<String>,
        /// Take the listening sockets of the gateway running with this config (through
        /// its `server.handover_socket`); it drains and stops once this one serves.
        #[arg(long, conflicts_with = "listen")]
        take_over: bool,
    },
    /// Work with routing policies.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// Run a policy offline over recorded model outcomes; report quality, cost and
    /// the cost–quality curve against baselines.
    Replay(Box<replay::ReplayArgs>),
    /// Show what a tenant's policy would decide for a request, without calling any
    /// upstream.
    Route(route::RouteArgs),
    /// Print usage-ledger aggregates (requests, tokens, cost) as a table.
    Usage(usage::UsageArgs),
    /// Work with API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Work with admin API tokens.
    #[command(subcommand)]
    Tokens(TokensCommand),
    /// Work with config files.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the embedded default config (what `serve` runs without --config), as a
    /// starting point: `signalbox config print-default > gateway.toml`.
    PrintDefault,
}

#[derive(Debug, Subcommand)]
enum TokensCommand {
    /// Make a new admin token: prints it once, and the `[[admin.tokens]]` entry
    /// holding its hash.
    New {
        /// An operator token: every tenant, and `/metrics`.
        #[arg(long, conflicts_with = "tenant", required_unless_present = "tenant")]
        operator: bool,
        /// A deploy token for this tenant only.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Make a new API key: prints it once, and the config entry holding its hash.
    New {
        /// The tenant the key is for.
        #[arg(long)]
        tenant: String,
        /// The key's id, naming it in logs and errors (default: the first 8 hex digits
        /// of its hash).
        #[arg(long)]
        id: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCommand {
    /// Check that a component is a valid policy and make a smoke call.
    Check {
        /// The policy component (`.wasm`); omit to check the embedded default policy.
        file: Option<PathBuf>,
        /// The config to activate it with: inline JSON, or a JSON file (`FILE` or
        /// `@FILE`); default `{}`.
        #[arg(long, value_name = "JSON|FILE")]
        config: Option<String>,
        /// Print the sample targets the smoke call routes among, then check.
        #[arg(long)]
        list_targets: bool,
        /// Cache compiled policies in this directory.
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Measure decisions per second and latency per decision.
    Bench(policy_bench::BenchArgs),
    /// Upload a policy to a running gateway and activate it (or start a shadow or a
    /// canary).
    Push(policy_push::PushArgs),
    /// Create a new policy crate.
    New {
        /// The crate name (lower-case letters, digits, `-` and `_`).
        name: String,
        /// Where to create it (default: the current directory).
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Path to a `signalbox-sdk` crate to depend on, written relative to the new
        /// crate (default: a copy of this binary's SDK, written into the crate, so it
        /// builds anywhere).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Runs a parsed command line, logging to stderr as it asks.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    let logging = crate::telemetry::Logging {
        verbose: cli.verbose,
        format: cli.log_format,
    };
    // `serve` sets up its own telemetry once its config says whether spans are
    // exported; every other command only logs.
    if !matches!(cli.command, Command::Serve { .. }) {
        crate::telemetry::init(logging, None)?;
    }
    match cli.command {
        Command::Serve {
            config,
            listen,
            take_over,
        } => serve::run(config.as_deref(), listen, take_over, logging),
        Command::Route(args) => route::run(args),
        Command::Usage(args) => usage::run(args),
        Command::Policy(PolicyCommand::Check {
            file,
            config,
            list_targets,
            cache_dir,
        }) => {
            let config = policy_config::read(config.as_deref())?;
            policy_check::run(file.as_deref(), &config.text, list_targets, cache_dir)
        }
        Command::Policy(PolicyCommand::Bench(args)) => policy_bench::run(args),
        Command::Replay(args) => replay::run(*args),
        Command::Policy(PolicyCommand::Push(args)) => policy_push::run(args),
        Command::Policy(PolicyCommand::New { name, dir, sdk }) => {
            policy_new::run(&name, &dir, sdk.as_deref())
        }
        Command::Keys(KeysCommand::New { tenant, id }) => keys_new::run(&tenant, id.as_deref()),
        Command::Tokens(TokensCommand::New { tenant, .. }) => tokens_new::run(tenant.as_deref()),
        Command::Config(ConfigCommand::PrintDefault) => {
            print!("{}", crate::config::EMBEDDED_DEFAULT);
            Ok(())
        }
    }
}

/// The policy bytes of `file`, or the embedded default policy.
fn policy_bytes(file: Option<&std::path::Path>) -> anyhow::Result<(String, Vec<u8>)> {
    use anyhow::Context;
    match file {
        Some(path) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
            Ok((path.display().to_string(), bytes))
        }
        None => Ok((
            "embedded default policy".to_owned(),
            crate::embedded::DEFAULT_POLICY.to_vec(),
        )),
    }
}

/// Prints the sample targets `policy check` and `policy bench` route among, in the
/// order policies see them: an example config written for them works with both.
fn print_sample_targets(targets: &[crate::policy::TargetInfo]) {
    println!("sample targets (index, id, provider, model, $/1M in/out, context window, tags):");
    for (i, t) in targets.iter().enumerate() {
        println!(
            "  {i:>2}  {:<22} {:<9} {:<18} {:>6.3} / {:<7.3} {:>7}  {}",
            t.id,
            t.provider,
            t.model,
            t.input_price,
            t.output_price,
            t.context_window,
            t.tags.join(", ")
        );
    }
}
