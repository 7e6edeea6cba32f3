//! The decision log, browsable: the newest lines of a tenant, read from the end of the
//! JSONL file (the log is append-only, so the newest are last) and, when the live file
//! is shorter than the look-back, from the end of the rotated ones before it
//! (`<path>.1`, `<path>.2` …).

use crate::decision_log::generation;
use serde_json::Value;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

/// How far back from the end of the file the dashboard looks.
pub const TAIL_BYTES: u64 = 4 << 20;
/// Most decisions listed.
pub const MAX_LISTED: usize = 100;

/// The newest entries of `tenant` (newest first), at most `MAX_LISTED`, among the last
/// `TAIL_BYTES` of the log.
pub fn recent(path: &Path, tenant: &str) -> std::io::Result<Vec<Value>> {
    let tail = read_tail(path)?;
    Ok(tail
        .lines()
        .rev()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|entry| entry["tenant"] == tenant)
        .take(MAX_LISTED)
        .collect())
}

/// The entry of `request_id` for `tenant`, if it is among the last `TAIL_BYTES`.
pub fn find(path: &Path, tenant: &str, request_id: &str) -> std::io::Result<Option<Value>> {
    let tail = read_tail(path)?;
    Ok(tail
        .lines()
        .rev()
        // A cheap test first: most lines are not the one.
        .filter(|line| line.contains(request_id))
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|entry| entry["tenant"] == tenant && entry["request_id"] == request_id))
}

/// The last `TAIL_BYTES` of the log, oldest first, from the first whole line: the
/// live file's end and, while that is short, the ends of the rotated files (a file
/// starts and ends on a line boundary, so they join line by line). Nothing when the
/// log does not exist yet: it is created at the first decision.
fn read_tail(path: &Path) -> std::io::Result<String> {
    let mut parts = Vec::new();
    let mut budget = TAIL_BYTES;
    for n in 0.. {
        if budget == 0 {
            break;
        }
        let Some(part) = tail_of(&generation(path, n), budget)? else {
            // The live file is missing for a moment while it is rotated.
            if n == 0 {
                continue;
            }
            break;
        };
        budget = budget.saturating_sub(part.len() as u64);
        parts.push(part);
    }
    let mut text = String::new();
    for part in parts.iter().rev() {
        text.push_str(&String::from_utf8_lossy(part));
    }
    Ok(text)
}

/// The last `budget` bytes of one file, from its first whole line; `None` when it
/// does not exist.
fn tail_of(path: &Path, budget: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let len = file.metadata()?.len();
    let start = len.saturating_sub(budget);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::with_capacity((len - start) as usize);
    file.read_to_end(&mut bytes)?;
    if start > 0 {
        let from = bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(bytes.len(), |i| i + 1);
        bytes.drain(..from);
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_of_a_tenant_come_first_and_one_is_found_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let mut text = String::new();
        for (i, tenant) in ["acme", "globex", "acme"].iter().enumerate() {
            text += &format!("{{\"tenant\":\"{tenant}\",\"request_id\":\"r{i}\"}}\n");
        }
        std::fs::write(&path, text + "{broken\n").unwrap();
        let listed = recent(&path, "acme").unwrap();
        let ids: Vec<&str> = listed
            .iter()
            .map(|e| e["request_id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, ["r2", "r0"]);
        assert!(find(&path, "acme", "r1").unwrap().is_none());
        assert!(find(&path, "globex", "r1").unwrap().is_some());
        assert!(recent(&dir.path().join("none"), "acme").unwrap().is_empty());
    }

    #[test]
    fn a_short_live_file_is_continued_by_the_rotated_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        let line = |i: usize| format!("{{\"tenant\":\"acme\",\"request_id\":\"r{i}\"}}\n");
        std::fs::write(generation(&path, 2), line(0) + &line(1)).unwrap();
        std::fs::write(generation(&path, 1), line(2)).unwrap();
        std::fs::write(&path, line(3)).unwrap();
        let ids: Vec<String> = recent(&path, "acme")
            .unwrap()
            .iter()
            .map(|e| e["request_id"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(ids, ["r3", "r2", "r1", "r0"]);
        assert!(find(&path, "acme", "r0").unwrap().is_some());
    }
}
