//! What a prompt shows that calls for a stronger model: code, mathematics, multi-step
//! reasoning.
//!
//! One pass over the bytes of the text, no regular expressions: markers are compared
//! only at the first letter of a word or at a non-letter, and then only those whose
//! first two bytes hash like the text's there (usually none), through a table built
//! once at activation; the rest of each word is skipped. A small state machine counts arithmetic such as
//! `12 * 7` on the way. The markers are deliberately coarse: a false "code" costs one
//! tier of price, a missed one one tier of quality.

/// Features found in a text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TextFeatures {
    /// Looks like code or a programming question.
    pub code: bool,
    /// Looks like mathematics.
    pub math: bool,
    /// Asks for multi-step reasoning.
    pub reasoning: bool,
}

impl TextFeatures {
    /// The features found in either.
    pub fn or(self, other: TextFeatures) -> TextFeatures {
        TextFeatures {
            code: self.code || other.code,
            math: self.math || other.math,
            reasoning: self.reasoning || other.reasoning,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Code,
    Math,
    Reasoning,
    /// "first,", "then,", "finally,": two different ones mean steps.
    Sequence,
}

#[derive(Debug, Clone, Copy)]
struct Marker {
    /// Lower-case ASCII.
    text: &'static [u8],
    kind: Kind,
    /// Position in its list, to tell sequence markers apart.
    ordinal: u8,
}

const CODE: &[&str] = &[
    "```",
    "fn ",
    "def ",
    "#include",
    "function ",
    "function(",
    "=>",
    "};",
    "console.log",
    "println",
    "printf(",
    "import ",
    "public static",
    "traceback",
    "stack trace",
    "segfault",
    "compile error",
    "compiler error",
    "syntax error",
    "null pointer",
    "regex",
    "select * from",
    "<div",
    "unit test",
    "refactor",
    "debug",
    "python",
    "javascript",
    "typescript",
    "golang",
    "c++",
    "sql",
];

const MATH: &[&str] = &[
    "integral",
    "derivative",
    "equation",
    "theorem",
    "lemma",
    "proof",
    "prove ",
    "\\frac",
    "\\sum",
    "\\int",
    "\\sqrt",
    "matrix",
    "eigen",
    "probability",
    "solve for",
    "calculate",
    "polynomial",
    "logarithm",
    "sqrt(",
    "^2",
    "modulo",
    "factorial",
    "algebra",
    "calculus",
    "geometry",
    "variance",
];

const REASONING: &[&str] = &[
    "step by step",
    "step-by-step",
    "multi-step",
    "think carefully",
    "reason through",
    "explain why",
    "explain how",
    "walk me through",
    "pros and cons",
    "trade-off",
    "tradeoff",
    "compare",
    "analyze",
    "analyse",
    "evaluate",
    "justify",
    "root cause",
    "implications",
    "in detail",
];

const SEQUENCE: &[&str] = &[
    "first,",
    "second,",
    "then,",
    "next,",
    "finally,",
    "after that",
    "lastly",
];

/// Arithmetic expressions (`3 + 4`, `12*7`, `2 ^ 8`) that make a text mathematical.
const ARITHMETIC_FOR_MATH: u32 = 2;

/// Buckets of the marker table (a power of two).
const BUCKETS: usize = 1024;

/// The bucket of a marker or text position: its first two bytes, lower-cased.
fn bucket(first: u8, second: u8) -> usize {
    (usize::from(first.to_ascii_lowercase()) * 67 + usize::from(second.to_ascii_lowercase()))
        & (BUCKETS - 1)
}

/// The marker table, built once at activation.
#[derive(Debug, Clone)]
pub struct MarkerScanner {
    /// Sorted by bucket.
    markers: Vec<Marker>,
    /// For each bucket, the range of `markers` in it (most are empty).
    buckets: Vec<(u16, u16)>,
    /// Bytes other than letters that start a marker (`` ` ``, `=`, `}`, `#`, …).
    symbol_starts: [bool; 256],
}

impl Default for MarkerScanner {
    fn default() -> Self {
        Self::new()
    }
}

impl MarkerScanner {
    /// Builds the table of the built-in markers.
    pub fn new() -> Self {
        let mut markers: Vec<Marker> = [
            (CODE, Kind::Code),
            (MATH, Kind::Math),
            (REASONING, Kind::Reasoning),
            (SEQUENCE, Kind::Sequence),
        ]
        .iter()
        .flat_map(|(list, kind)| {
            list.iter().enumerate().map(move |(ordinal, m)| Marker {
                text: m.as_bytes(),
                kind: *kind,
                ordinal: ordinal as u8,
            })
        })
        .collect();
        // Every marker has at least two bytes.
        markers.sort_by_key(|m| bucket(m.text[0], m.text[1]));
        let mut buckets = vec![(0u16, 0u16); BUCKETS];
        for (i, m) in markers.iter().enumerate() {
            let slot = &mut buckets[bucket(m.text[0], m.text[1])];
            if slot.0 == slot.1 {
                *slot = (i as u16, i as u16 + 1);
            } else {
                slot.1 = i as u16 + 1;
            }
        }
        let mut symbol_starts = [false; 256];
        for m in &markers {
            if !m.text[0].is_ascii_alphabetic() {
                symbol_starts[usize::from(m.text[0])] = true;
            }
        }
        MarkerScanner {
            markers,
            buckets,
            symbol_starts,
        }
    }

    /// Scans `text` once. Stops early when every feature is found.
    ///
    /// Markers are compared only where they can start: at the first letter of a word,
    /// or at a byte that is not a letter; the rest of a word is skipped.
    pub fn scan(&self, text: &[u8]) -> TextFeatures {
        let mut scan = Scan::default();
        let mut i = 0;
        while i < text.len() {
            let b = text[i];
            if b.is_ascii_alphabetic() {
                if i == 0 || !text[i - 1].is_ascii_alphanumeric() {
                    self.match_markers(text, i, &mut scan);
                }
                i = word_end(text, i + 1);
                scan.arithmetic.reset();
            } else {
                if self.symbol_starts[usize::from(b)] {
                    self.match_markers(text, i, &mut scan);
                }
                if scan.arithmetic.step(b) >= ARITHMETIC_FOR_MATH {
                    scan.found.math = true;
                }
                i += 1;
            }
            let f = scan.found;
            if f.code && f.math && f.reasoning {
                break;
            }
        }
        scan.found
    }

    /// Compares the markers that may start at `text[at]` (those in the bucket of its
    /// first two bytes) against the text there.
    fn match_markers(&self, text: &[u8], at: usize, scan: &mut Scan) {
        let Some(&second) = text.get(at + 1) else {
            return;
        };
        let (start, end) = self.buckets[bucket(text[at], second)];
        for m in &self.markers[usize::from(start)..usize::from(end)] {
            let found = &mut scan.found;
            let done = match m.kind {
                Kind::Code => found.code,
                Kind::Math => found.math,
                Kind::Reasoning | Kind::Sequence => found.reasoning,
            };
            if done {
                continue;
            }
            let Some(candidate) = text.get(at..at + m.text.len()) else {
                continue;
            };
            if !candidate.eq_ignore_ascii_case(m.text) {
                continue;
            }
            match m.kind {
                Kind::Code => found.code = true,
                Kind::Math => found.math = true,
                Kind::Reasoning => found.reasoning = true,
                Kind::Sequence => {
                    scan.sequence_seen |= 1 << m.ordinal;
                    if scan.sequence_seen.count_ones() >= 2 {
                        found.reasoning = true;
                    }
                }
            }
        }
    }
}

/// The first position at or after `from` whose byte is not an ASCII letter or digit
/// (the end of the word), eight bytes at a time where possible.
fn word_end(text: &[u8], mut from: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const LOW7: u64 = ONES * 0x7f;
    const HIGH: u64 = ONES * 0x80;
    // The top bit of every byte strictly between `above` and `below` ("Determine if
    // a word has a byte between m and n", Bit Twiddling Hacks; exact per byte, and
    // bytes of 0x80 and up never match).
    let between = |word: u64, above: u64, below: u64| {
        (ONES * (127 + below) - (word & LOW7))
            & !word
            & ((word & LOW7) + ONES * (127 - above))
            & HIGH
    };
    while let Some(chunk) = text.get(from..from + 8) {
        let Ok(chunk) = <[u8; 8]>::try_from(chunk) else {
            break;
        };
        let word = u64::from_le_bytes(chunk);
        let alnum =
            between(word, 0x2f, 0x3a) | between(word, 0x40, 0x5b) | between(word, 0x60, 0x7b);
        let other = !alnum & HIGH;
        if other != 0 {
            return from + (other.trailing_zeros() / 8) as usize;
        }
        from += 8;
    }
    while from < text.len() && text[from].is_ascii_alphanumeric() {
        from += 1;
    }
    from
}

/// The state of one scan.
#[derive(Debug, Default)]
struct Scan {
    found: TextFeatures,
    /// Distinct sequence markers seen, by ordinal.
    sequence_seen: u32,
    arithmetic: Arithmetic,
}

/// Counts `digits op digits` with an operator of `+ * ^ =` (spaces allowed around
/// it), or `-` and `/` only with spaces on both sides, so dates (`2024-01-15`,
/// `1/2/2025`) and ranges do not count.
#[derive(Debug, Default)]
struct Arithmetic {
    state: ArithmeticState,
    count: u32,
}

#[derive(Debug, Default, Clone, Copy)]
enum ArithmeticState {
    #[default]
    Idle,
    Number {
        space_after: bool,
    },
    Operator {
        op: u8,
        space_before: bool,
        space_after: bool,
    },
}

impl Arithmetic {
    /// A word (letters first) interrupts any expression.
    fn reset(&mut self) {
        self.state = ArithmeticState::Idle;
    }

    fn step(&mut self, b: u8) -> u32 {
        use ArithmeticState::*;
        self.state = match (self.state, b) {
            (
                Operator {
                    op,
                    space_before,
                    space_after,
                },
                b'0'..=b'9',
            ) => {
                let spaced = space_before && space_after;
                if matches!(op, b'+' | b'*' | b'^' | b'=') || spaced {
                    self.count += 1;
                }
                Number { space_after: false }
            }
            (Number { space_after: false }, b'0'..=b'9' | b'.') => Number { space_after: false },
            (_, b'0'..=b'9') => Number { space_after: false },
            (Number { .. }, b' ') => Number { space_after: true },
            (Number { space_after }, b'+' | b'-' | b'*' | b'/' | b'^' | b'=') => Operator {
                op: b,
                space_before: space_after,
                space_after: false,
            },
            (
                Operator {
                    op, space_before, ..
                },
                b' ',
            ) => Operator {
                op,
                space_before,
                space_after: true,
            },
            _ => Idle,
        };
        self.count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> TextFeatures {
        MarkerScanner::new().scan(text.as_bytes())
    }

    #[test]
    fn finds_code() {
        assert!(scan("Why does this panic?\n```rust\nlet x = v[3];\n```").code);
        assert!(scan("fn parse(input: &str) -> Result<Config, Error>").code);
        assert!(scan("I get a Traceback when I run it").code);
        assert!(!scan("Write a short poem about autumn leaves.").code);
        // Word starts only: "define " is not "def ".
        assert!(!scan("Please define the word serendipity.").code);
    }

    #[test]
    fn finds_math_by_words_or_arithmetic() {
        assert!(scan("Compute the integral of x from 0 to 1").math);
        assert!(scan("what is 12 * 7 + 3?").math);
        assert!(scan("\\frac{a}{b}").math);
        assert!(
            !scan("what is 12 * 7?").math,
            "one expression is not enough"
        );
        assert!(
            !scan("Meeting on 2024-01-15 and 1/2/2025, rooms 3-4").math,
            "dates and ranges are not arithmetic"
        );
        assert!(!scan("How can I improve my essay?").math, "not `prove`");
        assert!(scan("so 10 - 4 = 6").math);
    }

    #[test]
    fn finds_reasoning_by_phrase_or_steps() {
        assert!(scan("Explain step by step how TLS works").reasoning);
        assert!(scan("Compare Postgres and MySQL for analytics").reasoning);
        assert!(scan("First, read the file. Then, count the words.").reasoning);
        assert!(!scan("First, hello.").reasoning, "one sequence marker");
        assert!(
            !scan("first, first, first,").reasoning,
            "the same one repeated"
        );
        assert!(!scan("Tell me a joke").reasoning);
    }

    #[test]
    fn word_end_stops_at_the_first_byte_that_is_not_a_letter_or_digit() {
        let all: Vec<u8> = (0..=255u8).collect();
        for &b in &all {
            for pos in 0..12 {
                let mut text = b"abcdefghijkLMNOPQ0123456789".to_vec();
                text[pos] = b;
                let want = if b.is_ascii_alphanumeric() {
                    text.len()
                } else {
                    pos
                };
                assert_eq!(word_end(&text, 0), want, "byte {b:#x} at {pos}");
            }
        }
        assert_eq!(word_end(b"ab", 5), 5);
    }

    #[test]
    fn is_case_insensitive_and_safe_at_the_end_of_text() {
        let f = scan("STEP BY STEP, PROVE THE THEOREM IN PYTHON");
        assert!(f.code && f.math && f.reasoning);
        for cut in ["`", "``", "step by ste", "\\fra", "1 +", ""] {
            let _ = scan(cut);
        }
        let _ = MarkerScanner::new().scan(&[0xff, 0xfe, b'f', b'n']);
    }
}
