//! The counters of `host.state-add`: a value that is a JSON array of numbers, added to
//! element by element. The gateway's store and the SDK's native stand-in both apply
//! these functions, so a policy tested natively counts exactly as it will in the
//! gateway. (A fleet's Redis applies the same rule in its own script; the gateway's
//! tests check the two agree.)

/// The stored value is not a JSON array of finite numbers, a delta is not finite, or a
/// sum overflowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotNumeric;

/// `existing` plus `deltas`, element by element: an absent value counts as zeros, a
/// shorter array is extended with zeros, and elements beyond `deltas` stay as they are.
/// Returns the new counters and their encoding.
pub fn add_counters(
    existing: Option<&[u8]>,
    deltas: &[f64],
) -> Result<(Vec<f64>, Vec<u8>), NotNumeric> {
    if deltas.iter().any(|d| !d.is_finite()) {
        return Err(NotNumeric);
    }
    let mut values = match existing {
        Some(bytes) => parse_counters(bytes).ok_or(NotNumeric)?,
        None => Vec::new(),
    };
    if values.len() < deltas.len() {
        values.resize(deltas.len(), 0.0);
    }
    for (value, delta) in values.iter_mut().zip(deltas) {
        *value += delta;
        if !value.is_finite() {
            return Err(NotNumeric);
        }
    }
    let encoded = encode_counters(&values);
    Ok((values, encoded))
}

/// Reads a JSON array of finite numbers (`[1,2.5,-3e-2]`); `None` for anything else.
pub fn parse_counters(bytes: &[u8]) -> Option<Vec<f64>> {
    let text = std::str::from_utf8(bytes).ok()?.trim();
    let inner = text.strip_prefix('[')?.strip_suffix(']')?.trim();
    if inner.is_empty() {
        return Some(Vec::new());
    }
    inner
        .split(',')
        .map(|item| {
            let item = item.trim();
            // JSON's number characters only: `str::parse` would also take `inf`,
            // `NaN` and `+1`, which no JSON reader of the value would.
            let json_number = !item.is_empty()
                && !item.starts_with('+')
                && item
                    .bytes()
                    .all(|b| b.is_ascii_digit() || matches!(b, b'-' | b'+' | b'.' | b'e' | b'E'));
            let value: f64 = item.parse().ok().filter(|_| json_number)?;
            value.is_finite().then_some(value)
        })
        .collect()
}

/// Writes counters as a JSON array, each number in the shortest form that reads back
/// to the same `f64` (`[3.0,0.1,1e300]`).
pub fn encode_counters(values: &[f64]) -> Vec<u8> {
    let mut out = String::with_capacity(2 + values.len() * 8);
    out.push('[');
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        // `Debug` of a finite f64 is valid JSON and round-trips exactly.
        out.push_str(&format!("{v:?}"));
    }
    out.push(']');
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adds_element_by_element_extending_with_zeros() {
        let (v, bytes) = add_counters(None, &[1.0, 0.5]).unwrap();
        assert_eq!(v, [1.0, 0.5]);
        assert_eq!(bytes, b"[1.0,0.5]");
        let (v, _) = add_counters(Some(b"[3, 1.5]"), &[1.0, 0.25, 2.0]).unwrap();
        assert_eq!(v, [4.0, 1.75, 2.0]);
        let (v, _) = add_counters(Some(b"[3,1.5,7]"), &[1.0]).unwrap();
        assert_eq!(v, [4.0, 1.5, 7.0]);
        let (v, _) = add_counters(Some(b" [ ] "), &[]).unwrap();
        assert!(v.is_empty());
    }

    #[test]
    fn refuses_what_is_not_counters() {
        for bad in [
            &b"{\"a\":1}"[..],
            b"[1,\"x\"]",
            b"[1,,2]",
            b"[inf]",
            b"[NaN]",
            b"[+1]",
            b"3",
            b"\xff",
            b"[1e999]",
        ] {
            assert_eq!(add_counters(Some(bad), &[1.0]), Err(NotNumeric), "{bad:?}");
        }
        assert_eq!(add_counters(None, &[f64::NAN]), Err(NotNumeric));
        assert_eq!(add_counters(None, &[f64::INFINITY]), Err(NotNumeric));
        assert_eq!(
            add_counters(Some(b"[1.7e308]"), &[1.7e308]),
            Err(NotNumeric),
            "overflow"
        );
    }

    #[test]
    fn encoding_round_trips_exactly() {
        let values = [0.1, 1.0 / 3.0, 1e300, -2.5e-300, 0.0, 123456789.0];
        assert_eq!(
            parse_counters(&encode_counters(&values)).unwrap(),
            values.to_vec()
        );
    }
}
