//! The SDK this binary was built with, carried inside it so that `policy new` can
//! write a copy next to the new policy: the scaffold then builds on any machine,
//! offline, with the SDK and contract that match this gateway exactly (the SDK is not
//! published to a registry, and a path into the checkout the binary was built from
//! exists only on that machine).
//!
//! The copy keeps the repository's layout (`sdk/`, `contract/`, `wit/`), so the
//! relative paths inside the SDK (its path dependency on the contract crate, the WIT
//! directory its bindings are generated from) hold unchanged. A unit test checks that
//! every source file of those crates is listed here.

use anyhow::Context;
use std::path::Path;

/// Each copied file: its path in the copy, and its text.
const FILES: &[(&str, &str)] = &[
    (
        "sdk/src/decision.rs",
        include_str!("../../../../sdk/src/decision.rs"),
    ),
    (
        "sdk/src/hash.rs",
        include_str!("../../../../sdk/src/hash.rs"),
    ),
    (
        "sdk/src/host.rs",
        include_str!("../../../../sdk/src/host.rs"),
    ),
    ("sdk/src/lib.rs", include_str!("../../../../sdk/src/lib.rs")),
    (
        "sdk/src/outcome.rs",
        include_str!("../../../../sdk/src/outcome.rs"),
    ),
    (
        "sdk/src/policy.rs",
        include_str!("../../../../sdk/src/policy.rs"),
    ),
    (
        "sdk/src/review.rs",
        include_str!("../../../../sdk/src/review.rs"),
    ),
    (
        "sdk/src/runtime.rs",
        include_str!("../../../../sdk/src/runtime.rs"),
    ),
    (
        "sdk/src/serving.rs",
        include_str!("../../../../sdk/src/serving.rs"),
    ),
    (
        "sdk/src/snapshot.rs",
        include_str!("../../../../sdk/src/snapshot.rs"),
    ),
    (
        "sdk/src/testing.rs",
        include_str!("../../../../sdk/src/testing.rs"),
    ),
    (
        "sdk/src/types.rs",
        include_str!("../../../../sdk/src/types.rs"),
    ),
    (
        "contract/src/counters.rs",
        include_str!("../../../../contract/src/counters.rs"),
    ),
    (
        "contract/src/decision.rs",
        include_str!("../../../../contract/src/decision.rs"),
    ),
    (
        "contract/src/hash.rs",
        include_str!("../../../../contract/src/hash.rs"),
    ),
    (
        "contract/src/lib.rs",
        include_str!("../../../../contract/src/lib.rs"),
    ),
    (
        "contract/src/text.rs",
        include_str!("../../../../contract/src/text.rs"),
    ),
    (
        "contract/src/tokens.rs",
        include_str!("../../../../contract/src/tokens.rs"),
    ),
    ("wit/policy.wit", include_str!("../../../../wit/policy.wit")),
    // The guide of common tasks; the SDK's doc tests compile its examples.
    (
        "docs/policy-sdk.md",
        include_str!("../../../../docs/policy-sdk.md"),
    ),
];

/// The two manifests, whose `key.workspace = true` lines are filled in from the
/// workspace's `[workspace.package]` (the copy is no longer in that workspace).
const MANIFESTS: &[(&str, &str)] = &[
    ("sdk/Cargo.toml", include_str!("../../../../sdk/Cargo.toml")),
    (
        "contract/Cargo.toml",
        include_str!("../../../../contract/Cargo.toml"),
    ),
];
const WORKSPACE_MANIFEST: &str = include_str!("../../../../Cargo.toml");

/// The directory of the copy inside a new policy crate.
pub const DIR: &str = "signalbox-sdk";

/// Writes the copy under `root` (`root/signalbox-sdk/…`).
pub fn write(root: &Path) -> anyhow::Result<()> {
    let workspace: toml::Table =
        toml::from_str(WORKSPACE_MANIFEST).context("the embedded workspace manifest")?;
    let package = workspace
        .get("workspace")
        .and_then(|w| w.get("package"))
        .and_then(toml::Value::as_table)
        .context("the embedded workspace manifest has no [workspace.package]")?;
    let manifests = MANIFESTS
        .iter()
        .map(|(path, text)| Ok((*path, standalone_manifest(text, package)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let files = FILES
        .iter()
        .map(|(path, text)| (*path, (*text).to_owned()))
        .chain(manifests);
    for (path, text) in files {
        let path = root.join(DIR).join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

/// `manifest` with each `key.workspace = true` replaced by the workspace's value.
fn standalone_manifest(manifest: &str, package: &toml::Table) -> anyhow::Result<String> {
    let mut out = String::with_capacity(manifest.len());
    for line in manifest.lines() {
        match line.trim().strip_suffix(".workspace = true") {
            Some(key) => {
                let value = package
                    .get(key)
                    .with_context(|| format!("[workspace.package] has no `{key}`"))?;
                out.push_str(&format!("{key} = {value}\n"));
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file the copy must hold, read from the repository at test time.
    fn sources() -> Vec<String> {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = Vec::new();
        for (dir, ext) in [("sdk/src", "rs"), ("contract/src", "rs"), ("wit", "wit")] {
            for entry in std::fs::read_dir(root.join(dir)).unwrap() {
                let path = entry.unwrap().path();
                if path.extension().is_some_and(|x| x == ext) {
                    let name = path.file_name().unwrap().to_str().unwrap();
                    found.push(format!("{dir}/{name}"));
                }
            }
        }
        found.push("docs/policy-sdk.md".to_owned());
        found.sort();
        found
    }

    #[test]
    fn every_sdk_and_contract_source_is_copied() {
        let mut listed: Vec<String> = FILES.iter().map(|(p, _)| (*p).to_owned()).collect();
        listed.sort();
        assert_eq!(listed, sources(), "add the new file to FILES");
    }

    #[test]
    fn manifests_inherit_nothing_from_a_workspace() {
        let workspace: toml::Table = toml::from_str(WORKSPACE_MANIFEST).unwrap();
        let package = workspace["workspace"]["package"].as_table().unwrap();
        for (path, text) in MANIFESTS {
            let out = standalone_manifest(text, package).unwrap();
            assert!(!out.contains("workspace"), "{path}: {out}");
            let parsed: toml::Table = toml::from_str(&out).unwrap();
            assert_eq!(
                parsed["package"]["version"].as_str(),
                Some(env!("CARGO_PKG_VERSION"))
            );
            assert!(parsed["package"]["edition"].is_str(), "{path}");
        }
    }
}
