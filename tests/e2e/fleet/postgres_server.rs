//! A real PostgreSQL server on a free loopback port, in a temporary directory, stopped
//! by its process id. Run as the `postgres` user when the tests run as root (the server
//! refuses root). The fleet stage of `tests/run` installs it when it is missing.

use super::certs::StoreCerts;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The superuser `initdb` makes; the server trusts loopback connections.
const USER: &str = "signalbox";

pub struct Postgres {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    /// The user and group to run as (root only).
    run_as: Option<(u32, u32)>,
    /// Whether it takes TLS connections only, each with a client certificate from
    /// this CA naming the user.
    tls: Option<StoreCerts>,
}

impl Postgres {
    pub async fn start() -> Postgres {
        Postgres::start_with(None).await
    }

    /// A server that takes only TLS connections from loopback, each authenticated by
    /// a client certificate signed by `certs`'s CA (mutual TLS).
    pub async fn start_tls(certs: &StoreCerts) -> Postgres {
        Postgres::start_with(Some(certs.clone())).await
    }

    async fn start_with(tls: Option<StoreCerts>) -> Postgres {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let run_as = if rustix::process::geteuid().is_root() {
            let ids = postgres_ids();
            std::os::unix::fs::chown(dir.path(), Some(ids.0), Some(ids.1)).expect("chown");
            Some(ids)
        } else {
            None
        };
        let mut initdb = Command::new(bin("initdb"));
        initdb
            .arg("-D")
            .arg(dir.path().join("data"))
            .args(["-U", USER, "--auth=trust", "--no-sync", "-E", "UTF8"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some((uid, gid)) = run_as {
            initdb.uid(uid).gid(gid);
        }
        let status = initdb.status().expect("initdb runs");
        assert!(status.success(), "initdb failed: {status}");
        if let Some(certs) = &tls {
            let data = dir.path().join("data");
            for (from, to) in [
                (certs.server_cert(), "server.pem"),
                (certs.server_key(), "server.key"),
                (certs.ca_file(), "ca.pem"),
            ] {
                std::fs::copy(from, data.join(to)).expect("copy a certificate file");
                // The server refuses a key others can read, or owned by another user.
                std::fs::set_permissions(data.join(to), std::fs::Permissions::from_mode(0o600))
                    .unwrap();
                if let Some((uid, gid)) = run_as {
                    std::os::unix::fs::chown(data.join(to), Some(uid), Some(gid)).unwrap();
                }
            }
            // Loopback over TLS only, authenticated by the client certificate.
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 cert\n",
            )
            .unwrap();
        }
        let mut server = Postgres {
            port,
            dir,
            child: None,
            run_as,
            tls,
        };
        server.resume().await;
        server
    }

    /// The URL a gateway's `[ledger] url` takes.
    pub fn url(&self) -> String {
        let tls = if self.tls.is_some() {
            "?sslmode=require"
        } else {
            ""
        };
        format!("postgres://{USER}@127.0.0.1:{}/postgres{tls}", self.port)
    }

    /// Starts the server again on the same port and data; returns once it answers.
    pub async fn resume(&mut self) {
        assert!(self.child.is_none(), "postgres is already running");
        let mut command = Command::new(bin("postgres"));
        command
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
            ])
            .arg("-c")
            .arg(format!(
                "unix_socket_directories={}",
                self.dir.path().display()
            ))
            .args(["-c", "fsync=off"]);
        if self.tls.is_some() {
            command.args([
                "-c",
                "ssl=on",
                "-c",
                "ssl_cert_file=server.pem",
                "-c",
                "ssl_key_file=server.key",
                "-c",
                "ssl_ca_file=ca.pem",
            ]);
        }
        command.stdout(Stdio::null()).stderr(Stdio::null());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        self.child = Some(command.spawn().expect("postgres starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.count("SELECT 1").await.is_err() {
            assert!(
                Instant::now() < deadline,
                "postgres did not answer within 30 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the server (SIGTERM, then it exits once its clients are gone; SIGINT is
    /// its fast shutdown) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = rustix::process::Pid::from_child(&child);
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::INT);
            let _ = child.wait();
        }
    }

    /// The single number `sql` answers, as a string-free integer.
    pub async fn count(&self, sql: &str) -> Result<i64, String> {
        let (url, sql, tls) = (self.url(), sql.to_owned(), self.tls.clone());
        // The synchronous client runs its own runtime: off this one.
        tokio::task::spawn_blocking(move || {
            let mut client = match tls {
                None => postgres::Client::connect(&url, postgres::NoTls),
                Some(certs) => postgres::Client::connect(
                    &url,
                    tokio_postgres_rustls::MakeRustlsConnect::new(client_config(&certs)),
                ),
            }
            .map_err(|e| e.to_string())?;
            let row = client.query_one(&sql, &[]).map_err(|e| e.to_string())?;
            let n: i64 = row
                .try_get(0)
                .or_else(|_| row.try_get::<_, i32>(0).map(i64::from))
                .map_err(|e| e.to_string())?;
            Ok(n)
        })
        .await
        .map_err(|e| e.to_string())?
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A TLS client trusting only `certs`'s CA, with its client certificate.
fn client_config(certs: &StoreCerts) -> rustls::ClientConfig {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_file(certs.ca_file()).unwrap())
        .unwrap();
    let chain = CertificateDer::pem_file_iter(certs.client_cert())
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(certs.client_key()).unwrap();
    rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_client_auth_cert(chain, key)
    .unwrap()
}

/// The server's binary: Debian installs it under a versioned directory.
fn bin(name: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin").join(name))
        .filter(|p| p.is_file())
        .collect();
    found.sort();
    found.pop().expect(
        "PostgreSQL is not installed: the fleet stage of tests/run installs it \
         (apt-get install -y postgresql)",
    )
}

/// The `postgres` user's uid and gid, from the password file.
fn postgres_ids() -> (u32, u32) {
    let passwd = std::fs::read_to_string("/etc/passwd").expect("/etc/passwd");
    passwd
        .lines()
        .find_map(|line| {
            let fields: Vec<&str> = line.split(':').collect();
            (fields.first() == Some(&"postgres")).then(|| {
                (
                    fields[2].parse().expect("uid"),
                    fields[3].parse().expect("gid"),
                )
            })
        })
        .expect("no postgres user: the server refuses to run as root")
}
