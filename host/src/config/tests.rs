//! Reading whole config files: what they give, and where their errors point.
use super::*;

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, "test.toml", Path::new("/etc/sb"), &|name| {
        (name == "KEY_SET").then(|| "secret".to_owned())
    })
}

const MINIMAL: &str = r#"
    [[providers]]
    name = "sim"
    kind = "simulated"

    [[targets]]
    id = "small"
    provider = "sim"
    model = "small-model"

    [[tenants]]
    id = "demo"
    key_hashes = ["sha256:0000000000000000000000000000000000000000000000000000000000000000"]
    safe_route = ["small"]
"#;

#[test]
fn embedded_default_is_valid() {
    let config = Config::embedded().unwrap();
    assert!(config.targets.len() >= 2);
    assert_eq!(config.tenants.len(), 1);
}

#[test]
fn minimal_config_gets_defaults() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080");
    assert_eq!(c.targets[0].upstream_model(), "small-model");
}

#[test]
fn errors_name_the_key_path() {
    let bad = MINIMAL.replace("provider = \"sim\"", "provider = \"nope\"");
    let e = parse(&bad).unwrap_err();
    assert_eq!(e.path, "targets[0].provider");
    assert_eq!(
        e.location,
        Some(Location {
            line: 8,
            column: 16
        })
    );
    assert_eq!(
        e.to_string(),
        "test.toml:8:16: targets[0].provider: no provider named `nope`"
    );

    let typo = MINIMAL.replace("model = \"small-model\"", "modle = \"small-model\"");
    let e = parse(&typo).unwrap_err();
    assert!(e.message.contains("unknown field `modle`"), "{e}");
    assert_eq!(e.path, "targets[0].modle");
    assert_eq!(e.location, Some(Location { line: 9, column: 5 }));

    let secret = MINIMAL.replace(
        "kind = \"simulated\"",
        "kind = \"openai\"\nbase_url = \"https://api.example\"\napi_key_env = \"KEY_UNSET\"",
    );
    let e = parse(&secret).unwrap_err();
    assert_eq!(e.path, "providers[0].api_key_env");
    assert!(e.message.contains("`KEY_UNSET` is not set"));

    let bad_hash = MINIMAL.replace("sha256:0000", "md5:0000");
    assert_eq!(
        parse(&bad_hash).unwrap_err().path,
        "tenants[0].key_hashes[0]"
    );
}

fn hash(key: &str) -> String {
    crate::tenancy::format_key_hash(&crate::tenancy::hash_key(key))
}

#[test]
fn keys_and_limits_are_read_with_ids() {
    let text = format!(
        "{MINIMAL}\n[tenants.limits]\nrequests_per_minute = 60\nbudget_usd_per_day = 2.5\n\n[[tenants.keys]]\nid = \"ci\"\nhash = \"{}\"\ntokens_per_minute = 1000\n\n[[tenants.keys]]\nid = \"old\"\nhash = \"{}\"\ndisabled = true\n",
        hash("sb-ci"),
        hash("sb-old")
    );
    let c = parse(&text).unwrap();
    let t = &c.tenants[0];
    assert!(!t.disabled);
    assert_eq!(t.limits.requests_per_minute, Some(60));
    assert_eq!(t.limits.budget_usd_per_day, Some(2.5));
    let keys = t.api_keys();
    let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
    assert_eq!(ids, ["00000000", "ci", "old"]);
    assert_eq!(keys[1].limits().tokens_per_minute, Some(1000));
    assert!(keys[2].disabled && !keys[1].disabled);
}

#[test]
fn key_and_limit_errors_name_the_key_path() {
    let with = |extra: &str| parse(&format!("{MINIMAL}\n{extra}")).unwrap_err();
    let e = with("[[tenants.keys]]\nid = \"ci\"\nhash = \"sha256:12\"\n");
    assert_eq!(e.path, "tenants[0].keys[0].hash");
    assert!(e.message.contains("64 hex digits"), "{e}");

    let e = with(&format!(
        "[[tenants.keys]]\nid = \"a b\"\nhash = \"{}\"\n",
        hash("x")
    ));
    assert_eq!(e.path, "tenants[0].keys[0].id");

    let e = with(&format!(
        "[[tenants.keys]]\nid = \"00000000\"\nhash = \"{}\"\n",
        hash("x")
    ));
    assert_eq!(e.path, "tenants[0].keys[0].id");
    assert!(e.message.contains("duplicate key id `00000000`"), "{e}");

    let zeros = format!("sha256:{}", "0".repeat(64));
    let e = with(&format!(
        "[[tenants.keys]]\nid = \"again\"\nhash = \"{zeros}\"\n"
    ));
    assert_eq!(e.path, "tenants[0].keys[0].hash");
    assert!(
        e.message
            .contains("already listed at tenants[0].key_hashes[0]"),
        "{e}"
    );

    let e = with("[tenants.limits]\nrequests_per_minute = 0\n");
    assert_eq!(e.path, "tenants[0].limits.requests_per_minute");
    let e = with(&format!(
        "[[tenants.keys]]\nid = \"k\"\nhash = \"{}\"\nbudget_usd_per_month = -1.0\n",
        hash("x")
    ));
    assert_eq!(e.path, "tenants[0].keys[0].budget_usd_per_month");
    let e = with("[tenants.limits]\nrequests_per_hour = 5\n");
    assert!(
        e.message.contains("unknown field `requests_per_hour`"),
        "{e}"
    );
}

#[test]
fn telemetry_is_off_unless_an_endpoint_is_named() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.telemetry.otlp_endpoint, None);
    assert_eq!(c.telemetry.traces_url(), None);
    assert_eq!(c.telemetry.service_name, "signalbox");
    assert_eq!(c.telemetry.sample_ratio, 1.0);
}

#[test]
fn secrets_come_from_the_environment() {
    let with_key = MINIMAL.replace(
        "kind = \"simulated\"",
        "kind = \"openai\"\nbase_url = \"https://api.example\"\napi_key_env = \"KEY_SET\"",
    );
    let c = parse(&with_key).unwrap();
    assert_eq!(c.secrets.get("sim"), Some("secret"));
    // Printed for debugging, the config names the secret and never shows it.
    let printed = format!("{c:?}");
    assert!(printed.contains("\"sim\": \"<redacted>\""), "{printed}");
    assert!(!printed.contains("secret\""), "{printed}");
}

#[test]
fn whole_file_telemetry_errors_name_the_key_path() {
    let e = parse(&format!("{MINIMAL}\n[telemetry]\nsample_ratio = -0.1\n")).unwrap_err();
    assert_eq!(e.path, "telemetry.sample_ratio");
    let e = parse(&format!("{MINIMAL}\n[telemetry]\nendpoint = \"x\"\n")).unwrap_err();
    assert!(e.message.contains("unknown field `endpoint`"), "{e}");
    assert_eq!(e.path, "telemetry.endpoint");
}

/// A config written flush left, as people write them: the columns below are counted
/// by hand from this text.
const FLUSH: &str = "\
server.listen = \"127.0.0.1:8080\"
[[providers]]
name = \"sim\"
kind = \"simulated\"

[[targets]]
id = \"small\"
provider = \"sim\"
model = \"small-model\"
input_price = 0.5

[[tenants]]
id = \"demo\"
key_hashes = [\"sha256:0000000000000000000000000000000000000000000000000000000000000000\"]
safe_route = [\"small\", \"small\"]";

fn located(text: &str) -> (String, usize, usize, String) {
    let e = parse(text).unwrap_err();
    let at = e.location.unwrap_or_else(|| panic!("no location: {e}"));
    (e.path, at.line, at.column, e.message)
}

#[test]
fn the_flush_config_is_valid() {
    parse(FLUSH).unwrap();
}

#[test]
fn an_error_on_the_first_line_is_placed_there() {
    // A wrong type, found while deserialising.
    let text = FLUSH.replace("\"127.0.0.1:8080\"", "8080");
    let (path, line, column, message) = located(&text);
    assert_eq!((path.as_str(), line, column), ("server.listen", 1, 17));
    assert!(message.contains("expected a string"), "{message}");
    // A bad value, found by validation.
    let text = FLUSH.replace("127.0.0.1:8080", "localhost");
    let (path, line, column, _) = located(&text);
    assert_eq!((path.as_str(), line, column), ("server.listen", 1, 17));
}

#[test]
fn an_error_mid_file_is_placed_on_its_line() {
    let text = FLUSH.replace("input_price = 0.5", "input_price = -0.5");
    let (path, line, column, message) = located(&text);
    assert_eq!(
        (path.as_str(), line, column),
        ("targets[0].input_price", 10, 15)
    );
    assert_eq!(message, "prices must be zero or more");

    // An unknown key: the key itself.
    let text = FLUSH.replace("input_price", "input_prize");
    let (path, line, column, message) = located(&text);
    assert_eq!(
        (path.as_str(), line, column),
        ("targets[0].input_prize", 10, 1)
    );
    assert!(message.contains("unknown field `input_prize`"), "{message}");

    // A required key left out: the table it belongs in.
    let text = FLUSH.replace("provider = \"sim\"\n", "");
    let (path, line, column, message) = located(&text);
    assert_eq!((path.as_str(), line, column), ("targets[0]", 6, 1));
    assert!(message.contains("missing field `provider`"), "{message}");
}

#[test]
fn an_error_on_the_last_line_without_a_newline_is_placed_there() {
    // Validation after parsing: the second id of the safe route is unknown.
    let text = FLUSH.replace("[\"small\", \"small\"]", "[\"small\", \"large\"]");
    let (path, line, column, message) = located(&text);
    assert_eq!(
        (path.as_str(), line, column),
        ("tenants[0].safe_route[1]", 15, 24)
    );
    assert_eq!(message, "no target with id `large`");
    assert_eq!(
        parse(&text).unwrap_err().to_string(),
        "test.toml:15:24: tenants[0].safe_route[1]: no target with id `large`"
    );
    // A syntax error at the very end: the array is never closed.
    let text = FLUSH.trim_end_matches(']');
    let (path, line, _, _) = located(text);
    assert_eq!((path.as_str(), line), ("tenants[0].safe_route[1]", 15));
}

#[test]
fn a_syntax_error_names_the_key_being_written() {
    let text = FLUSH.replace("model = \"small-model\"", "model = \"small-model");
    let (path, line, _, _) = located(&text);
    assert_eq!((path.as_str(), line), ("targets[0].model", 9));
}

#[test]
fn a_section_left_out_has_no_line() {
    let start = FLUSH.find("[[targets]]").unwrap();
    let end = FLUSH.find("[[tenants]]").unwrap();
    let text = format!("{}{}", &FLUSH[..start], &FLUSH[end..]);
    let e = parse(&text).unwrap_err();
    assert_eq!((e.path.as_str(), e.location), ("targets", None));
    assert_eq!(
        e.to_string(),
        "test.toml: targets: at least one target is required"
    );
}

#[test]
fn stores_over_tls_resolve_their_files_and_refuse_what_cannot_be_verified() {
    let with = |extra: &str| parse(&format!("{MINIMAL}\n{extra}"));
    let c = with(
        "[cluster]\nredis_url = \"rediss://redis.internal:6380\"\n\
         [cluster.tls]\nca_file = \"ca.pem\"\ncert_file = \"/abs/client.pem\"\nkey_file = \"client.key\"\n\
         [ledger]\nurl = \"postgres://sb@db:5432/usage?sslmode=require\"\n[ledger.tls]\nca_file = \"db.pem\"\n",
    )
    .unwrap();
    let tls = c.cluster.unwrap().tls.unwrap();
    assert_eq!(tls.ca_file.unwrap(), Path::new("/etc/sb/ca.pem"));
    assert_eq!(tls.cert_file.unwrap(), Path::new("/abs/client.pem"));
    assert_eq!(tls.key_file.unwrap(), Path::new("/etc/sb/client.key"));
    assert_eq!(
        c.ledger.tls.unwrap().ca_file.unwrap(),
        Path::new("/etc/sb/db.pem")
    );
    // TLS with the public roots needs no section.
    assert!(with("[cluster]\nredis_url = \"rediss://r:6380\"\n").is_ok());

    let refused = |extra: &str, path: &str, says: &str| {
        let e = with(extra).unwrap_err();
        assert_eq!(e.path, path, "{e}");
        assert!(e.message.contains(says), "{e}");
    };
    refused(
        "[cluster]\nredis_url = \"rediss://r:6380/#insecure\"\n",
        "cluster.redis_url",
        "cannot be turned off",
    );
    refused(
        "[cluster]\nredis_url = \"http://r:6380\"\n",
        "cluster.redis_url",
        "rediss://",
    );
    refused(
        "[cluster]\nredis_url = \"redis://r:6379\"\n[cluster.tls]\nca_file = \"ca.pem\"\n",
        "cluster.tls",
        "rediss://",
    );
    refused(
        "[cluster]\nredis_url = \"rediss://r:6380\"\n[cluster.tls]\ncert_file = \"c.pem\"\n",
        "cluster.tls.key_file",
        "is missing",
    );
    refused(
        "[ledger]\nurl = \"postgres://sb@db/usage?sslmode=verify-full\"\n",
        "ledger.url",
        "use `require`",
    );
    refused(
        "[ledger]\nurl = \"postgres://sb@db/usage\"\n[ledger.tls]\nca_file = \"ca.pem\"\n",
        "ledger.tls",
        "sslmode=require",
    );
}
