//! Builds the one policy the gateway embeds, `policies/default`, to a WebAssembly
//! component (`host/src/embedded.rs` includes it).
//!
//! Only that policy: the policy library, the test fixtures and the quickstart policy
//! build in their own step (`cargo build-policies`, the alias in `.cargo/config.toml`,
//! run by `tests/run`), so editing a library policy never makes `cargo check -p
//! signalbox` rebuild a component. For the same reason the script re-runs only when
//! one of the default policy's own inputs changes: the crates and files its component
//! was compiled from (read from cargo's dep-info), the lock file and the workspace
//! manifest (which holds the `policy` profile).
//!
//! The nested cargo uses its own target directory, so it never waits on the lock of
//! the build that runs this script.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "policy";
const PACKAGE: &str = "signalbox-policy-default";
const ARTIFACT: &str = "signalbox_policy_default";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().unwrap_or(&manifest_dir).to_owned();
    // Always `target/policies` of the workspace, whatever CARGO_TARGET_DIR says: the
    // `build-policies` alias writes there too, and the tests, the docs and the
    // examples name that one directory.
    let target_dir = root.join("target").join("policies");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
            "-p",
            PACKAGE,
        ])
        .arg("--target-dir")
        .arg(&target_dir);
    // Flags meant for the host build (coverage, sanitizers, clippy) must not leak into
    // the wasm build.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
    ] {
        cmd.env_remove(var);
    }
    if std::env::var_os("CARGO_NET_OFFLINE").is_some() {
        cmd.arg("--offline");
    }

    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!(
            "building {PACKAGE} for {TARGET} failed ({s}); if the target is missing, run `rustup target add {TARGET}`"
        )),
        Err(e) => fail(&format!("cannot run cargo to build {PACKAGE}: {e}")),
    }

    let built = target_dir.join(TARGET).join(PROFILE);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    copy(
        &built.join(format!("{ARTIFACT}.wasm")),
        &out.join("default.wasm"),
    );
    // Where the tests find every component (the other ones built by the alias).
    println!(
        "cargo::rustc-env=SIGNALBOX_POLICY_WASM_DIR={}",
        built.display()
    );

    for path in watched(&root, &built.join(format!("{ARTIFACT}.d"))) {
        println!("cargo::rerun-if-changed={}", path.display());
    }
}

/// What the default policy is built from. The inputs come from the dep-info file cargo
/// wrote next to the component (so a crate the SDK starts to depend on is watched with
/// no edit here): each workspace crate that contributed a source is watched whole
/// (sources and manifest), other workspace files (the WIT) by their folder; registry
/// crates are pinned by the lock file. Without dep-info, the known inputs are watched.
fn watched(root: &Path, dep_info: &Path) -> Vec<PathBuf> {
    let mut paths = vec![root.join("Cargo.lock"), root.join("Cargo.toml")];
    let Ok(text) = std::fs::read_to_string(dep_info) else {
        println!(
            "cargo::warning=no dep-info at {}: watching policies/default, sdk and wit",
            dep_info.display()
        );
        paths.extend(["policies/default", "sdk", "wit"].map(|d| root.join(d)));
        return paths;
    };
    for file in dependencies(&text) {
        if !file.starts_with(root) || file.starts_with(root.join("target")) {
            continue;
        }
        // A file of no crate is watched through its folder: wit-bindgen reads every
        // file of the WIT folder, so a new one there is an input too.
        let watch = crate_dir(root, &file)
            .or_else(|| {
                file.parent()
                    .filter(|dir| *dir != root)
                    .map(Path::to_path_buf)
            })
            .unwrap_or(file);
        if !paths.contains(&watch) {
            paths.push(watch);
        }
    }
    paths
}

/// The prerequisites of a make-style dep-info file (`out: in1 in2 …`, spaces in paths
/// escaped with a backslash).
fn dependencies(dep_info: &str) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for line in dep_info.lines() {
        let Some((_, inputs)) = line.split_once(": ") else {
            continue;
        };
        let mut current = String::new();
        let mut chars = inputs.chars();
        while let Some(c) = chars.next() {
            match c {
                '\\' => current.extend(chars.next()),
                ' ' => {
                    if !current.is_empty() {
                        files.push(PathBuf::from(std::mem::take(&mut current)));
                    }
                }
                c => current.push(c),
            }
        }
        if !current.is_empty() {
            files.push(PathBuf::from(current));
        }
    }
    files
}

/// The directory of the workspace crate holding `file` (the nearest ancestor below the
/// root with a `Cargo.toml`), or `None` for a file of no crate (such as the WIT).
fn crate_dir(root: &Path, file: &Path) -> Option<PathBuf> {
    file.ancestors()
        .skip(1)
        .take_while(|dir| *dir != root)
        .find(|dir| dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

fn copy(from: &Path, to: &Path) {
    if let Err(e) = std::fs::copy(from, to) {
        fail(&format!(
            "cannot copy {} to {}: {e}",
            from.display(),
            to.display()
        ));
    }
}

fn fail(message: &str) -> ! {
    eprintln!("error: {message}");
    std::process::exit(1);
}
