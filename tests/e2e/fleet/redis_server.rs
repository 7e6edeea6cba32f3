//! A real `redis-server` on a free loopback port, in a temporary directory, stopped by
//! its process id. The fleet stage of `tests/run` installs the server when it is
//! missing.

use super::certs::StoreCerts;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Redis {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// Whether it speaks TLS only (on `port`), asking clients for a certificate from
    /// this CA.
    tls: Option<StoreCerts>,
}

impl Redis {
    /// Starts a server with an append-only file, so a stop and a start keep its data
    /// (as a production Redis holding budgets should).
    pub async fn start() -> Redis {
        Redis::start_with(None).await
    }

    /// A server that speaks TLS only and asks every client for a certificate signed
    /// by `certs`'s CA (mutual TLS).
    pub async fn start_tls(certs: &StoreCerts) -> Redis {
        Redis::start_with(Some(certs.clone())).await
    }

    async fn start_with(tls: Option<StoreCerts>) -> Redis {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut redis = Redis {
            port,
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
            tls,
        };
        redis.resume().await;
        redis
    }

    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() {
            "rediss"
        } else {
            "redis"
        };
        format!("{scheme}://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and directory; returns once it answers.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "redis is already running");
        let mut command = Command::new(server_binary());
        match &self.tls {
            None => command.args(["--port", &self.port.to_string()]),
            Some(tls) => command
                .args(["--port", "0", "--tls-port", &self.port.to_string()])
                .arg("--tls-cert-file")
                .arg(tls.server_cert())
                .arg("--tls-key-file")
                .arg(tls.server_key())
                .arg("--tls-ca-cert-file")
                .arg(tls.ca_file())
                .args(["--tls-auth-clients", "yes"]),
        };
        let child = command
            .args(["--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.ping().await.is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the server (SIGTERM: it writes its data and exits) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            let _ = child.wait();
        }
    }

    async fn ping(&self) -> redis::RedisResult<String> {
        let mut c = self.connection().await?;
        redis::cmd("PING").query_async(&mut c).await
    }

    /// A fresh connection, for a test to read what the gateways wrote.
    pub async fn connection(&self) -> redis::RedisResult<redis::aio::MultiplexedConnection> {
        let client = match &self.tls {
            None => redis::Client::open(self.url())?,
            Some(tls) => redis::Client::build_with_tls(
                self.url(),
                redis::TlsCertificates {
                    client_tls: Some(redis::ClientTlsConfig {
                        client_cert: StoreCerts::read(&tls.client_cert()),
                        client_key: StoreCerts::read(&tls.client_key()),
                    }),
                    root_cert: Some(StoreCerts::read(&tls.ca_file())),
                },
            )?,
        };
        client.get_multiplexed_async_connection().await
    }

    /// The value of `key` as a number (0 when absent).
    pub async fn number(&self, key: &str) -> f64 {
        let mut c = self.connection().await.expect("redis answers");
        let value: Option<f64> = redis::cmd("GET")
            .arg(key)
            .query_async(&mut c)
            .await
            .expect("GET");
        value.unwrap_or(0.0)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn server_binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join("redis-server"))
            .find(|p| p.is_file())
    });
    found.expect(
        "redis-server is not installed: the fleet stage of tests/run installs it \
         (apt-get install -y redis-server)",
    )
}
