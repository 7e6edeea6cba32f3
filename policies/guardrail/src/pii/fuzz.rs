//! The fuzz target of the personal-data scanner: message text is whatever a client
//! sends. A bolero test, like the gateway's (`host/src/fuzz/`; docs/reliability.md,
//! "Fuzzing"): corpus in `__fuzz__/pii_scan/corpus/`, then random inputs.
//!
//! Properties: a scan finds only kinds it was asked for, and enabling more kinds
//! never loses a find; white space put before the text (which moves every byte
//! against the eight-byte fast path) changes nothing; the fast path flags exactly
//! the first trigger byte of every word; personal data of each kind, set on a line of
//! its own anywhere in any text, is always found.

use super::tests::{Rng, card_number, grouped, iban};
use super::*;
use std::time::Duration;

/// How long random inputs are tried in an ordinary test run;
/// `BOLERO_RANDOM_TEST_TIME_MS` takes precedence.
const CI_TIME: Duration = Duration::from_secs(2);

#[test]
fn pii_scan() {
    bolero::check!(name = "pii_scan")
        .with_test_time(CI_TIME)
        .for_each(|bytes: &[u8]| {
            check_scan(bytes);
            // The same bytes over an alphabet of the characters detectors care about.
            const ALPHABET: &[u8] = b"0123456789 -()+@.:#=\"'[<*abeDEZ\n\t,/";
            let dense: Vec<u8> = bytes
                .iter()
                .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()])
                .collect();
            check_scan(&dense);
            check_fast_path(bytes);
            check_injected(bytes, &dense);
        });
}

fn all() -> Detect {
    Detect::of(&PiiKind::ALL)
}

fn check_scan(text: &[u8]) {
    let found = all().scan(text);
    let mut any_single = false;
    for kind in PiiKind::ALL {
        if let Some(k) = Detect::of(&[kind]).scan(text) {
            assert_eq!(k, kind, "found a kind not asked for");
            any_single = true;
        }
    }
    assert!(found.is_some() || !any_single, "more kinds found less");
    assert_eq!(Detect::of(&[]).scan(text), None);
    for pad in 1..=8 {
        let padded = [&b"        "[..pad], text].concat();
        assert_eq!(
            all().scan(&padded),
            found,
            "{pad} spaces before changed the answer"
        );
    }
}

fn check_fast_path(bytes: &[u8]) {
    let is_trigger = |b: u8| b.is_ascii_digit() || matches!(b, b'@' | b'+' | b'(');
    for word in bytes.windows(8) {
        let word: [u8; 8] = word.try_into().unwrap();
        let mask = maybe_triggers(u64::from_le_bytes(word));
        match word.iter().position(|&b| is_trigger(b)) {
            None => assert_eq!(mask, 0, "{word:?}"),
            Some(first) => assert_eq!(mask.trailing_zeros() / 8, first as u32, "{word:?}"),
        }
    }
}

/// Personal data the input picks, on a line of its own at a place the input picks.
fn check_injected(bytes: &[u8], dense: &[u8]) {
    let seed = bytes
        .iter()
        .take(8)
        .fold(0u64, |s, &b| s.rotate_left(8) ^ u64::from(b));
    let mut rng = Rng::new(seed);
    let kind = PiiKind::ALL[rng.below(4) as usize];
    let pii = match kind {
        PiiKind::Card => {
            let len = 13 + rng.below(7) as usize;
            let n = card_number(&mut rng, len);
            grouped(&mut rng, &n)
        }
        PiiKind::Iban => {
            let country = ["DE", "FR", "GB", "NL"][rng.below(4) as usize];
            let bban_len = 11 + rng.below(20) as usize;
            let n = iban(&mut rng, country, bban_len);
            if rng.below(2) == 0 {
                n
            } else {
                grouped(&mut rng, &n).replace('-', " ")
            }
        }
        PiiKind::Email => format!("u{}.x@mail{}.example.org", rng.below(1000), rng.below(9)),
        // `+`, then 8 to 15 digits in all.
        PiiKind::Phone => {
            let (country, len) = (1 + rng.below(9), 7 + rng.below(8) as usize);
            format!("+{country} {}", rng.digits(len))
        }
    };
    for text in [bytes, dense] {
        let at = if text.is_empty() {
            0
        } else {
            rng.below(text.len() as u64 + 1) as usize
        };
        let injected = [&text[..at], b"\n", pii.as_bytes(), b"\n", &text[at..]].concat();
        assert_eq!(
            Detect::of(&[kind]).scan(&injected),
            Some(kind),
            "{pii} missed in {:?}",
            String::from_utf8_lossy(&injected)
        );
    }
}
