//! What `signalbox serve` adds to the embedded default config, so the quick start
//! shows everything the gateway does: the admin API on loopback with a fresh operator
//! token, and a usage ledger, a decision log and the policy store in a temporary state
//! directory that is removed at exit.

use crate::config::{AdminTokenSection, Config};
use crate::tenancy::{KEY_PREFIX, format_key_hash, generate_key, hash_key};
use anyhow::Context;
use std::net::SocketAddr;

/// The quick start's extras while the gateway runs; dropping it removes the state.
pub struct QuickStart {
    /// The operator token of this run (printed once at start-up).
    token: String,
    /// Holds the ledger, the decision log and the policy store.
    state: tempfile::TempDir,
}

impl QuickStart {
    /// Adds the extras to the embedded config: an admin listener on the API's address
    /// with the next port (any free port when the API's is 0), an operator token, and
    /// a temporary state directory with the ledger and the decision log in it.
    pub fn prepare(config: &mut Config) -> anyhow::Result<QuickStart> {
        let listen: SocketAddr = config.server.listen.parse().with_context(|| {
            format!("cannot read the listen address `{}`", config.server.listen)
        })?;
        let admin_port = match listen.port() {
            0 | u16::MAX => 0,
            port => port + 1,
        };
        let key = generate_key()?;
        let token = format!("sb-admin-{}", &key[KEY_PREFIX.len()..]);
        let state = tempfile::Builder::new()
            .prefix("signalbox-quickstart-")
            .tempdir()
            .context("cannot create a temporary state directory")?;
        let dir = state.path();
        let admin = &mut config.admin;
        admin.listen = Some(SocketAddr::new(listen.ip(), admin_port).to_string());
        admin.tokens = vec![AdminTokenSection {
            hash: format_key_hash(&hash_key(&token)),
            tenant: None,
        }];
        admin.state_dir = Some(dir.display().to_string());
        config.ledger.path = Some(dir.join("usage.db").display().to_string());
        config.decision_log.path = Some(dir.join("decisions.jsonl").display().to_string());
        Ok(QuickStart { token, state })
    }

    /// The start-up lines: the demo key and a request to try, the admin API's URL with
    /// the operator token, the dashboard's URL, and where the state is kept.
    pub fn announce(&self, api: SocketAddr, admin: Option<SocketAddr>) {
        let key = super::serve::DEMO_KEY;
        println!("embedded default config: demo tenant key {key}");
        println!(
            "try: curl -s http://{api}/v1/chat/completions -H 'authorization: Bearer {key}' -H 'content-type: application/json' -d '{{\"model\":\"auto\",\"messages\":[{{\"role\":\"user\",\"content\":\"Hello\"}}]}}'"
        );
        println!(
            "     curl -s http://{api}/v1/embeddings -H 'authorization: Bearer {key}' -H 'content-type: application/json' -d '{{\"model\":\"sim-embed\",\"input\":\"Hello\"}}'"
        );
        if let Some(admin) = admin {
            println!("admin API: http://{admin} operator token {}", self.token);
            println!("dashboard: http://{admin}/dashboard (sign in with the operator token)");
            println!(
                "try: curl -s http://{admin}/admin/tenants/demo/policies -H 'authorization: Bearer {}'",
                self.token
            );
            println!(
                "     curl -s http://{admin}/metrics -H 'authorization: Bearer {}'",
                self.token
            );
        }
        println!(
            "usage ledger and decision log in {} (removed at exit)",
            self.state.path().display()
        );
    }
}
