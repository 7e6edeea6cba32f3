//! Truncation of the strings a policy hands back.

/// Cuts `s` to at most `max` bytes, on a character boundary (never splitting a
/// character, so the result may be a few bytes shorter than `max`).
///
/// ```
/// let mut s = String::from("héllo");
/// signalbox_contract::truncate_at_char(&mut s, 2);
/// assert_eq!(s, "h");
/// ```
pub fn truncate_at_char(s: &mut String, max: usize) {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::truncate_at_char;

    #[test]
    fn cuts_on_character_boundaries() {
        let mut s = "日本語".to_owned();
        truncate_at_char(&mut s, 4);
        assert_eq!(s, "日");
        let mut s = "abc".to_owned();
        truncate_at_char(&mut s, 3);
        assert_eq!(s, "abc");
        truncate_at_char(&mut s, 0);
        assert_eq!(s, "");
    }
}
