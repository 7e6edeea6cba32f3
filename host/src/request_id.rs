//! Request ids: a random prefix per gateway and a sequence number, as
//! `req-<8 hex digits of prefix><at least 8 hex digits of sequence>`.
//!
//! The sequence makes an id cheap to index (the feedback window is a ring keyed by
//! it); the prefix keeps ids of different gateways apart (two processes during a
//! hand-over, the replicas of a fleet, which route feedback by it) and makes a
//! guessed id of another gateway useless.

use std::sync::atomic::{AtomicU64, Ordering};

const PREFIX_DIGITS: usize = 8;

/// The ids one gateway hands out.
#[derive(Debug)]
pub struct RequestIds {
    prefix: u32,
    sequence: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        RequestIds::new()
    }
}

impl RequestIds {
    /// A new id space with a random prefix.
    pub fn new() -> Self {
        use std::hash::{BuildHasher, RandomState};
        // Each `RandomState` has its own keys, so two id spaces of one process differ.
        let prefix = RandomState::new().hash_one(std::process::id()) as u32;
        RequestIds {
            prefix,
            sequence: AtomicU64::new(0),
        }
    }

    /// A new id, unique within this id space.
    pub fn next(&self) -> String {
        self.format(self.sequence.fetch_add(1, Ordering::Relaxed))
    }

    /// The id of sequence number `seq`.
    pub fn format(&self, seq: u64) -> String {
        format!("req-{:08x}{seq:08x}", self.prefix)
    }

    /// This id space's prefix (what [`origin`] returns for its ids).
    pub fn origin(&self) -> u32 {
        self.prefix
    }

    /// The sequence number of an id of this space (`None` for any other string).
    pub fn sequence(&self, id: &str) -> Option<u64> {
        let (origin, seq) = parse(id)?;
        (origin == self.prefix).then_some(seq)
    }
}

/// The gateway (its prefix) that made `id`, for any well-formed id: in a fleet, the
/// replica that decided the request.
pub fn origin(id: &str) -> Option<u32> {
    parse(id).map(|(origin, _)| origin)
}

/// The prefix and the sequence number of a well-formed id.
fn parse(id: &str) -> Option<(u32, u64)> {
    let rest = id.strip_prefix("req-")?;
    let (head, seq) = rest.split_at_checked(PREFIX_DIGITS)?;
    if !(8..=16).contains(&seq.len()) {
        return None;
    }
    let mut head_bytes = [0u8; 4];
    hex::decode_to_slice(head, &mut head_bytes).ok()?;
    // `{:08x}` writes an odd number of digits for some sequences; hex decodes whole
    // bytes, so the digits are right-aligned in a zero-filled buffer first.
    let mut digits = [b'0'; 16];
    digits[16 - seq.len()..].copy_from_slice(seq.as_bytes());
    let mut bytes = [0u8; 8];
    hex::decode_to_slice(digits, &mut bytes).ok()?;
    Some((u32::from_be_bytes(head_bytes), u64::from_be_bytes(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_carry_their_sequence() {
        let ids = RequestIds::new();
        let a = ids.next();
        let b = ids.next();
        assert_ne!(a, b);
        assert_eq!(ids.sequence(&ids.format(0)), Some(0));
        assert_eq!(ids.sequence(&ids.format(u64::MAX)), Some(u64::MAX));
        // Nine digits: an odd count.
        assert_eq!(
            ids.sequence(&ids.format(0x1_2345_6789)),
            Some(0x1_2345_6789)
        );
        assert!(ids.sequence(&b).unwrap() > ids.sequence(&a).unwrap());
    }

    #[test]
    fn ids_name_the_gateway_that_made_them() {
        let (ids, others) = (RequestIds::new(), RequestIds::new());
        assert_ne!(
            ids.origin(),
            others.origin(),
            "two id spaces of one process"
        );
        assert_eq!(origin(&ids.next()), Some(ids.origin()));
        assert_eq!(origin(&others.next()), Some(others.origin()));
        assert_eq!(ids.sequence(&others.next()), None);
        for bad in [
            "",
            "req-",
            "req-zzzzzzzz00000001",
            "req-0000000100000zz1",
            "x",
        ] {
            assert_eq!(origin(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn foreign_ids_have_no_sequence() {
        let ids = RequestIds::new();
        let other = format!("req-{:08x}00000001", ids.origin().wrapping_add(1));
        for id in [
            "",
            "req-",
            "req-1234",
            "abc-0000000000000001",
            "req-zzzzzzzz00000001",
            &other,
        ] {
            assert_eq!(ids.sequence(id), None, "{id:?}");
        }
        let id = ids.format(7);
        // `u64::from_str_radix` accepts a leading `+`; the hex crate does not.
        assert_eq!(ids.sequence(&id.replace("00000007", "+0000007")), None);
        assert_eq!(ids.sequence(&format!("{id}+")), None);
        let signed_prefix = format!("req-+{}", &id["req-".len() + 1..]);
        assert_eq!(ids.sequence(&signed_prefix), None);
        assert_eq!(ids.sequence(&format!("{id}00000000000")), None, "too long");
        assert_eq!(ids.sequence(&id[..id.len() - 1]), None);
    }
}
