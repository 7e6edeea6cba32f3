//! The `signalbox policy` commands, run as a real process.

use crate::support::*;
use std::path::Path;
use std::process::Command;

#[test]
fn check_accepts_the_default_policy() {
    let out = signalbox(&["policy", "check", default_policy().to_str().unwrap()]);
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(t.contains("contract:  signalbox:policy@0.4.0"), "{t}");
    assert!(
        t.contains("exports:   signalbox:policy/router@0.4.0"),
        "{t}"
    );
    assert!(t.contains("smoke:     `gpt-4o` -> openai-gpt-4o"), "{t}");
}

#[test]
fn check_rejects_each_kind_of_wrong_file_with_its_own_message() {
    let dir = tempfile::tempdir().unwrap();
    let random = dir.path().join("random.wasm");
    std::fs::write(
        &random,
        (0..4096u32)
            .map(|i| (i * 7919 % 251) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").unwrap();
    let other = wasm("signalbox_fixture_other_world");
    let future = wasm("signalbox_fixture_future_contract");

    let mut messages = Vec::new();
    for (file, needle) in [
        (random.as_path(), "not a WebAssembly file"),
        (core.as_path(), "core WebAssembly module, not a component"),
        (other.as_path(), "does not export signalbox:policy/router"),
        (
            future.as_path(),
            "built for signalbox:policy@0.5.0, host speaks signalbox:policy@0.4.0 (and 0.1.0, 0.2.0, 0.3.0)",
        ),
    ] {
        let out = signalbox(&["policy", "check", file.to_str().unwrap()]);
        let t = output_text(&out);
        assert!(
            !out.status.success(),
            "{} was accepted: {t}",
            file.display()
        );
        assert!(t.contains(needle), "{}: {t}", file.display());
        messages.push(t);
    }
    messages.dedup();
    assert_eq!(messages.len(), 4);
}

#[test]
fn check_reports_a_rejected_config() {
    let out = signalbox(&[
        "policy",
        "check",
        default_policy().to_str().unwrap(),
        "--config",
        r#"{"aliases": {"x": []}}"#,
    ]);
    let t = output_text(&out);
    assert!(!out.status.success());
    assert!(t.contains("alias `x` names no model"), "{t}");
}

/// `--config` is one reading everywhere: inline JSON, a file path or `@file`, and an
/// error naming what was tried.
#[test]
fn config_is_inline_json_a_file_or_an_at_file_and_errors_say_which() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bad-alias.json");
    std::fs::write(&file, r#"{"aliases": {"x": []}}"#).unwrap();
    let path = file.to_str().unwrap();
    // The same rejected config read three ways reaches the policy each time.
    for arg in [
        r#"{"aliases": {"x": []}}"#.to_owned(),
        path.to_owned(),
        format!("@{path}"),
    ] {
        let out = signalbox(&["policy", "check", "--config", &arg]);
        let t = output_text(&out);
        assert!(!out.status.success(), "{arg}: {t}");
        assert!(t.contains("alias `x` names no model"), "{arg}: {t}");
    }
    let out = signalbox(&[
        "policy",
        "bench",
        "--iterations",
        "10",
        "--config",
        &format!("@{path}"),
    ]);
    assert!(
        output_text(&out).contains("alias `x` names no model"),
        "{}",
        output_text(&out)
    );

    let missing = dir.path().join("missing.json");
    let out = signalbox(&["policy", "check", "--config", missing.to_str().unwrap()]);
    let t = output_text(&out);
    assert!(!out.status.success());
    assert!(
        t.contains("tried it as a file path") && t.contains("missing.json"),
        "{t}"
    );
    let out = signalbox(&["policy", "bench", "--config", "{\"a\":"]);
    let t = output_text(&out);
    assert!(!out.status.success());
    assert!(t.contains("inline JSON is not valid JSON"), "{t}");
}

/// The ten sample targets of `check` and `bench` are listed on request, each with
/// its id, model, prices and tags (the example configs are written for them).
#[test]
fn check_and_bench_list_their_sample_targets() {
    for args in [
        &["policy", "check", "--list-targets"][..],
        &["policy", "bench", "--list-targets", "--iterations", "10"],
    ] {
        let out = signalbox(args);
        let t = output_text(&out);
        assert!(out.status.success(), "{t}");
        let listed: Vec<&str> = t
            .lines()
            .filter_map(|l| l.trim_start().split_once("  "))
            .filter(|(i, _)| i.parse::<usize>().is_ok())
            .map(|(_, rest)| rest.split_whitespace().next().unwrap())
            .collect();
        assert_eq!(listed.len(), 10, "{t}");
        for id in [
            "openai-gpt-4o",
            "anthropic-sonnet",
            "vllm-qwen-coder",
            "mistral-small-eu",
        ] {
            assert!(listed.contains(&id), "{id}: {t}");
        }
        assert!(
            t.contains("2.500 / 10.000") && t.contains("region:eu"),
            "{t}"
        );
    }
}

#[test]
fn bench_reports_throughput_and_percentiles() {
    let out = signalbox(&["policy", "bench", "--iterations", "2000"]);
    let t = output_text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("1 thread(s):") && t.contains("decisions/s") && t.contains("p99"),
        "{t}"
    );
}

/// `policy new` makes a crate whose unit tests pass and whose component the checker
/// accepts, with the build command its README documents. It builds anywhere: the
/// crate is moved to another directory before it is built, and its manifest names no
/// absolute path. The scaffold is stateless, so it does not ask for outcomes.
#[test]
fn new_scaffolds_a_policy_that_builds_tests_and_checks() {
    let dir = tempfile::tempdir().unwrap();
    let out = signalbox(&[
        "policy",
        "new",
        "demo",
        "--dir",
        dir.path().join("made-here").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let crate_dir = dir.path().join("moved/demo");
    std::fs::create_dir_all(crate_dir.parent().unwrap()).unwrap();
    std::fs::rename(dir.path().join("made-here/demo"), &crate_dir).unwrap();
    let readme = std::fs::read_to_string(crate_dir.join("README.md")).unwrap();
    assert!(readme.contains("cargo build --release --target wasm32-wasip2"));
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"signalbox-sdk = { path = "signalbox-sdk/sdk" }"#),
        "{manifest}"
    );
    assert!(!manifest.contains(env!("CARGO_MANIFEST_DIR")), "{manifest}");

    // Share one target directory across runs so the SDK's dependencies build once.
    let target_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/scaffold");
    let cargo = |args: &[&str]| {
        let out = Command::new(env!("CARGO"))
            .args(args)
            .current_dir(&crate_dir)
            .env("CARGO_TARGET_DIR", &target_dir)
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo {args:?}: {}",
            output_text(&out)
        );
        output_text(&out)
    };
    let tests = cargo(&["test"]);
    assert!(tests.contains("test result: ok. 2 passed"), "{tests}");
    cargo(&["build", "--release", "--target", "wasm32-wasip2"]);

    let component = target_dir.join("wasm32-wasip2/release/demo.wasm");
    let out = signalbox(&["policy", "check", component.to_str().unwrap()]);
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("contract:  signalbox:policy@0.4.0"));
    assert!(
        output_text(&out).contains("outcomes:  not wanted"),
        "{}",
        output_text(&out)
    );

    let out = signalbox(&[
        "policy",
        "new",
        "demo",
        "--dir",
        dir.path().join("moved").to_str().unwrap(),
    ]);
    assert!(!out.status.success(), "overwrote an existing crate");
    let out = signalbox(&["policy", "new", "Bad Name"]);
    assert!(!out.status.success());
}

/// With `--sdk`, the dependency is that SDK, named relative to the new crate.
#[test]
fn new_with_an_sdk_path_names_it_relative_to_the_crate() {
    let dir = tempfile::tempdir().unwrap();
    let sdk = dir.path().join("checkout/sdk");
    std::fs::create_dir_all(&sdk).unwrap();
    std::fs::write(
        sdk.join("Cargo.toml"),
        "[package]\nname = \"signalbox-sdk\"\n",
    )
    .unwrap();
    let out = signalbox(&[
        "policy",
        "new",
        "demo",
        "--dir",
        dir.path().join("checkout/policies").to_str().unwrap(),
        "--sdk",
        sdk.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let crate_dir = dir.path().join("checkout/policies/demo");
    let manifest = std::fs::read_to_string(crate_dir.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(r#"signalbox-sdk = { path = "../../sdk" }"#),
        "{manifest}"
    );
    assert!(
        !crate_dir.join("signalbox-sdk").exists(),
        "no copy with --sdk"
    );

    let out = signalbox(&[
        "policy",
        "new",
        "other",
        "--dir",
        dir.path().to_str().unwrap(),
        "--sdk",
        "/no/such/sdk",
    ]);
    let t = output_text(&out);
    assert!(!out.status.success() && t.contains("--sdk"), "{t}");
}

#[test]
fn serve_refuses_a_bad_config_naming_the_file_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[[providers]]\nname = \"p\"\nkind = \"simulated\"\n\n[[targets]]\nid = \"t\"\nprovider = \"nope\"\nmodel = \"m\"\n",
    )
    .unwrap();
    let out = signalbox(&["serve", "--config", path.to_str().unwrap()]);
    let t = output_text(&out);
    assert!(!out.status.success());
    assert!(
        t.contains("bad.toml:7:12: targets[0].provider: no provider named `nope`"),
        "{t}"
    );
}

/// `keys new` as a real process: a fresh `sb-` key on the first line (and nowhere
/// else), then TOML whose entry, pasted into a tenant, authenticates that key.
#[tokio::test]
async fn keys_new_prints_a_fresh_key_once_and_an_entry_that_authenticates_it() {
    use crate::fake_upstream::{FakeUpstream, Wire};
    use crate::gateway_support::{TestGateway, config};
    use crate::keys_support::{chat_as, hello};

    let run = |args: &[&str]| {
        let out = signalbox(args);
        assert!(out.status.success(), "{}", output_text(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let (key, toml) = stdout.split_once('\n').unwrap();
        let key = key.to_owned();
        let body = key.strip_prefix("sb-").unwrap();
        assert_eq!(body.len(), 43, "{key}");
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric()), "{key}");
        // Shown once: not in the TOML, not in the notice on stderr.
        assert!(!toml.contains(&key[3..]) && !stderr.contains(&key[3..]));
        assert!(stderr.contains("shown only once"), "{stderr}");
        (key, toml.to_owned())
    };
    let (named, named_toml) = run(&["keys", "new", "--tenant", "acme", "--id", "ci-bot"]);
    let (plain, plain_toml) = run(&["keys", "new", "--tenant", "acme"]);
    assert_ne!(named, plain);

    for (key, toml, id) in [
        (&named, &named_toml, "ci-bot".to_owned()),
        (
            &plain,
            &plain_toml,
            signalbox::tenancy::derived_key_id(&signalbox::tenancy::hash_key(&plain)),
        ),
    ] {
        let parsed: toml::Table = toml::from_str(toml).unwrap();
        let entry = &parsed["tenants"]["keys"][0];
        assert_eq!(entry["id"].as_str(), Some(id.as_str()), "{toml}");
        assert_eq!(
            entry["hash"].as_str().unwrap(),
            signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(key))
        );
    }

    // Pasted under tenant `acme`, both keys get through.
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let gw = TestGateway::start(&config(
        &[("pa", "openai", &format!("{}/v1", upstream.url()))],
        &[("a", "pa", "m")],
        &format!("{named_toml}\n{plain_toml}"),
    ))
    .await;
    for key in [&named, &plain] {
        let reply = chat_as(&gw, key, &hello()).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }

    for bad in [
        &["keys", "new"][..],
        &["keys", "new", "--tenant", "acme", "--id", "has space"],
        &["keys", "new", "--tenant", ""],
    ] {
        let out = signalbox(bad);
        assert!(!out.status.success(), "{bad:?}: {}", output_text(&out));
    }
}

/// `tokens new` as a real process: a fresh token on the first line only, then an
/// `[[admin.tokens]]` entry that, pasted into a config, makes it an operator token
/// (every tenant) or a tenant's deploy token (that tenant only).
#[tokio::test]
async fn tokens_new_prints_a_token_once_and_an_entry_that_admits_it() {
    use crate::deploy::{lifecycle_config, upstream};
    use crate::gateway_support::{TestGateway, send};

    let run = |args: &[&str]| {
        let out = signalbox(args);
        assert!(out.status.success(), "{}", output_text(&out));
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8(out.stderr).unwrap();
        let (token, toml) = stdout.split_once('\n').unwrap();
        let body = token.strip_prefix("sb-admin-").unwrap();
        assert_eq!(body.len(), 43, "{token}");
        assert!(!toml.contains(body) && !stderr.contains(body));
        assert!(stderr.contains("shown only once"), "{stderr}");
        (token.to_owned(), toml.to_owned())
    };
    let (operator, operator_toml) = run(&["tokens", "new", "--operator"]);
    let (deploy, deploy_toml) = run(&["tokens", "new", "--tenant", "globex"]);
    assert_ne!(operator, deploy);
    let parsed: toml::Table = toml::from_str(&deploy_toml).unwrap();
    assert_eq!(
        parsed["admin"]["tokens"][0]["tenant"].as_str(),
        Some("globex")
    );

    let up = upstream().await;
    let config = format!(
        "{}\n{operator_toml}\n{deploy_toml}",
        lifecycle_config(&up.url(), "")
    );
    let gw = TestGateway::start(&config).await;
    let tenants = |token: String| {
        let url = gw.admin_url("/admin/tenants");
        async move {
            let r = send("GET", &url, Some(&token), None).await;
            assert_eq!(r.status, 200, "{}", r.text());
            r.json()["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| t["id"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(tenants(operator.clone()).await, ["acme", "globex"]);
    assert_eq!(tenants(deploy.clone()).await, ["globex"]);
    let metrics = send("GET", &gw.admin_url("/metrics"), Some(&deploy), None).await;
    assert_eq!(metrics.status, 403);

    for bad in [
        &["tokens", "new"][..],
        &["tokens", "new", "--operator", "--tenant", "acme"],
        &["tokens", "new", "--tenant", ""],
    ] {
        let out = signalbox(bad);
        assert!(!out.status.success(), "{bad:?}: {}", output_text(&out));
    }
}

/// `usage --help` says which bound is exclusive, as the README does.
#[test]
fn usage_help_says_to_is_exclusive() {
    let out = signalbox(&["usage", "--help"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let help = output_text(&out);
    assert!(
        help.contains("inclusive") && help.contains("exclusive"),
        "{help}"
    );
    let readme = include_str!("../../README.md");
    assert!(readme.contains("`from` is inclusive and `to` exclusive"));
}
