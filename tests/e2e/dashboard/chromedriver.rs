//! A chromedriver of our own: started on a free loopback port with its own temporary
//! profile directory, stopped by its process id when dropped.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ChromeDriver {
    child: Child,
    pub url: String,
    pub profile: tempfile::TempDir,
}

impl ChromeDriver {
    /// Starts `chromedriver` and waits until it answers `/status` as ready.
    pub async fn start() -> ChromeDriver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .current_dir(profile.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect(
                "chromedriver is missing: tests/dashboard/run.sh installs it (chromium-driver)",
            );
        let driver = ChromeDriver {
            child,
            url: format!("http://127.0.0.1:{port}"),
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            // The client below panics on a refused connection: probe the port first.
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                let status = crate::gateway_support::send(
                    "GET",
                    &format!("{}/status", driver.url),
                    None,
                    None,
                )
                .await;
                if status.json()["value"]["ready"] == true {
                    return driver;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
