//! What a prompt shows that calls for a stronger model: code, mathematics, multi-step
//! reasoning.
//!
//! One pass over the bytes of the text, no regular expressions: at each byte only the
//! few markers starting with that (lower-cased) byte are compared, through a table
//! built once at activation, and a small state machine counts arithmetic such as
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
    /// Only at the start of a word (the byte before is not a letter or digit).
    word_start: bool,
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

/// The marker table, built once at activation.
#[derive(Debug, Clone)]
pub struct MarkerScanner {
    markers: Vec<Marker>,
    /// For each lower-case first byte, the range of `markers` starting with it.
    by_first: Vec<(u16, u16)>,
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
                word_start: m.as_bytes()[0].is_ascii_alphanumeric(),
                ordinal: ordinal as u8,
            })
        })
        .collect();
        markers.sort_by_key(|m| m.text[0]);
        let mut by_first = vec![(0u16, 0u16); 256];
        for (i, m) in markers.iter().enumerate() {
            let slot = &mut by_first[usize::from(m.text[0])];
            if slot.0 == slot.1 {
                *slot = (i as u16, i as u16 + 1);
            } else {
                slot.1 = i as u16 + 1;
            }
        }
        MarkerScanner { markers, by_first }
    }

    /// Scans `text` once. Stops early when every feature is found.
    pub fn scan(&self, text: &[u8]) -> TextFeatures {
        let mut found = TextFeatures::default();
        let mut sequence_seen: u32 = 0;
        let mut arithmetic = Arithmetic::default();
        let mut prev: u8 = b' ';
        for (i, &b) in text.iter().enumerate() {
            let (start, end) = self.by_first[usize::from(b.to_ascii_lowercase())];
            for m in &self.markers[usize::from(start)..usize::from(end)] {
                let done = match m.kind {
                    Kind::Code => found.code,
                    Kind::Math => found.math,
                    Kind::Reasoning | Kind::Sequence => found.reasoning,
                };
                if done || (m.word_start && prev.is_ascii_alphanumeric()) {
                    continue;
                }
                let Some(candidate) = text.get(i..i + m.text.len()) else {
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
                        sequence_seen |= 1 << m.ordinal;
                        if sequence_seen.count_ones() >= 2 {
                            found.reasoning = true;
                        }
                    }
                }
            }
            if arithmetic.step(b) >= ARITHMETIC_FOR_MATH {
                found.math = true;
            }
            if found.code && found.math && found.reasoning {
                break;
            }
            prev = b;
        }
        found
    }
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
    fn is_case_insensitive_and_safe_at_the_end_of_text() {
        let f = scan("STEP BY STEP, PROVE THE THEOREM IN PYTHON");
        assert!(f.code && f.math && f.reasoning);
        for cut in ["`", "``", "step by ste", "\\fra", "1 +", ""] {
            let _ = scan(cut);
        }
        let _ = MarkerScanner::new().scan(&[0xff, 0xfe, b'f', b'n']);
    }
}
