//! Request ids: a per-process random prefix and a sequence number, as
//! `req-<8 hex digits of prefix><at least 8 hex digits of sequence>`.
//!
//! The sequence makes an id cheap to index (the feedback window is a ring keyed by
//! it); the prefix keeps ids of different processes apart and makes a guessed id of
//! another process useless.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

const PREFIX_DIGITS: usize = 8;

fn prefix() -> u32 {
    use std::hash::{BuildHasher, RandomState};
    static PREFIX: OnceLock<u32> = OnceLock::new();
    *PREFIX.get_or_init(|| RandomState::new().hash_one(std::process::id()) as u32)
}

/// A new id, unique within this process.
pub fn next() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    format(SEQUENCE.fetch_add(1, Ordering::Relaxed))
}

/// The id of sequence number `seq` in this process.
pub fn format(seq: u64) -> String {
    format!("req-{:08x}{seq:08x}", prefix())
}

/// The process (its prefix) that made `id`, for any well-formed id: in a fleet, the
/// replica that decided the request.
pub fn origin(id: &str) -> Option<u32> {
    let rest = id.strip_prefix("req-")?;
    let (head, seq) = rest.split_at_checked(PREFIX_DIGITS)?;
    if !(8..=16).contains(&seq.len()) || !seq.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut head_bytes = [0u8; 4];
    hex::decode_to_slice(head, &mut head_bytes).ok()?;
    Some(u32::from_be_bytes(head_bytes))
}

/// This process's prefix (what [`origin`] returns for its ids).
pub fn this_origin() -> u32 {
    prefix()
}

/// The sequence number of an id this process made (`None` for any other string).
pub fn sequence(id: &str) -> Option<u64> {
    let rest = id.strip_prefix("req-")?;
    let (head, seq) = rest.split_at_checked(PREFIX_DIGITS)?;
    let mut head_bytes = [0u8; 4];
    hex::decode_to_slice(head, &mut head_bytes).ok()?;
    if u32::from_be_bytes(head_bytes) != prefix() || !(8..=16).contains(&seq.len()) {
        return None;
    }
    // `{:08x}` writes an odd number of digits for some sequences; hex decodes whole
    // bytes, so the digits are right-aligned in a zero-filled buffer first.
    let mut digits = [b'0'; 16];
    digits[16 - seq.len()..].copy_from_slice(seq.as_bytes());
    let mut bytes = [0u8; 8];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some(u64::from_be_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_sequence() {
        let a = next();
        let b = next();
        assert_ne!(a, b);
        assert_eq!(sequence(&format(0)), Some(0));
        assert_eq!(sequence(&format(u64::MAX)), Some(u64::MAX));
        // Nine digits: an odd count.
        assert_eq!(sequence(&format(0x1_2345_6789)), Some(0x1_2345_6789));
        assert!(sequence(&b).unwrap() > sequence(&a).unwrap());
    }

    #[test]
    fn ids_name_the_process_that_made_them() {
        assert_eq!(origin(&next()), Some(this_origin()));
        let other = format!("req-{:08x}0000000000000001", this_origin().wrapping_add(1));
        assert_eq!(origin(&other), Some(this_origin().wrapping_add(1)));
        for bad in ["", "req-", "req-zzzzzzzz00000001", "req-0000000100000zz1", "x"] {
            assert_eq!(origin(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn foreign_ids_have_no_sequence() {
        let other = format!("req-{:08x}00000001", prefix().wrapping_add(1));
        for id in [
            "",
            "req-",
            "req-1234",
            "abc-0000000000000001",
            "req-zzzzzzzz00000001",
            &other,
        ] {
            assert_eq!(sequence(id), None, "{id:?}");
        }
        let id = format(7);
        // `u64::from_str_radix` accepts a leading `+`; the hex crate does not.
        assert_eq!(sequence(&id.replace("00000007", "+0000007")), None);
        assert_eq!(sequence(&format!("{id}+")), None);
        let signed_prefix = format!("req-+{}", &id["req-".len() + 1..]);
        assert_eq!(sequence(&signed_prefix), None);
        assert_eq!(sequence(&format!("{id}00000000000")), None, "too long");
        assert_eq!(sequence(&id[..id.len() - 1]), None);
    }
}
