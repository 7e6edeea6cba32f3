//! Personal data in message text: email addresses, phone numbers, payment card
//! numbers (Luhn-checked) and IBANs (mod-97-checked).
//!
//! One pass over the bytes, no regular expressions and no allocation: four small
//! state machines read each byte side by side and the scan stops at the first find.
//! The detectors lean towards finding: a false find only narrows the choice to
//! approved targets, a miss sends personal data where it must not go.
//!
//! What counts:
//! - **email**: `local@domain.tld`, the local part of `A-Z a-z 0-9 . _ % + -`, a domain
//!   of at least two labels whose last one is two letters or more.
//! - **card**: 13 to 19 digits passing the Luhn check, optionally grouped by single
//!   spaces or dashes; a card number inside a longer run of digit groups (a reference
//!   before it, an expiry date after it) is found too.
//! - **phone**: `+` and 8 to 15 digits (E.164; digit groups read after them do not
//!   hide them), or 10 to 12 digits grouped by spaces,
//!   dashes or parentheses whose last group has at least three digits (so ISO dates
//!   and times are not phones). Dots do not group phone digits (IP addresses, decimals).
//! - **iban**: two letters, two digits, then letters and digits, 15 to 34 in all,
//!   optionally in groups of four separated by single spaces, passing the ISO 7064
//!   mod-97 check.
//!
//! Digit runs must start at a boundary (after a space, punctuation that opens or
//! labels a value, or the start of the text), so numbers glued to words or decimals
//! (`v2`, `3.14159…`) are not taken apart; IBANs must start after any byte that is not
//! a letter or digit.

use serde::Deserialize;

/// A kind of personal data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PiiKind {
    /// An email address.
    Email,
    /// A phone number.
    Phone,
    /// A payment card number.
    Card,
    /// An international bank account number.
    Iban,
}

impl PiiKind {
    /// Every kind, in config order.
    pub const ALL: [PiiKind; 4] = [PiiKind::Email, PiiKind::Phone, PiiKind::Card, PiiKind::Iban];

    /// The config name (`email`, `phone`, `card`, `iban`).
    pub fn name(self) -> &'static str {
        match self {
            PiiKind::Email => "email",
            PiiKind::Phone => "phone",
            PiiKind::Card => "card",
            PiiKind::Iban => "iban",
        }
    }

    /// What to call it in a message to a client.
    pub fn describe(self) -> &'static str {
        match self {
            PiiKind::Email => "an email address",
            PiiKind::Phone => "a phone number",
            PiiKind::Card => "a payment card number",
            PiiKind::Iban => "an IBAN",
        }
    }
}

/// Which kinds to look for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Detect {
    email: bool,
    phone: bool,
    card: bool,
    iban: bool,
}

impl Detect {
    /// The kinds listed (repeats are harmless).
    pub fn of(kinds: &[PiiKind]) -> Self {
        let mut d = Detect::default();
        for k in kinds {
            match k {
                PiiKind::Email => d.email = true,
                PiiKind::Phone => d.phone = true,
                PiiKind::Card => d.card = true,
                PiiKind::Iban => d.iban = true,
            }
        }
        d
    }

    /// Whether any kind is enabled.
    pub fn any(&self) -> bool {
        self.email || self.phone || self.card || self.iban
    }

    /// The first personal data found in `text`, if any.
    pub fn scan(&self, text: &[u8]) -> Option<PiiKind> {
        if !self.any() {
            return None;
        }
        let mut email = Email::default();
        let mut digits = DigitRun::default();
        let mut iban = Iban::default();
        let mut prev: u8 = b' ';
        for &b in text {
            if self.email && email.step(b) {
                return Some(PiiKind::Email);
            }
            if self.card || self.phone {
                let found = digits.step(b, prev);
                if let Some(kind) = self.keep(found) {
                    return Some(kind);
                }
            }
            if self.iban && iban.step(b) {
                return Some(PiiKind::Iban);
            }
            prev = b;
        }
        if self.email && email.finish() {
            return Some(PiiKind::Email);
        }
        if self.card || self.phone {
            let found = digits.finish();
            if let Some(kind) = self.keep(found) {
                return Some(kind);
            }
        }
        if self.iban && iban.finish() {
            return Some(PiiKind::Iban);
        }
        None
    }

    fn keep(&self, found: Found) -> Option<PiiKind> {
        if self.card && found.card {
            Some(PiiKind::Card)
        } else if self.phone && found.phone {
            Some(PiiKind::Phone)
        } else {
            None
        }
    }
}

/// Bytes after which a number or an IBAN may start.
fn is_boundary(prev: u8) -> bool {
    prev.is_ascii_whitespace()
        || matches!(
            prev,
            b'(' | b'[' | b'{' | b'<' | b'"' | b'\'' | b':' | b';' | b'=' | b'#' | b'>' | b'*'
        )
}

// ---------------------------------------------------------------------------------
// Email

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

#[derive(Debug, Default)]
struct Email {
    /// Length of the run of local-part bytes just read.
    local: u32,
    /// Inside a domain, after an `@`.
    in_domain: bool,
    dots: u32,
    label_len: u32,
    label_alpha: bool,
    /// Whether the last finished label could end a domain (two letters or more).
    last_label_tld: bool,
}

impl Email {
    fn step(&mut self, b: u8) -> bool {
        if self.in_domain {
            if b.is_ascii_alphanumeric() || b == b'-' {
                if self.label_len == 0 {
                    self.label_alpha = true;
                }
                self.label_len += 1;
                self.label_alpha &= b.is_ascii_alphabetic();
                return false;
            }
            if b == b'.' && self.label_len > 0 {
                self.last_label_tld = self.label_alpha && self.label_len >= 2;
                self.dots += 1;
                self.label_len = 0;
                return false;
            }
            if self.finish() {
                return true;
            }
            self.in_domain = false;
        }
        if b == b'@' {
            if self.local > 0 {
                *self = Email {
                    in_domain: true,
                    ..Email::default()
                };
            } else {
                self.local = 0;
            }
            return false;
        }
        self.local = if is_local(b) { self.local + 1 } else { 0 };
        false
    }

    /// Whether the domain just read completes an address.
    fn finish(&self) -> bool {
        if !self.in_domain {
            return false;
        }
        if self.label_len > 0 {
            self.dots >= 1 && self.label_alpha && self.label_len >= 2
        } else {
            // Ended on a dot ("… at a@b.com."): the label before it counts.
            self.dots >= 2 && self.last_label_tld
        }
    }
}

// ---------------------------------------------------------------------------------
// Digit runs: card and phone numbers

/// Digits of a run kept for the Luhn check (the longest card plus a margin for
/// digit groups read before it).
const DIGIT_BUFFER: usize = 40;

#[derive(Debug, Default, Clone, Copy)]
struct Found {
    card: bool,
    phone: bool,
}

#[derive(Debug)]
struct DigitRun {
    active: bool,
    /// All digits of the run, even those shifted out of `buf`.
    count: u32,
    buf: [u8; DIGIT_BUFFER],
    len: usize,
    /// Where each digit group starts in `buf`.
    group_starts: [u8; DIGIT_BUFFER],
    groups: usize,
    /// Digits of the current group.
    group_len: u32,
    /// Separator bytes read since the last digit.
    pending: u32,
    /// A `(` or `)` is among those separators.
    pending_paren: bool,
    plus: bool,
    separated: bool,
    /// `+` or `(` read at a boundary, waiting for the first digit.
    opening: bool,
}

impl Default for DigitRun {
    fn default() -> Self {
        DigitRun {
            active: false,
            count: 0,
            buf: [0; DIGIT_BUFFER],
            len: 0,
            group_starts: [0; DIGIT_BUFFER],
            groups: 0,
            group_len: 0,
            pending: 0,
            pending_paren: false,
            plus: false,
            separated: false,
            opening: false,
        }
    }
}

impl DigitRun {
    fn step(&mut self, b: u8, prev: u8) -> Found {
        match b {
            b'0'..=b'9' => {
                if !self.active {
                    if !(self.opening || is_boundary(prev)) {
                        // Glued to a word or a number with a dot ("v2", "3.14159…"):
                        // wait for the next boundary.
                        self.opening = false;
                        return Found::default();
                    }
                    let plus = self.opening && prev == b'+';
                    *self = DigitRun {
                        active: true,
                        plus,
                        ..DigitRun::default()
                    };
                }
                if self.pending > 0 || self.groups == 0 {
                    if self.pending > 0 {
                        self.separated = true;
                    }
                    self.start_group();
                }
                self.pending = 0;
                self.pending_paren = false;
                self.push(b - b'0');
                Found::default()
            }
            b' ' | b'-' | b'(' | b')' if self.active => {
                // A boundary between groups: a card, or a phone number that started
                // with `+`, may end here.
                let found = if self.pending == 0 {
                    Found {
                        card: self.card_ends_here(),
                        phone: self.plus && (8..=15).contains(&self.count),
                    }
                } else {
                    Found::default()
                };
                self.pending += 1;
                self.pending_paren |= matches!(b, b'(' | b')');
                // One separator, or two when one is a parenthesis: "(555) 123".
                if self.pending > 2 || (self.pending == 2 && !self.pending_paren) {
                    let end = self.end();
                    return Found {
                        card: found.card || end.card,
                        phone: found.phone || end.phone,
                    };
                }
                found
            }
            b'+' | b'(' if !self.active => {
                self.opening = is_boundary(prev) || (b == b'(' && prev == b'+');
                Found::default()
            }
            _ => {
                let found = if self.active {
                    self.end()
                } else {
                    Found::default()
                };
                // A `+` right after a run ends it and may open the next one.
                self.opening = b == b'+' && is_boundary(prev);
                found
            }
        }
    }

    fn finish(&mut self) -> Found {
        if self.active {
            self.end()
        } else {
            Found::default()
        }
    }

    fn start_group(&mut self) {
        if self.groups == DIGIT_BUFFER {
            return;
        }
        self.group_starts[self.groups] = self.len as u8;
        self.groups += 1;
        self.group_len = 0;
    }

    fn push(&mut self, digit: u8) {
        if self.len == DIGIT_BUFFER {
            // Keep the newest half; card numbers are at most 19 digits.
            let keep = DIGIT_BUFFER / 2;
            self.buf.copy_within(DIGIT_BUFFER - keep.., 0);
            self.len = keep;
            let shift = (DIGIT_BUFFER - keep) as u8;
            let mut kept = 0;
            for i in 0..self.groups {
                if self.group_starts[i] >= shift {
                    self.group_starts[kept] = self.group_starts[i] - shift;
                    kept += 1;
                }
            }
            self.groups = kept;
        }
        self.buf[self.len] = digit;
        self.len += 1;
        self.count += 1;
        self.group_len += 1;
    }

    /// Whether the digits up to here end a Luhn-valid card number that starts at a
    /// group start.
    fn card_ends_here(&self) -> bool {
        self.group_starts[..self.groups].iter().any(|&start| {
            let digits = &self.buf[usize::from(start)..self.len];
            (13..=19).contains(&digits.len()) && luhn(digits)
        })
    }

    /// Ends the run; what it was.
    fn end(&mut self) -> Found {
        let card = self.pending == 0 && self.card_ends_here();
        let phone = if self.plus {
            (8..=15).contains(&self.count)
        } else {
            (10..=12).contains(&self.count) && self.separated && self.group_len >= 3
        };
        self.active = false;
        self.opening = false;
        Found { card, phone }
    }
}

/// The Luhn checksum of `digits` (most significant first) is valid.
fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &d) in digits.iter().rev().enumerate() {
        let d = u32::from(d);
        sum += if i % 2 == 1 {
            let twice = d * 2;
            if twice > 9 { twice - 9 } else { twice }
        } else {
            d
        };
    }
    sum.is_multiple_of(10)
}

// ---------------------------------------------------------------------------------
// IBAN

#[derive(Debug, Default)]
struct Iban {
    state: IbanState,
    /// Country code and check digits, moved to the end for the check.
    head: [u8; 4],
    /// Characters read (spaces excluded).
    len: u32,
    /// Characters since the last space.
    group_len: u32,
    /// The number formed by the characters after the head, mod 97.
    remainder: u32,
    /// A space was just read.
    after_space: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum IbanState {
    /// After a byte that is not a letter or digit: a letter may start an IBAN.
    #[default]
    Idle,
    /// Inside an alphanumeric run that cannot be an IBAN.
    Dead,
    Reading,
}

impl Iban {
    fn step(&mut self, b: u8) -> bool {
        let alnum = b.is_ascii_alphanumeric();
        match self.state {
            IbanState::Idle => {
                if b.is_ascii_alphabetic() {
                    *self = Iban {
                        state: IbanState::Reading,
                        ..Iban::default()
                    };
                    self.push(b);
                } else if alnum {
                    self.state = IbanState::Dead;
                }
                false
            }
            IbanState::Dead => {
                if !alnum {
                    self.state = IbanState::Idle;
                }
                false
            }
            IbanState::Reading if alnum => {
                self.after_space = false;
                if !self.push(b) {
                    self.state = IbanState::Dead;
                }
                false
            }
            IbanState::Reading if b == b' ' && !self.after_space && self.group_len == 4 => {
                // A group of four ends; the IBAN may end here too.
                self.after_space = true;
                self.group_len = 0;
                self.valid()
            }
            IbanState::Reading => {
                // The run ends. Right after a space it was checked at that space.
                let found = !self.after_space && self.valid();
                self.state = IbanState::Idle;
                found
            }
        }
    }

    fn finish(&self) -> bool {
        self.state == IbanState::Reading && self.valid()
    }

    /// Reads one character; false when the run cannot be an IBAN.
    fn push(&mut self, b: u8) -> bool {
        let i = self.len as usize;
        let ok = match i {
            0 | 1 => b.is_ascii_alphabetic(),
            2 | 3 => b.is_ascii_digit(),
            _ => i < 34,
        };
        if !ok {
            return false;
        }
        if i < 4 {
            self.head[i] = b;
        } else {
            self.remainder = mod97_push(self.remainder, b);
        }
        self.len += 1;
        self.group_len += 1;
        true
    }

    /// Whether what was read so far is a complete, valid IBAN.
    fn valid(&self) -> bool {
        if !(15..=34).contains(&self.len) {
            return false;
        }
        let r = self
            .head
            .iter()
            .fold(self.remainder, |r, &c| mod97_push(r, c));
        r == 1
    }
}

/// Appends an IBAN character to a number mod 97: a digit as itself, a letter as two
/// digits (A = 10 … Z = 35).
fn mod97_push(r: u32, c: u8) -> u32 {
    if c.is_ascii_digit() {
        (r * 10 + u32::from(c - b'0')) % 97
    } else {
        (r * 100 + u32::from(c.to_ascii_uppercase() - b'A') + 10) % 97
    }
}

#[cfg(test)]
pub(crate) mod tests;
