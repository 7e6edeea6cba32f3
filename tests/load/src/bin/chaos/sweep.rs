//! The secrets sweep: every tenant key, the admin token and every provider key, and
//! every 12-character piece of each (after its `sb-` or `sk-` prefix), searched in
//! everything the run produced. One automaton holds every piece, so each byte is
//! read once however many secrets there are.

use aho_corasick::AhoCorasick;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

const PIECE: usize = 12;

pub struct Sweep {
    automaton: AhoCorasick,
    /// The secret each pattern is a piece of, by pattern index.
    owners: Vec<usize>,
    names: Vec<String>,
    /// What was found: where, and whose piece (never the piece itself).
    hits: Mutex<Vec<String>>,
    bytes: AtomicU64,
    places: AtomicU64,
}

impl Sweep {
    /// A sweep for `secrets` (name, value).
    pub fn new(secrets: &[(String, String)]) -> anyhow::Result<Sweep> {
        let mut patterns = Vec::new();
        let mut owners = Vec::new();
        for (i, (_, secret)) in secrets.iter().enumerate() {
            let body = secret
                .strip_prefix("sb-")
                .or_else(|| secret.strip_prefix("sk-"))
                .unwrap_or(secret);
            let pieces: Vec<&str> = if body.len() <= PIECE {
                vec![body]
            } else {
                (0..=body.len() - PIECE)
                    .map(|at| &body[at..at + PIECE])
                    .collect()
            };
            for piece in pieces {
                patterns.push(piece.to_owned());
                owners.push(i);
            }
        }
        Ok(Sweep {
            automaton: AhoCorasick::new(&patterns)?,
            owners,
            names: secrets.iter().map(|(name, _)| name.clone()).collect(),
            hits: Mutex::new(Vec::new()),
            bytes: AtomicU64::new(0),
            places: AtomicU64::new(0),
        })
    }

    /// Whether every secret's pieces are found (a sweep that cannot find anything
    /// proves nothing): each secret's middle piece, embedded in other text.
    pub fn finds_every_secret(&self, secrets: &[(String, String)]) -> bool {
        secrets.iter().enumerate().all(|(i, (_, secret))| {
            let at = secret.len() / 2 - PIECE / 2;
            let text = format!("…{}…", &secret[at..at + PIECE]);
            self.automaton
                .find(text.as_str())
                .is_some_and(|m| self.owners.get(m.pattern().as_usize()) == Some(&i))
        })
    }

    /// Pieces searched for.
    pub fn patterns(&self) -> usize {
        self.owners.len()
    }

    /// Secrets searched for.
    pub fn secrets(&self) -> usize {
        self.names.len()
    }

    /// Searches `text`, recording any hit under `what`.
    pub fn scan(&self, what: &str, text: &[u8]) {
        self.bytes.fetch_add(text.len() as u64, Relaxed);
        self.places.fetch_add(1, Relaxed);
        if let Some(m) = self.automaton.find(text) {
            self.hit(what, m.pattern().as_usize());
        }
    }

    /// Searches a file as a stream (log files can be large).
    pub fn scan_file(&self, what: &str, path: &Path) -> anyhow::Result<()> {
        let file = std::fs::File::open(path)?;
        self.bytes.fetch_add(file.metadata()?.len(), Relaxed);
        self.places.fetch_add(1, Relaxed);
        let reader = std::io::BufReader::with_capacity(1 << 20, file);
        if let Some(m) = self.automaton.stream_find_iter(reader).next() {
            self.hit(what, m?.pattern().as_usize());
        }
        Ok(())
    }

    /// Every file under `dir`, recursively.
    pub fn scan_tree(&self, what: &str, dir: &Path) -> anyhow::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            let label = format!("{what}/{}", path.file_name().unwrap_or_default().display());
            if path.is_dir() {
                self.scan_tree(&label, &path)?;
            } else {
                self.scan_file(&label, &path)?;
            }
        }
        Ok(())
    }

    fn hit(&self, what: &str, pattern: usize) {
        let owner = self.owners.get(pattern).copied().unwrap_or(0);
        let name = self.names.get(owner).map_or("?", String::as_str);
        if let Ok(mut hits) = self.hits.lock() {
            hits.push(format!("a piece of {name} in {what}"));
        }
    }

    /// Bytes searched and places (texts, files) searched.
    pub fn searched(&self) -> (u64, u64) {
        (self.bytes.load(Relaxed), self.places.load(Relaxed))
    }

    pub fn hits(&self) -> Vec<String> {
        self.hits.lock().map(|h| h.clone()).unwrap_or_default()
    }
}
