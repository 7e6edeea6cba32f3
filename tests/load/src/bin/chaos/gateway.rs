//! The gateway as a real process: started on the run's config with its logs going to
//! files, its resident memory sampled from /proc, stopped with SIGTERM.

use anyhow::{Context, bail};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Debug everywhere and trace in the gateway itself, except the compiler's own
/// bookkeeping while it compiles policies (tens of thousands of lines that never see
/// a request), as in tests/e2e/key_leaks.rs.
const LOG_FILTER: &str = "debug,signalbox=trace,cranelift_codegen=info,cranelift_frontend=info,wasmtime_internal_cranelift=info,regalloc2=info";

/// How long a start may take: a debug build compiling every tenant's policy on a
/// busy machine.
const START_TIMEOUT: Duration = Duration::from_secs(180);

/// One run of `signalbox serve`.
pub struct GatewayProcess {
    child: tokio::process::Child,
    pub pid: u32,
    /// The n-th start of this run (from 1): names its log files.
    pub generation: u32,
    logs: Vec<tokio::task::JoinHandle<()>>,
    sampling: Arc<AtomicBool>,
    /// Highest resident set seen by the sampler, KiB.
    pub peak_sampled_kib: Arc<AtomicU64>,
}

/// What a stopped gateway left behind.
pub struct Stopped {
    /// The kernel's own high-water mark of resident memory (VmHWM), KiB.
    pub peak_rss_kib: u64,
    pub exit_ok: bool,
    pub stop_time: Duration,
}

impl GatewayProcess {
    /// Starts the gateway and waits until both listeners are up.
    pub async fn start(
        binary: &Path,
        config: &Path,
        logs: &Path,
        generation: u32,
        provider_keys: &[String],
    ) -> anyhow::Result<GatewayProcess> {
        std::fs::create_dir_all(logs)?;
        let mut command = tokio::process::Command::new(binary);
        command
            .args(["serve", "--config"])
            .arg(config)
            .env("RUST_LOG", LOG_FILTER)
            // Every wasmtime error would capture a backtrace (docs/benchmarks.md).
            .env_remove("RUST_BACKTRACE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (i, key) in provider_keys.iter().enumerate() {
            command.env(format!("CHAOS_PROVIDER_KEY_{i}"), key);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the gateway exited at once")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let stderr = child.stderr.take().context("no stderr")?;

        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<String>(4);
        let stdout_file = log_file(logs, generation, "stdout").await?;
        let stdout_task = tokio::spawn(async move {
            let mut file = stdout_file;
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = file.write_all(line.as_bytes()).await;
                let _ = file.write_all(b"\n").await;
                if line.starts_with("signalbox listening on")
                    || line.starts_with("signalbox admin API on")
                {
                    let _ = ready_tx.send(line).await;
                }
            }
            let _ = file.flush().await;
        });
        let mut stderr_file = log_file(logs, generation, "stderr").await?;
        let stderr_task = tokio::spawn(async move {
            let mut stderr = stderr;
            let _ = tokio::io::copy(&mut stderr, &mut stderr_file).await;
            let _ = stderr_file.flush().await;
        });

        let both = async {
            let mut seen = 0;
            while seen < 2 {
                if ready_rx.recv().await.is_none() {
                    bail!("the gateway exited before listening");
                }
                seen += 1;
            }
            Ok(())
        };
        match tokio::time::timeout(START_TIMEOUT, both).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let status = child.wait().await.ok();
                bail!(
                    "{e} (exit {status:?}); see {}",
                    logs.join(format!("stderr-{generation}.log")).display()
                );
            }
            Err(_) => bail!("the gateway did not listen within {START_TIMEOUT:?}"),
        }

        let sampling = Arc::new(AtomicBool::new(true));
        let peak_sampled_kib = Arc::new(AtomicU64::new(0));
        {
            let (sampling, peak) = (sampling.clone(), peak_sampled_kib.clone());
            tokio::spawn(async move {
                while sampling.load(Relaxed) {
                    if let Some(rss) = status_field(pid, "VmRSS:") {
                        peak.fetch_max(rss, Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            });
        }
        Ok(GatewayProcess {
            child,
            pid,
            generation,
            logs: vec![stdout_task, stderr_task],
            sampling,
            peak_sampled_kib,
        })
    }

    /// Resident memory now, KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        status_field(self.pid, "VmRSS:")
    }

    /// Threads of the process now.
    pub fn threads(&self) -> Option<u64> {
        status_field(self.pid, "Threads:")
    }

    /// SIGTERM, then waits for the process to drain and exit.
    pub async fn stop(mut self) -> anyhow::Result<Stopped> {
        let peak_rss_kib = status_field(self.pid, "VmHWM:")
            .unwrap_or(0)
            .max(self.peak_sampled_kib.load(Relaxed));
        let started = std::time::Instant::now();
        let status = tokio::process::Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await
            .context("cannot run kill")?;
        if !status.success() {
            bail!("kill -TERM {} failed", self.pid);
        }
        let exit = tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the gateway did not exit within 60 s of SIGTERM")??;
        self.sampling.store(false, Relaxed);
        for task in self.logs.drain(..) {
            let _ = task.await;
        }
        Ok(Stopped {
            peak_rss_kib,
            exit_ok: exit.success(),
            stop_time: started.elapsed(),
        })
    }
}

async fn log_file(dir: &Path, generation: u32, what: &str) -> anyhow::Result<tokio::fs::File> {
    let path: PathBuf = dir.join(format!("{what}-{generation}.log"));
    tokio::fs::File::create(&path)
        .await
        .with_context(|| format!("{}", path.display()))
}

/// A `kB` or count field of /proc/<pid>/status.
fn status_field(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}
