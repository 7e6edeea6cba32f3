//! `signalbox policy new`: a policy crate that builds and tests out of the box, on
//! any machine.
//!
//! The SDK dependency is a copy of this binary's SDK written into the crate
//! ([`sdk_copy`]), or, with `--sdk PATH`, a path to an SDK checkout written relative
//! to the crate (so moving both together keeps it building). Never an absolute path
//! of the machine the binary was built on.

mod sdk_copy;

use anyhow::{Context, bail};
use std::path::{Component, Path, PathBuf};

pub fn run(name: &str, dir: &Path, sdk: Option<&Path>) -> anyhow::Result<()> {
    check_name(name)?;
    let sdk = match sdk {
        Some(path) => Some(path.canonicalize().with_context(|| {
            format!(
                "--sdk: cannot find the signalbox-sdk crate at {}",
                path.display()
            )
        })?),
        None => None,
    };
    if let Some(sdk) = &sdk
        && !sdk.join("Cargo.toml").is_file()
    {
        bail!(
            "--sdk: {} has no Cargo.toml; name the SDK crate's directory",
            sdk.display()
        );
    }
    let root = dir.join(name);
    if root.exists() {
        bail!("{} already exists", root.display());
    }
    std::fs::create_dir_all(root.join("src"))
        .with_context(|| format!("cannot create {}", root.display()))?;

    let root_abs = root
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", root.display()))?;
    let sdk_path = match &sdk {
        Some(sdk) => relative_path(&root_abs, sdk),
        None => {
            sdk_copy::write(&root)?;
            PathBuf::from(sdk_copy::DIR).join("sdk")
        }
    };
    let sdk_path = sdk_path.display().to_string().replace('\\', "/");
    let files = [
        (
            "Cargo.toml",
            CARGO_TOML
                .replace("{name}", name)
                .replace("{sdk}", &sdk_path),
        ),
        ("src/lib.rs", LIB_RS.to_owned()),
        (".gitignore", "/target\n".to_owned()),
        (
            "README.md",
            README
                .replace("{name}", name)
                .replace("{file}", &name.replace('-', "_")),
        ),
    ];
    for (file, text) in files {
        let path = root.join(file);
        std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    }
    println!("created policy crate {}", root.display());
    println!("  test:  cd {} && cargo test", root.display());
    println!(
        "  build: cd {} && cargo build --release --target wasm32-wasip2",
        root.display()
    );
    println!(
        "  check: signalbox policy check {}/target/wasm32-wasip2/release/{}.wasm",
        root.display(),
        name.replace('-', "_")
    );
    Ok(())
}

/// `to` as a path relative to `from` (both absolute and resolved).
fn relative_path(from: &Path, to: &Path) -> PathBuf {
    let from: Vec<Component> = from.components().collect();
    let to: Vec<Component> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut path = PathBuf::new();
    for _ in common..from.len() {
        path.push("..");
    }
    for part in &to[common..] {
        path.push(part);
    }
    path
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64;
    if !valid {
        bail!(
            "`{name}` is not a valid crate name: use lower-case letters, digits, `-` and `_`, starting with a letter"
        );
    }
    Ok(())
}

const CARGO_TOML: &str = r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib", "rlib"]

[dependencies]
signalbox-sdk = { path = "{sdk}" }
serde = { version = "1", features = ["derive"] }

# Small, fast components.
[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
panic = "abort"
strip = true

# A policy is its own workspace, even when created inside another one.
[workspace]
"#;

const LIB_RS: &str = r##"//! A Signalbox routing policy.
//!
//! Sends each request to the cheapest available target serving the requested model,
//! preferring targets that carry the configured tag.

use serde::Deserialize;
use signalbox_sdk::*;

/// The JSON config, e.g. `{"prefer_tag": "region:eu"}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Prefer targets with this tag when any can serve the request.
    #[serde(default)]
    pub prefer_tag: Option<String>,
}

pub struct MyPolicy {
    config: Config,
}

impl Policy for MyPolicy {
    type Config = Config;
    // Stateless: it learns nothing from outcomes, so the gateway skips `on_outcome`.
    // Set it to `true` (or remove it) when you write an `on_outcome`.
    const OBSERVES_OUTCOMES: bool = false;

    fn activate(config: Config, _targets: &[Target]) -> Result<Self, String> {
        if config.prefer_tag.as_deref() == Some("") {
            return Err("prefer_tag must not be empty".into());
        }
        Ok(MyPolicy { config })
    }

    fn route(&self, req: &Request<'_>, snapshot: &Snapshot<'_>) -> Decision {
        let output = req.max_output_tokens.unwrap_or(512);
        let mut candidates = snapshot
            .candidates()
            .serving(&req.model)
            .fitting(req.total_tokens(512));
        if let Some(tag) = &self.config.prefer_tag {
            candidates = candidates.prefer(|c| c.target.has_tag(tag));
        }
        if candidates.is_empty() {
            return Decision::reject(404, format!("no target serves `{}`", req.model));
        }
        candidates
            .by_price(req.input_tokens, output)
            .available_first()
            .into_decision("cheapest available")
    }
}

export_policy!(MyPolicy);

#[cfg(test)]
mod tests {
    use super::*;
    use signalbox_sdk::testing::Harness;

    fn targets() -> Vec<Target> {
        vec![
            Target::new("us", "gpt-4o-mini").price(0.15, 0.6),
            Target::new("eu", "gpt-4o-mini").price(0.2, 0.8).tag("region:eu"),
            Target::new("big", "gpt-4o").price(2.5, 10.0),
        ]
    }

    #[test]
    fn cheapest_first_and_preferred_tag_wins() {
        let req = RequestBuilder::chat("gpt-4o-mini").user("hello").build();
        let plain = Harness::<MyPolicy>::new("{}", targets()).unwrap();
        assert_eq!(plain.route_ids(&req, &[Signals::default(); 3]), Ok(vec!["us", "eu"]));

        let eu = Harness::<MyPolicy>::new(r#"{"prefer_tag": "region:eu"}"#, targets()).unwrap();
        assert_eq!(eu.route_ids(&req, &[Signals::default(); 3]), Ok(vec!["eu"]));
    }

    #[test]
    fn unknown_models_are_rejected() {
        let req = RequestBuilder::chat("nope").user("hello").build();
        let h = Harness::<MyPolicy>::new("{}", targets()).unwrap();
        assert!(matches!(h.route_healthy(&req), Decision::Reject { status: 404, .. }));
    }
}
"##;

const README: &str = r#"# {name}

A Signalbox routing policy.

```sh
cargo test                                      # native unit tests
cargo build --release --target wasm32-wasip2    # the component
signalbox policy check target/wasm32-wasip2/release/{file}.wasm
```

`src/lib.rs` is the policy; `signalbox-sdk/` (when present) is a copy of the SDK of
the gateway that created this crate, so the crate builds anywhere, offline. To use an
SDK checkout instead, point `signalbox-sdk` in `Cargo.toml` at its `sdk/` directory
(or create the crate with `signalbox policy new --sdk PATH`). The SDK's reference:
`cargo doc -p signalbox-sdk --no-deps --open`; its guide of common tasks:
`signalbox-sdk/docs/policy-sdk.md`.
"#;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_climb_to_the_common_ancestor() {
        let rel = |a: &str, b: &str| relative_path(Path::new(a), Path::new(b));
        assert_eq!(
            rel("/w/repo/policies/p", "/w/repo/sdk"),
            Path::new("../../sdk")
        );
        assert_eq!(
            rel("/w/p", "/w/p/signalbox-sdk/sdk"),
            Path::new("signalbox-sdk/sdk")
        );
        assert_eq!(rel("/a/b", "/c"), Path::new("../../c"));
    }
}
