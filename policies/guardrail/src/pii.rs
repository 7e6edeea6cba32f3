//! Personal data in message text: email addresses, phone numbers, payment card
//! numbers (Luhn-checked) and IBANs (mod-97-checked).
//!
//! One pass over the bytes, no regular expressions and no allocation: ordinary bytes
//! cost a table lookup each, and the few that can start personal data (digits, `@`,
//! `+`, `(`) hand over to small state machines that read on from there (an IBAN's
//! looks back at the two letters before its check digits). The scan stops at the
//! first find.
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
//! (`v2`, `3.14159…`) are not taken apart; IBANs must start after a byte that is not
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
    ///
    /// Ordinary bytes (letters, spaces, punctuation) are skipped by a table lookup
    /// each; only a digit, `@`, `+` or `(` wakes a detector, which reads on from
    /// there (an IBAN's detector looks back at the two letters before its first
    /// digit). A digit run is read once: the scan resumes where it ended.
    pub fn scan(&self, text: &[u8]) -> Option<PiiKind> {
        if !self.any() {
            return None;
        }
        let numbers = self.card || self.phone;
        let mut i = 0;
        while i < text.len() {
            // Eight bytes at a time where possible: skip them, or go straight to
            // the first one that may be a trigger.
            if let Some(word) = text.get(i..i + 8)
                && let Ok(word) = <[u8; 8]>::try_from(word)
            {
                let mask = maybe_triggers(u64::from_le_bytes(word));
                if mask == 0 {
                    i += 8;
                    continue;
                }
                i += (mask.trailing_zeros() / 8) as usize;
            }
            if !TRIGGER[usize::from(text[i])] {
                i += 1;
                continue;
            }
            if text[i] == b'@' {
                if self.email && email_at(text, i) {
                    return Some(PiiKind::Email);
                }
                i += 1;
                continue;
            }
            if self.iban && iban_at(text, i) {
                return Some(PiiKind::Iban);
            }
            if !numbers {
                i += 1;
                continue;
            }
            let (found, end) = digit_run_at(text, i);
            if let Some(kind) = self.keep(found) {
                return Some(kind);
            }
            i = end;
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

/// Bytes that wake a detector: digits, `@`, `+`, `(`.
static TRIGGER: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = b'0';
    while b <= b'9' {
        t[b as usize] = true;
        b += 1;
    }
    t[b'@' as usize] = true;
    t[b'+' as usize] = true;
    t[b'(' as usize] = true;
    t
};

/// Which of the eight bytes of `word` (little-endian) may be trigger bytes: a mask
/// whose lowest set bit is the top bit of the first trigger byte (0 when there is
/// none), computed without looking at the bytes one by one ("Determine if a word has
/// a zero byte" and "… a byte between m and n", Bit Twiddling Hacks). Above the first
/// trigger byte the mask may flag others too; only the lowest flag is used.
fn maybe_triggers(word: u64) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = ONES * 0x7f;
    const HIGH: u64 = ONES * 0x80;
    // Bytes equal to `c`: zero bytes of `word ^ c…c`.
    let equal = |c: u8| {
        let v = word ^ (ONES * u64::from(c));
        v.wrapping_sub(ONES) & !v & HIGH
    };
    // Digits: strictly between 0x2f and 0x3a, each byte computed without borrows or
    // carries into its neighbours.
    let digits = (ONES * (127 + 0x3a) - (word & LOW7))
        & !word
        & ((word & LOW7) + ONES * (127 - 0x2f))
        & HIGH;
    digits | equal(b'@') | equal(b'+') | equal(b'(')
}

/// Whether an email address has its `@` at `at`: a local-part byte just before it
/// and a domain after it.
fn email_at(text: &[u8], at: usize) -> bool {
    if at == 0 || !is_local(text[at - 1]) {
        return false;
    }
    let mut domain = Domain::default();
    for &b in &text[at + 1..] {
        if let Some(valid) = domain.step(b) {
            return valid;
        }
    }
    domain.finish()
}

/// Whether an IBAN's check digits start at `at`: two letters at a word start before
/// them, a second digit after.
fn iban_at(text: &[u8], at: usize) -> bool {
    if at < 2 || !text[at].is_ascii_digit() || !text.get(at + 1).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    let start = at - 2;
    if !(text[start].is_ascii_alphabetic() && text[start + 1].is_ascii_alphabetic())
        || (start > 0 && text[start - 1].is_ascii_alphanumeric())
    {
        return false;
    }
    let mut iban = Iban::default();
    for &b in &text[start..] {
        if iban.step(b) {
            return true;
        }
        if iban.state != IbanState::Reading {
            return false;
        }
    }
    iban.finish()
}

/// Reads the digit run (card or phone number candidate) that may start at `at`;
/// what it was, and where to resume the scan (always after `at`).
fn digit_run_at(text: &[u8], at: usize) -> (Found, usize) {
    let mut prev = if at == 0 { b' ' } else { text[at - 1] };
    // Most triggers start nothing (a `(` before a word, a digit inside a token):
    // decide that before setting up a run.
    let next = text.get(at + 1).copied().unwrap_or(b' ');
    let starts = match text[at] {
        b'0'..=b'9' => is_boundary(prev),
        b'+' => is_boundary(prev) && (next.is_ascii_digit() || next == b'('),
        b'(' => (is_boundary(prev) || prev == b'+') && next.is_ascii_digit(),
        _ => false,
    };
    if !starts {
        return (Found::default(), at + 1);
    }
    let mut run = DigitRun::default();
    let mut found = Found::default();
    for (j, &b) in text.iter().enumerate().skip(at) {
        let f = run.step(b, prev);
        found.card |= f.card;
        found.phone |= f.phone;
        if found.card || found.phone {
            return (found, j + 1);
        }
        if !run.active && !run.opening {
            // The run ended here (or never started): this byte may start the next.
            return (found, if j > at { j } else { at + 1 });
        }
        prev = b;
    }
    let f = run.finish();
    (
        Found {
            card: found.card || f.card,
            phone: found.phone || f.phone,
        },
        text.len(),
    )
}

// ---------------------------------------------------------------------------------
// Email

fn is_local(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-')
}

/// Reads the domain after an `@`, label by label.
#[derive(Debug, Default)]
struct Domain {
    dots: u32,
    label_len: u32,
    label_alpha: bool,
    /// Whether the last finished label could end a domain (two letters or more).
    last_label_tld: bool,
}

impl Domain {
    /// Reads one byte; `Some(valid)` once the domain has ended.
    fn step(&mut self, b: u8) -> Option<bool> {
        if b.is_ascii_alphanumeric() || b == b'-' {
            if self.label_len == 0 {
                self.label_alpha = true;
            }
            self.label_len += 1;
            self.label_alpha &= b.is_ascii_alphabetic();
            None
        } else if b == b'.' && self.label_len > 0 {
            self.last_label_tld = self.label_alpha && self.label_len >= 2;
            self.dots += 1;
            self.label_len = 0;
            None
        } else {
            Some(self.finish())
        }
    }

    /// Whether the domain read so far completes an address.
    fn finish(&self) -> bool {
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
mod fuzz;
#[cfg(test)]
pub(crate) mod tests;
