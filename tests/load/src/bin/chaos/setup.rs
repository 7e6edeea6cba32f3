//! What a run is set up with: fresh secrets, a certificate authority of its own, the
//! gateway's config in a temporary state directory.

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Tenants, each with two keys; the second key of the last one has a small daily
/// budget of its own, which trips during the run.
pub const TENANTS: [&str; 3] = ["alpha", "beta", "gamma"];
/// Targets, one per fake upstream, all serving model `m`, dearest last.
pub const TARGETS: usize = 3;
/// The daily budget of gamma's second key, USD: a few dozen requests' worth.
pub const SMALL_BUDGET_USD: f64 = 0.0015;
/// Every tenant's own daily budget: never reached, but it makes the gateway count
/// the tenant's spend, which the books compare with the ledger.
pub const TENANT_BUDGET_USD: f64 = 1000.0;

/// Input and output price per 1M tokens of target `i`.
pub fn prices(i: usize) -> (f64, f64) {
    (1.0 + i as f64, 2.0 + 2.0 * i as f64)
}

/// An API key of a tenant.
#[derive(Clone)]
pub struct ApiKey {
    pub tenant: &'static str,
    pub id: String,
    pub secret: String,
    /// Whether this key has the small budget that trips.
    pub small_budget: bool,
}

/// Every secret of the run: what the sweep searches for.
pub struct Secrets {
    pub keys: Vec<ApiKey>,
    pub admin_token: String,
    pub provider_keys: Vec<String>,
}

impl Secrets {
    pub fn fresh() -> anyhow::Result<Secrets> {
        let mut keys = Vec::new();
        for (t, tenant) in TENANTS.iter().enumerate() {
            for k in 1..=2 {
                keys.push(ApiKey {
                    tenant,
                    id: format!("{tenant}-k{k}"),
                    secret: format!("sb-{}", random(43)?),
                    small_budget: t == TENANTS.len() - 1 && k == 2,
                });
            }
        }
        Ok(Secrets {
            keys,
            admin_token: format!("sb-{}", random(43)?),
            provider_keys: (0..TARGETS)
                .map(|_| Ok(format!("sk-{}", random(40)?)))
                .collect::<anyhow::Result<_>>()?,
        })
    }

    /// Every secret, named for the report (never by its value).
    pub fn all(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .keys
            .iter()
            .map(|k| (format!("key {}", k.id), k.secret.clone()))
            .collect();
        all.push(("admin token".into(), self.admin_token.clone()));
        for (i, key) in self.provider_keys.iter().enumerate() {
            all.push((format!("provider key {i}"), key.clone()));
        }
        all
    }
}

/// `n` base62 characters from the operating system's random source.
fn random(n: usize) -> anyhow::Result<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(n);
    let mut byte = [0u8; 1];
    while out.len() < n {
        getrandom::fill(&mut byte).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
        // 248 = 4 × 62: no bias.
        if byte[0] < 248 {
            out.push(ALPHABET[usize::from(byte[0] % 62)] as char);
        }
    }
    Ok(out)
}

/// `sha256:<hex>`, as the config stores keys and tokens.
pub fn key_hash(secret: &str) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(secret.as_bytes())))
}

/// The run's certificate authority: clients trust it and nothing else, so a reloaded
/// leaf certificate is trusted as the first one was.
pub struct Authority {
    pub cert: CertificateDer<'static>,
    cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Authority {
    pub fn new() -> anyhow::Result<Authority> {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Signalbox chaos soak CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let cert = params.self_signed(&key)?;
        Ok(Authority {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// Writes a new leaf for 127.0.0.1 into `tls/` the way deployment tools do (beside
    /// the final name, then renamed over it); returns the leaf's DER, by which a
    /// client tells which certificate it was served.
    pub fn install_leaf(&self, dir: &Path) -> anyhow::Result<Vec<u8>> {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.issuer)?;
        let tls = dir.join("tls");
        std::fs::create_dir_all(&tls)?;
        replace(
            &tls.join("cert.pem"),
            &format!("{}{}", cert.pem(), self.cert_pem),
        )?;
        replace(&tls.join("key.pem"), &key.serialize_pem())?;
        Ok(cert.der().to_vec())
    }

    /// A client configuration trusting this authority only.
    pub fn client_config(&self, alpn: &[&[u8]]) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone())?;
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        Ok(Arc::new(config))
    }
}

fn replace(path: &Path, content: &str) -> anyhow::Result<()> {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, content).with_context(|| format!("{}", staged.display()))?;
    std::fs::rename(&staged, path).with_context(|| format!("{}", path.display()))?;
    Ok(())
}

/// Where the run keeps its files.
pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn config(&self) -> PathBuf {
        self.dir.join("gateway.toml")
    }
    pub fn state(&self) -> PathBuf {
        self.dir.join("state")
    }
    pub fn ledger(&self) -> PathBuf {
        self.state().join("usage.db")
    }
    pub fn decision_log(&self) -> PathBuf {
        self.dir.join("decisions.jsonl")
    }
    pub fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }
}

/// Ports and addresses the config names.
pub struct Addresses {
    pub api_port: u16,
    pub admin_port: u16,
    pub upstreams: Vec<std::net::SocketAddr>,
}

/// The gateway's config: TLS on the API listener, the admin API with an operator
/// token, the ledger and decision log on, every tenant seeing every target.
pub fn config(secrets: &Secrets, at: &Addresses) -> String {
    let mut toml = format!(
        r#"[server]
listen = "127.0.0.1:{api}"
shutdown_grace_secs = 15
max_attempts = 3
breaker_failures = 5
breaker_cool_down_ms = 1000

[server.tls]
cert_file = 'tls/cert.pem'
key_file = 'tls/key.pem'

[engine]
# A debug build on a shared 2-core machine: a preempted policy call must not miss its
# deadline and be counted as a failure.
deadline_ms = 50

[admin]
listen = "127.0.0.1:{admin}"
state_dir = 'state'
quarantine_after = 3

[[admin.tokens]]
hash = "{token}"

[decision_log]
path = 'decisions.jsonl'

"#,
        api = at.api_port,
        admin = at.admin_port,
        token = key_hash(&secrets.admin_token),
    );
    for (i, addr) in at.upstreams.iter().enumerate() {
        let _ = write!(
            toml,
            "[[providers]]\nname = \"up{i}\"\nkind = \"openai\"\nbase_url = \"http://{addr}/v1\"\napi_key_env = \"CHAOS_PROVIDER_KEY_{i}\"\n\n"
        );
    }
    for i in 0..TARGETS {
        let (input, output) = prices(i);
        let _ = write!(
            toml,
            "[[targets]]\nid = \"t{i}\"\nprovider = \"up{i}\"\nmodel = \"m\"\nupstream_model = \"m-up{i}\"\ninput_price = {input:?}\noutput_price = {output:?}\ncontext_window = 100000\nconnect_timeout_ms = 500\nfirst_byte_timeout_ms = 1500\ntotal_timeout_ms = 4000\nstream_idle_timeout_ms = 1000\n\n"
        );
    }
    for tenant in TENANTS {
        let _ = write!(
            toml,
            "[[tenants]]\nid = \"{tenant}\"\nsafe_route = [\"t1\", \"t2\"]\n\n[tenants.limits]\nbudget_usd_per_day = {TENANT_BUDGET_USD:?}\n\n"
        );
        for key in secrets.keys.iter().filter(|k| k.tenant == tenant) {
            let _ = write!(
                toml,
                "[[tenants.keys]]\nid = \"{}\"\nhash = \"{}\"\n",
                key.id,
                key_hash(&key.secret)
            );
            if key.small_budget {
                let _ = writeln!(toml, "budget_usd_per_day = {SMALL_BUDGET_USD:?}");
            }
            toml.push('\n');
        }
    }
    toml
}
