//! The config loader (`config::Config::parse`), fed config files.
//!
//! Properties: an error names this file and, when it has a line and column, they lie
//! inside the text (a syntax error always has them); no error shows a secret read
//! from the environment; a config that loads only has targets whose provider exists.

use super::CI_TIME;
use crate::config::{Config, EMBEDDED_DEFAULT, Location};
use arbitrary::Unstructured;
use std::path::Path;

const FILE: &str = "fuzz.toml";
const SECRET: &str = "sk-fuzz-secret-0123456789abcdef";

/// Real configs to mutate: the examples and the embedded default.
const EXAMPLES: &[&str] = &[
    include_str!("../../../examples/gateway.toml"),
    include_str!("../../../examples/local-llm.toml"),
    EMBEDDED_DEFAULT,
];

#[test]
fn config_file() {
    bolero::check!(name = "config_file")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_config(&String::from_utf8_lossy(bytes));
            check_config(&shaped(&mut Unstructured::new(bytes)));
        });
}

fn check_config(text: &str) {
    check_offsets(text);
    let env = |name: &str| (!name.contains("UNSET")).then(|| SECRET.to_owned());
    let error = match Config::parse(text, FILE, Path::new("/etc/signalbox"), &env) {
        Ok(config) => {
            for target in &config.targets {
                assert!(config.providers.iter().any(|p| p.name == target.provider));
            }
            return;
        }
        Err(error) => error,
    };
    let shown = error.to_string();
    assert_eq!(error.file, FILE);
    assert!(shown.starts_with(FILE), "{shown}");
    assert!(
        !error.path.is_empty() && !error.message.is_empty(),
        "{shown}"
    );
    assert!(!shown.contains(SECRET), "a secret in {shown}");
    let not_toml = toml::de::DeTable::parse(text).is_err();
    match error.location {
        Some(at) => {
            let lines: Vec<&str> = text.split('\n').collect();
            assert!(
                at.line >= 1 && at.line <= lines.len(),
                "{shown}: line outside"
            );
            let line = lines[at.line - 1];
            assert!(
                at.column >= 1 && at.column <= line.chars().count() + 1,
                "{shown}: column outside {line:?}"
            );
        }
        None => assert!(!not_toml, "a syntax error without a place: {shown}"),
    }
}

/// Byte offsets become lines and columns (in one place, `Location::of_offset`) as a
/// plain count says: lines after each `\n`, columns in characters, an offset inside a
/// character or past the end clamped.
fn check_offsets(text: &str) {
    for offset in [
        0,
        text.len() / 3,
        text.len() / 2,
        text.len(),
        text.len() + 1,
    ] {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line = before.split('\n').count();
        let column = before
            .split('\n')
            .next_back()
            .map_or(0, |l| l.chars().count())
            + 1;
        assert_eq!(
            Location::of_offset(text, offset),
            Location { line, column },
            "{offset}"
        );
    }
}

/// A real config with edits the input picks: lines dropped, repeated or moved, values
/// replaced by wrong ones, unknown keys and tables, a cut, a stray character.
fn shaped(u: &mut Unstructured<'_>) -> String {
    const VALUES: &[&str] = &[
        "-1",
        "0",
        "1e400",
        "99999999999999999999",
        "\"\"",
        "\"x\"",
        "[]",
        "{}",
        "true",
        "inf",
        "nan",
        "\"../../etc/passwd\"",
        "\"UNSET_VARIABLE\"",
        "\"sha256:zz\"",
        "\"127.0.0.1:0\"",
        "[\"a\", 1]",
        "\"\\u0000\"",
        "1979-05-27T07:32:00Z",
        "'''\n'''",
    ];
    const LINES: &[&str] = &[
        "[unknown]",
        "x = 1",
        "[[targets]]",
        "[[tenants]]",
        "[[providers]]",
        "[server]",
        "[server.tls]",
        "[admin]",
        "[aliases]",
        "id = \"dup\"",
        "model = ",
        "a.b.c = 1",
        "\"quoted key\" = 2",
        "[tenants.limits]",
    ];
    let base = u.choose(EXAMPLES).map_or(EMBEDDED_DEFAULT, |e| *e);
    let mut lines: Vec<String> = base.lines().map(str::to_owned).collect();
    for _ in 0..u.int_in_range(1..=4u8).unwrap_or(1) {
        if lines.is_empty() {
            break;
        }
        let i = u.int_in_range(0..=lines.len() - 1).unwrap_or(0);
        match u.int_in_range(0..=5u8).unwrap_or(0) {
            0 => {
                lines.remove(i);
            }
            1 => {
                let line = lines[i].clone();
                lines.insert(i, line);
            }
            2 => {
                let j = u.int_in_range(0..=lines.len() - 1).unwrap_or(0);
                lines.swap(i, j);
            }
            3 => {
                if let Some((key, _)) = lines[i].split_once('=') {
                    let value = u.choose(VALUES).map_or("0", |v| *v);
                    lines[i] = format!("{key}= {value}");
                }
            }
            4 => lines.insert(i, u.choose(LINES).map_or("x = 1", |l| *l).to_owned()),
            _ => {
                let at = u.int_in_range(0..=lines[i].len()).unwrap_or(0);
                let mut at = at.min(lines[i].len());
                while !lines[i].is_char_boundary(at) {
                    at -= 1;
                }
                let c: char = u.arbitrary().unwrap_or('\u{0}');
                lines[i].insert(at, c);
            }
        }
    }
    let mut text = lines.join("\n");
    if u.ratio(1, 8).unwrap_or(false) {
        let mut cut = u.int_in_range(0..=text.len()).unwrap_or(0).min(text.len());
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}
