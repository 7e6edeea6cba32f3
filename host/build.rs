//! Builds every policy crate of the workspace to a WebAssembly component.
//!
//! The gateway embeds `policies/default`; the tests load the fixtures. Building them
//! here means one `cargo build` or `cargo test` yields everything, with no manual
//! step. The nested cargo uses its own target directory, so it never waits on the
//! lock of the build that runs this script.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";
const PROFILE: &str = "policy";

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").unwrap_or_default());
    let root = manifest_dir.parent().unwrap_or(&manifest_dir).to_owned();
    for dir in ["policies", "examples", "sdk", "wit"] {
        println!("cargo::rerun-if-changed={}", root.join(dir).display());
    }
    println!(
        "cargo::rerun-if-changed={}",
        root.join("Cargo.toml").display()
    );
    println!(
        "cargo::rerun-if-changed={}",
        root.join("Cargo.lock").display()
    );

    let target_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"))
        .join("policies");

    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&root)
        .args([
            "build",
            "--profile",
            PROFILE,
            "--target",
            TARGET,
            "--workspace",
        ])
        .args([
            "--exclude",
            "signalbox",
            "--exclude",
            "signalbox-sdk",
            "--exclude",
            "signalbox-load",
            // Native programs, not policies.
            "--exclude",
            "signalbox-train-complexity",
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

    let status = cmd.status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!(
            "building the policies for {TARGET} failed ({s}); if the target is missing, run `rustup target add {TARGET}`"
        )),
        Err(e) => fail(&format!("cannot run cargo to build the policies: {e}")),
    }

    let built = target_dir.join(TARGET).join(PROFILE);
    let out = PathBuf::from(std::env::var_os("OUT_DIR").unwrap_or_default());
    copy(
        &built.join("signalbox_policy_default.wasm"),
        &out.join("default.wasm"),
    );
    println!(
        "cargo::rustc-env=SIGNALBOX_POLICY_WASM_DIR={}",
        built.display()
    );
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
