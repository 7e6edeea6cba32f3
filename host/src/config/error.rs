//! Config errors: the file, the key path, the line and column, and what is wrong.

use super::location::{Document, KeyPath, Location, path_before};
use std::fmt;

/// A configuration error: where, and what. Shown as
/// `gateway.toml:12:12: targets[2].provider: no provider named "opnai"`, or without
/// the line and column when the problem is not in the file (a key left out of a table
/// that is not written either, an environment variable).
#[derive(Debug, Clone)]
pub struct ConfigError {
    /// The config file (or the embedded default).
    pub file: String,
    /// The key path, e.g. `targets[2].provider` (see [`KeyPath`] for the notation).
    pub path: String,
    /// Where in the file the problem is (1-based line and column), when it is in it.
    pub location: Option<Location>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(at) => write!(f, "{}:{at}: {}: {}", self.file, self.path, self.message),
            None => write!(f, "{}: {}: {}", self.file, self.path, self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// A value that validation refused, before it is placed in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// Which value.
    pub path: KeyPath,
    /// What is wrong with it.
    pub message: String,
}

impl Invalid {
    /// `message` about the value at `path`.
    pub fn new(path: KeyPath, message: impl Into<String>) -> Invalid {
        Invalid {
            path,
            message: message.into(),
        }
    }
}

impl ConfigError {
    /// The file cannot be read at all.
    pub(super) fn unreadable(file: &str, error: &std::io::Error) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            path: "(file)".into(),
            location: None,
            message: format!("cannot read: {error}"),
        }
    }

    /// `text` is not TOML. The key path is the last one the parser got through.
    pub(super) fn syntax(file: &str, text: &str, error: &toml::de::Error) -> ConfigError {
        let (root, _) = toml::de::DeTable::parse_recoverable(text);
        let (path, location) = match error.span() {
            Some(span) => (
                path_before(root.get_ref(), span.start),
                Some(Location::of_offset(text, span.start)),
            ),
            None => (KeyPath::root(), None),
        };
        ConfigError {
            file: file.to_owned(),
            path: path.to_string(),
            location,
            message: error.message().to_owned(),
        }
    }

    /// The document is TOML but not of the config's shape: an unknown key, a wrong
    /// type, a required key left out.
    pub(super) fn shape(
        file: &str,
        document: &Document<'_>,
        error: &serde_path_to_error::Error<toml::de::Error>,
    ) -> ConfigError {
        let path = KeyPath::from_serde(error.path());
        let location = match error.inner().span() {
            Some(span) => Some(document.location_of(&span)),
            None => document.locate(&path),
        };
        ConfigError {
            file: file.to_owned(),
            path: path.to_string(),
            location,
            message: error.inner().message().to_owned(),
        }
    }

    /// Validation refused a value of `document`.
    pub(super) fn invalid(file: &str, document: &Document<'_>, invalid: Invalid) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            location: document.locate(&invalid.path),
            path: invalid.path.to_string(),
            message: invalid.message,
        }
    }

    /// A value refused after the file was read, e.g. one from the environment.
    pub(super) fn elsewhere(file: &str, invalid: Invalid) -> ConfigError {
        ConfigError {
            file: file.to_owned(),
            path: invalid.path.to_string(),
            location: None,
            message: invalid.message,
        }
    }
}
