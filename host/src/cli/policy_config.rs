//! The `--config` of every command that activates a policy (`policy check`, `policy
//! bench`, `policy push`, `replay`): one reading, so the same argument means the same
//! config everywhere.
//!
//! The argument is inline JSON when it starts with `{` (after spaces), a file when it
//! starts with `@` (`@config.json`), and otherwise a file path. An error says which of
//! those was tried, so a mistyped path is not reported as bad JSON nor the reverse.

use anyhow::{Context, bail};
use std::path::Path;

/// A policy's config as given on the command line.
#[derive(Debug, Clone, PartialEq)]
pub struct PolicyConfig {
    /// The JSON text, exactly as given (what the policy is activated with).
    pub text: String,
    /// The same, parsed.
    pub value: serde_json::Value,
}

impl PolicyConfig {
    /// `{}`: the config of a command given no `--config`.
    pub fn empty() -> Self {
        PolicyConfig {
            text: "{}".to_owned(),
            value: serde_json::json!({}),
        }
    }
}

/// Reads a `--config` argument (see the module doc); `None` is `{}`.
pub fn read(arg: Option<&str>) -> anyhow::Result<PolicyConfig> {
    let Some(arg) = arg else {
        return Ok(PolicyConfig::empty());
    };
    let (text, what) = if arg.trim_start().starts_with('{') {
        (arg.to_owned(), "inline JSON".to_owned())
    } else {
        let path = arg.strip_prefix('@').unwrap_or(arg);
        if path.is_empty() {
            bail!("--config `{arg}`: `@` must be followed by a file path");
        }
        let text = std::fs::read_to_string(Path::new(path)).with_context(|| {
            format!(
                "--config `{arg}`: tried it as a file path ({}), which cannot be read \
                 (inline JSON must start with `{{`)",
                Path::new(path).display()
            )
        })?;
        (text, format!("the file {path}"))
    };
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("--config: {what} is not valid JSON"))?;
    if !value.is_object() {
        bail!("--config: {what} is JSON but not an object (a policy config is `{{…}}`)");
    }
    Ok(PolicyConfig { text, value })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(arg: &str) -> String {
        format!("{:#}", read(Some(arg)).unwrap_err())
    }

    #[test]
    fn inline_json_a_path_and_an_at_path_all_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(&file, r#"{"a": 1}"#).unwrap();
        let path = file.to_str().unwrap();
        for arg in [
            r#" {"a": 1}"#.to_owned(),
            path.to_owned(),
            format!("@{path}"),
        ] {
            let config = read(Some(&arg)).unwrap();
            assert_eq!(config.value, serde_json::json!({"a": 1}), "{arg}");
        }
        assert_eq!(read(None).unwrap(), PolicyConfig::empty());
        // The text is kept as given: the policy is activated with exactly it.
        assert_eq!(read(Some(r#"{"a":  1}"#)).unwrap().text, r#"{"a":  1}"#);
    }

    #[test]
    fn each_error_says_what_was_tried() {
        let missing = message("no-such-config.json");
        assert!(
            missing.contains("tried it as a file path") && missing.contains("no-such-config"),
            "{missing}"
        );
        assert!(message("@").contains("followed by a file path"));
        let bad = message(r#"{"a": }"#);
        assert!(bad.contains("inline JSON is not valid JSON"), "{bad}");

        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.json");
        std::fs::write(&file, "[1, 2]").unwrap();
        let not_object = message(&format!("@{}", file.display()));
        assert!(
            not_object.contains(&format!("the file {}", file.display()))
                && not_object.contains("not an object"),
            "{not_object}"
        );
        std::fs::write(&file, "{oops").unwrap();
        let bad_file = message(file.to_str().unwrap());
        assert!(bad_file.contains("is not valid JSON"), "{bad_file}");
    }
}
