//! The example configs stay valid.

use signalbox::config::Config;
use std::path::Path;

#[test]
fn the_gateway_example_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/gateway.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let config =
        Config::parse(&text, "gateway.toml", Path::new("."), &|_| Some("k".into())).unwrap();
    assert_eq!(config.targets.len(), 4);
    assert_eq!(
        config.tenants[0].safe_route,
        ["openai-gpt-4o-mini", "local-sim"]
    );
    let keys = config.tenants[0].api_keys();
    let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["3b7f2a0c", "ci-bot", "laptop-2023"]);
    assert!(keys[2].disabled);
    assert_eq!(config.tenants[0].limits.requests_per_minute, Some(600));
    // Without the environment variables it refuses to start, naming the variable.
    let err = Config::parse(&text, "gateway.toml", Path::new("."), &|_| None).unwrap_err();
    assert!(
        err.to_string()
            .contains("providers[0].api_key_env: environment variable `OPENAI_API_KEY` is not set"),
        "{err}"
    );
}
