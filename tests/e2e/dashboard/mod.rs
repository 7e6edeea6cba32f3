//! The dashboard on the admin listener: sessions, CSRF and scopes over plain HTTP
//! (`sessions`), and the pages driven in headless Chromium (`browser`, the dashboard
//! stage: `tests/dashboard/run.sh` installs Chromium and runs
//! `cargo test -p signalbox --test e2e -- --ignored dashboard::`).

mod browser;
mod chromedriver;
mod sessions;

use crate::deploy::{OPERATOR, lifecycle_config, upstream};
use crate::fake_upstream::FakeUpstream;
use crate::gateway_support::{Reply, TestGateway, send_with};

/// A gateway with tenants `acme` and `globex`, an admin listener with an operator
/// token and a deploy token per tenant, a state directory (so a ledger) and a
/// decision log.
pub struct Dashboard {
    pub gw: TestGateway,
    /// Kept alive while the gateway runs.
    pub _upstream: FakeUpstream,
    pub dir: tempfile::TempDir,
}

impl Dashboard {
    pub async fn start() -> Dashboard {
        let upstream = upstream().await;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state");
        let log = dir.path().join("decisions.jsonl");
        let toml = lifecycle_config(
            &upstream.url(),
            &format!("state_dir = '{}'", state.display()),
        ) + &format!("\n[decision_log]\npath = '{}'\n", log.display());
        let gw = TestGateway::start(&toml).await;
        Dashboard {
            gw,
            _upstream: upstream,
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        self.gw.admin_url(path)
    }

    pub fn decision_log(&self) -> std::path::PathBuf {
        self.dir.path().join("decisions.jsonl")
    }

    /// Signs in with `token` over plain HTTP: the session cookie (`name=value`) and the
    /// page's CSRF token.
    pub async fn sign_in(&self, token: &str) -> (String, String) {
        let r = self
            .post_form("/dashboard/sign-in", &format!("token={token}"), &[])
            .await;
        assert_eq!(r.status, 303, "{}", r.text());
        let cookie = r.header("set-cookie").split(';').next().unwrap().to_owned();
        let page = self.get("/dashboard", &cookie).await;
        assert_eq!(page.status, 200);
        (cookie, csrf_of(&page.text()))
    }

    pub async fn get(&self, path: &str, cookie: &str) -> Reply {
        send_with("GET", &self.url(path), None, None, &[("cookie", cookie)]).await
    }

    pub async fn post_form(&self, path: &str, form: &str, headers: &[(&str, &str)]) -> Reply {
        let mut all = vec![("content-type", "application/x-www-form-urlencoded")];
        all.extend_from_slice(headers);
        send_with("POST", &self.url(path), None, Some(form.as_bytes()), &all).await
    }

    /// A dashboard action (`op` on `tenant`) with a JSON body and these headers.
    pub async fn act(
        &self,
        tenant: &str,
        op: &str,
        body: &serde_json::Value,
        headers: &[(&str, &str)],
    ) -> Reply {
        let url = self.url(&format!("/dashboard/api/tenants/{tenant}/{op}"));
        send_with(
            "POST",
            &url,
            None,
            Some(body.to_string().as_bytes()),
            headers,
        )
        .await
    }

    /// The operator's view of `/metrics`.
    pub async fn metrics(&self) -> String {
        let r = send_with("GET", &self.url("/metrics"), Some(OPERATOR), None, &[]).await;
        assert_eq!(r.status, 200);
        r.text()
    }
}

/// The CSRF token in a page's `<meta name="csrf-token">`.
pub fn csrf_of(page: &str) -> String {
    let start = page.find("name=\"csrf-token\" content=\"").unwrap() + 27;
    page[start..start + 64].to_owned()
}

/// `signalbox_requests_total` for `tenant` and `target`, every status, in a scrape.
pub fn requests_in(metrics: &str, tenant: &str, target: &str) -> f64 {
    let labels = format!("{{tenant=\"{tenant}\",target=\"{target}\",status=");
    metrics
        .lines()
        .filter(|l| l.starts_with("signalbox_requests_total") && l.contains(&labels))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
