//! Where in the config file something is: key paths, and lines and columns.
//!
//! Validation works on the plain serde structs, which have forgotten where each value
//! was written. So the file is also kept as toml's spanned tree ([`DeTable`]), and an
//! error found later is placed by walking that tree along its key path. Byte offsets
//! become lines and columns in one place, [`Location::of_offset`].

use serde::de::DeserializeOwned;
use std::fmt;
use std::ops::Range;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// A key path in the config file: keys joined by `.`, array positions in brackets,
/// counted from 0, e.g. `tenants[1].safe_route[0]`. A key that is not a bare TOML key
/// is quoted as TOML would, e.g. `aliases."gpt.fast"`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyPath(Vec<Segment>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Key(String),
    Index(usize),
    /// An environment variable standing in for a key: not in the file at all.
    Environment(String),
}

impl KeyPath {
    /// The document itself.
    pub fn root() -> KeyPath {
        KeyPath::default()
    }

    /// A path of bare keys written with dots, e.g. `"admin.tls"`.
    pub fn dotted(keys: &str) -> KeyPath {
        keys.split('.')
            .fold(KeyPath::root(), |path, key| path.key(key))
    }

    /// An environment variable that took the place of a key.
    pub fn environment(name: &str) -> KeyPath {
        KeyPath(vec![Segment::Environment(name.to_owned())])
    }

    /// This path, then `key`.
    pub fn key(mut self, key: &str) -> KeyPath {
        self.0.push(Segment::Key(key.to_owned()));
        self
    }

    /// This path, then position `index` of the array it names.
    pub fn index(mut self, index: usize) -> KeyPath {
        self.0.push(Segment::Index(index));
        self
    }

    /// The path serde was at when deserialising failed.
    pub fn from_serde(path: &serde_path_to_error::Path) -> KeyPath {
        use serde_path_to_error::Segment as S;
        path.iter()
            .fold(KeyPath::root(), |at, segment| match segment {
                S::Seq { index } => at.index(*index),
                S::Map { key } | S::Enum { variant: key } => at.key(key),
                // Only untagged enums and the like lose track; the span still places it.
                S::Unknown => at,
            })
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(document)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Index(index) => write!(f, "[{index}]")?,
                Segment::Key(key) => {
                    if i > 0 {
                        f.write_str(".")?;
                    }
                    if is_bare_key(key) {
                        f.write_str(key)?;
                    } else {
                        // Rust's string escapes agree with TOML's basic strings for
                        // everything a key is likely to hold.
                        write!(f, "{key:?}")?;
                    }
                }
                Segment::Environment(name) => write!(f, "{name} (environment)")?,
            }
        }
        Ok(())
    }
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A position in the file, both counted from 1. Columns count characters, not bytes,
/// as editors do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The line.
    pub line: usize,
    /// The character within the line.
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` in `text`. An offset past the end is the
    /// end; one inside a character is that character.
    pub fn of_offset(text: &str, offset: usize) -> Location {
        let mut end = offset.min(text.len());
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &text[..end];
        let line_start = before.rfind('\n').map_or(0, |newline| newline + 1);
        Location {
            line: before.matches('\n').count() + 1,
            column: before[line_start..].chars().count() + 1,
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// The config text with toml's spanned tree of it.
pub struct Document<'a> {
    text: &'a str,
    root: Spanned<DeTable<'a>>,
}

impl<'a> Document<'a> {
    /// Parses `text` as TOML (syntax only: no shape is checked yet).
    pub fn parse(text: &'a str) -> Result<Document<'a>, toml::de::Error> {
        Ok(Document {
            text,
            root: DeTable::parse(text)?,
        })
    }

    /// Deserialises the document into `T`, remembering the key path serde was at when
    /// it failed.
    pub fn deserialize<T: DeserializeOwned>(
        &self,
    ) -> Result<T, serde_path_to_error::Error<toml::de::Error>> {
        let deserializer = toml::de::Deserializer::from(self.root.clone());
        serde_path_to_error::deserialize(deserializer)
    }

    /// Where `span` starts.
    pub fn location_of(&self, span: &Range<usize>) -> Location {
        Location::of_offset(self.text, span.start)
    }

    /// Where the value at `path` is written: the value for a key, the `[header]` for a
    /// table, the element for an array position. When the path goes further than the
    /// file (a required key left out), the nearest written ancestor; `None` when not
    /// even the first key is there.
    pub fn locate(&self, path: &KeyPath) -> Option<Location> {
        let mut value: Option<&Spanned<DeValue<'a>>> = None;
        for segment in &path.0 {
            let next = match (segment, value.map(|v| v.get_ref())) {
                (Segment::Key(key), None) => entry(self.root.get_ref(), key),
                (Segment::Key(key), Some(DeValue::Table(table))) => entry(table, key),
                (Segment::Index(i), Some(DeValue::Array(array))) => array.get(*i),
                _ => None,
            };
            match next {
                Some(next) => value = Some(next),
                None => break,
            }
        }
        value.map(|v| self.location_of(&v.span()))
    }
}

fn entry<'t, 'a>(table: &'t DeTable<'a>, key: &str) -> Option<&'t Spanned<DeValue<'a>>> {
    table
        .iter()
        .find(|(k, _)| &**k.get_ref() == key)
        .map(|(_, v)| v)
}

/// The key path of the last key, value or header that starts at or before `offset`:
/// what was being written where a syntax error stopped the parser. `root` is the tree
/// toml recovered around the error.
pub fn path_before(root: &DeTable<'_>, offset: usize) -> KeyPath {
    let mut best: Option<(usize, KeyPath)> = None;
    visit(root, &KeyPath::root(), offset, &mut best);
    best.map(|(_, path)| path).unwrap_or_default()
}

fn visit(table: &DeTable<'_>, at: &KeyPath, offset: usize, best: &mut Option<(usize, KeyPath)>) {
    for (key, value) in table.iter() {
        let here = at.clone().key(key.get_ref());
        consider(key.span().start, &here, offset, best);
        visit_value(value, &here, offset, best);
    }
}

fn visit_value(
    value: &Spanned<DeValue<'_>>,
    at: &KeyPath,
    offset: usize,
    best: &mut Option<(usize, KeyPath)>,
) {
    consider(value.span().start, at, offset, best);
    match value.get_ref() {
        DeValue::Table(table) => visit(table, at, offset, best),
        DeValue::Array(array) => {
            for (i, item) in array.iter().enumerate() {
                visit_value(item, &at.clone().index(i), offset, best);
            }
        }
        _ => {}
    }
}

/// Later starts win; at the same start the deeper path (visited later) wins.
fn consider(start: usize, path: &KeyPath, offset: usize, best: &mut Option<(usize, KeyPath)>) {
    if start <= offset && best.as_ref().is_none_or(|(found, _)| start >= *found) {
        *best = Some((start, path.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Location {
        Location { line, column }
    }

    #[test]
    fn offsets_become_lines_and_columns() {
        let text = "ab\ncd\n\nlast";
        assert_eq!(Location::of_offset(text, 0), at(1, 1));
        // The end of a line (its newline) is still on that line.
        assert_eq!(Location::of_offset(text, 2), at(1, 3));
        // The first character after a newline starts the next line.
        assert_eq!(Location::of_offset(text, 3), at(2, 1));
        assert_eq!(Location::of_offset(text, 4), at(2, 2));
        // An empty line.
        assert_eq!(Location::of_offset(text, 6), at(3, 1));
        // The last line, without a trailing newline, to its end and past it.
        assert_eq!(Location::of_offset(text, 7), at(4, 1));
        assert_eq!(Location::of_offset(text, 10), at(4, 4));
        assert_eq!(Location::of_offset(text, 11), at(4, 5));
        assert_eq!(Location::of_offset(text, 99), at(4, 5));
        assert_eq!(Location::of_offset("", 0), at(1, 1));
    }

    #[test]
    fn columns_count_characters_and_crlf_ends_a_line() {
        let text = "é = 1\r\nx";
        assert_eq!(Location::of_offset(text, 2), at(1, 2));
        // Inside the two bytes of `é`: that character.
        assert_eq!(Location::of_offset(text, 1), at(1, 1));
        assert_eq!(Location::of_offset(text, 8), at(2, 1));
    }

    #[test]
    fn key_paths_read_like_the_file() {
        let path = KeyPath::dotted("tenants")
            .index(1)
            .key("safe_route")
            .index(0);
        assert_eq!(path.to_string(), "tenants[1].safe_route[0]");
        assert_eq!(
            KeyPath::dotted("aliases").key("gpt.fast").to_string(),
            "aliases.\"gpt.fast\""
        );
        assert_eq!(KeyPath::root().to_string(), "(document)");
        assert_eq!(
            KeyPath::environment("OTEL_EXPORTER_OTLP_ENDPOINT").to_string(),
            "OTEL_EXPORTER_OTLP_ENDPOINT (environment)"
        );
    }

    const TEXT: &str = "[server]\nlisten = \"x\"\n\n[[targets]]\nid = \"a\"\n\n[[targets]]\nid = \"b\"\ntags = [\"p\", \"q\"]\n";

    #[test]
    fn paths_are_found_in_the_file() {
        let doc = Document::parse(TEXT).unwrap();
        let find = |path: KeyPath| doc.locate(&path);
        assert_eq!(find(KeyPath::dotted("server.listen")), Some(at(2, 10)));
        assert_eq!(find(KeyPath::dotted("server")), Some(at(1, 1)));
        assert_eq!(
            find(KeyPath::dotted("targets").index(1).key("tags").index(1)),
            Some(at(9, 14))
        );
        assert_eq!(find(KeyPath::dotted("targets").index(1)), Some(at(7, 1)));
        // A key left out: its table's header.
        assert_eq!(
            find(KeyPath::dotted("targets").index(0).key("provider")),
            Some(at(4, 1))
        );
        assert_eq!(find(KeyPath::dotted("tenants")), None);
    }

    #[test]
    fn a_syntax_error_is_placed_after_the_last_key_read() {
        let text = "[server]\nlisten = \"x\"\n[[targets]]\nid = \"a\"\nmodel = \n";
        let (root, errors) = DeTable::parse_recoverable(text);
        let offset = errors[0].span().unwrap().start;
        assert_eq!(
            path_before(root.get_ref(), offset).to_string(),
            "targets[0].model"
        );
        assert_eq!(path_before(root.get_ref(), 0).to_string(), "server");
    }
}
