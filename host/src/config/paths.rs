//! Resolving the file and directory paths a config names.
//!
//! Every relative path in the file is relative to the file's directory, so a config
//! means the same thing whichever directory the gateway starts in. Only paths are
//! worked out here: no file is opened (the TLS files, for one, are read when TLS
//! starts, by `server::tls`).

use super::sections::{ConfigFile, EMBEDDED_POLICY, TlsSection};
use std::path::{Path, PathBuf};

/// Makes the paths of `raw` absolute (or relative to the working directory, when
/// `base` is) and fills in the ledger's default place beside the admin state.
pub(super) fn resolve_paths(raw: &mut ConfigFile, base: &Path) {
    let text = |path: &mut String| {
        *path = resolve(base, Path::new(path.as_str()))
            .display()
            .to_string()
    };

    for tenant in &mut raw.tenants {
        if let Some(policy) = &mut tenant.policy
            && *policy != EMBEDDED_POLICY
        {
            text(policy);
        }
    }
    if let Some(tls) = &mut raw.server.tls {
        resolve_tls(tls, base, "server.tls");
    }
    if let Some(path) = &mut raw.server.handover_socket {
        text(path);
    }
    let admin = &mut raw.admin;
    if let Some(tls) = &mut admin.tls {
        resolve_tls(tls, base, "admin.tls");
    }
    for dir in [&mut admin.state_dir, &mut admin.policies_dir]
        .into_iter()
        .flatten()
    {
        text(dir);
    }
    let stores = [
        raw.cluster.as_mut().and_then(|c| c.tls.as_mut()),
        raw.ledger.tls.as_mut(),
    ];
    for tls in stores.into_iter().flatten() {
        for path in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file]
            .into_iter()
            .flatten()
        {
            *path = resolve(base, path);
        }
    }
    let ledger = &mut raw.ledger;
    if !ledger.enabled {
        ledger.path = None;
        ledger.url = None;
    } else if ledger.url.is_some() {
        // The fleet's database: no file.
    } else if let Some(path) = &mut ledger.path {
        text(path);
    } else if let Some(state) = &admin.state_dir {
        ledger.path = Some(Path::new(state).join("usage.db").display().to_string());
    }
    if let Some(path) = &mut raw.decision_log.path {
        text(path);
    }
    if let Some(dir) = &mut raw.engine.cache_dir {
        text(dir);
    }
}

fn resolve_tls(tls: &mut TlsSection, base: &Path, config_key: &'static str) {
    tls.cert_file = resolve(base, &tls.cert_file);
    tls.key_file = resolve(base, &tls.key_file);
    tls.config_key = config_key;
}

/// `path` as written in the config, relative to the config file's directory.
fn resolve(base: &Path, path: &Path) -> PathBuf {
    if path.is_absolute() {
        path.to_owned()
    } else {
        base.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolved(text: &str) -> ConfigFile {
        let mut raw: ConfigFile = toml::from_str(text).unwrap();
        resolve_paths(&mut raw, Path::new("/etc/sb"));
        raw
    }

    #[test]
    fn relative_paths_are_found_beside_the_config_file() {
        let raw = resolved(
            "[engine]\ncache_dir = \"cache/compiled\"\n\
             [server.tls]\ncert_file = \"tls/cert.pem\"\nkey_file = \"/abs/key.pem\"\n\
             [admin]\nstate_dir = \"state\"\n\
             [decision_log]\npath = \"decisions.jsonl\"\n\
             [[tenants]]\nid = \"a\"\npolicy = \"p.wasm\"\n\
             [[tenants]]\nid = \"b\"\npolicy = \"embedded:default\"\n",
        );
        assert_eq!(
            raw.engine.cache_dir.as_deref(),
            Some("/etc/sb/cache/compiled")
        );
        let tls = raw.server.tls.unwrap();
        assert_eq!(tls.cert_file, Path::new("/etc/sb/tls/cert.pem"));
        assert_eq!(tls.key_file, Path::new("/abs/key.pem"));
        assert_eq!(tls.config_key, "server.tls");
        assert_eq!(raw.admin.state_dir.as_deref(), Some("/etc/sb/state"));
        assert_eq!(raw.ledger.path.as_deref(), Some("/etc/sb/state/usage.db"));
        assert_eq!(
            raw.decision_log.path.as_deref(),
            Some("/etc/sb/decisions.jsonl")
        );
        assert_eq!(raw.tenants[0].policy.as_deref(), Some("/etc/sb/p.wasm"));
        assert_eq!(raw.tenants[1].policy.as_deref(), Some("embedded:default"));
    }

    #[test]
    fn the_ledger_goes_where_it_is_told_or_nowhere() {
        let raw = resolved("[admin]\nstate_dir = \"s\"\n[ledger]\npath = \"u.db\"\n");
        assert_eq!(raw.ledger.path.as_deref(), Some("/etc/sb/u.db"));
        let raw = resolved("[admin]\nstate_dir = \"s\"\n[ledger]\nenabled = false\n");
        assert_eq!(raw.ledger.path, None);
        assert_eq!(resolved("").ledger.path, None);
        let raw = resolved("[engine]\ncache_dir = \"/var/cache/sb\"\n");
        assert_eq!(raw.engine.cache_dir.as_deref(), Some("/var/cache/sb"));
    }
}
