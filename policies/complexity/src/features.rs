//! The prompt features the model scores, shared by the policy and its training program.
//!
//! A prompt becomes a sparse vector of hashed features in four groups:
//!
//! | group | features | value of each occurrence |
//! |---|---|---|
//! | words | lower-cased words, digit runs as `<n1>`…`<n4>` by length, and the math and code symbols ``$ \ ^ = + * / % < > { } ; ` _ |`` as one-character tokens | `1 / sqrt(count in group)` |
//! | word pairs | adjacent words (symbols do not pair) | `1 / sqrt(count in group)` |
//! | word trigrams | three-character pieces of each word, with `^` and `$` marking its ends | `1 / sqrt(count in group)` |
//! | shape | log-scale buckets of length in characters, words, lines, numbers, math symbols, code symbols, answer options (`A.` … `J.` at a line start), question marks, the longest word, sentences, decimals (`2.5`) and fractions (`3/4`) | `1` |
//! | | and "at least" steps: for characters, words, numbers, sentences, the longest word and decimals, one feature per quarter octave the count reaches | `1` |
//!
//! Each feature's name is hashed (words by FNV-1a, pairs and trigrams packed, then a
//! murmur3 finaliser with a seed per group) into one of `2^bits` buckets. Scaling each text group by the square root of
//! its size keeps long and short prompts comparable, while the shape group says how long
//! the prompt is. A one-octave bucket alone lumps together prompts of, say, 300 and 500
//! characters; the "at least" steps (`chars ≥ 1`, `≥ 2^0.25`, `≥ 2^0.5`, …) give the
//! model a piecewise-linear response to the log of each count, so it can rank prompts
//! of one kind by how long they are and how many steps they state (grade-school word
//! problems above all; chosen by cross-validation on the training rows).
//!
//! Extraction makes no allocation: it walks the text once and calls a sink per feature.
//! The definition is versioned by [`FEATURE_VERSION`]: the weights file records the
//! version it was trained with, and the policy refuses weights of another version.

/// The version of this feature definition; bump it whenever [`extract`] changes.
pub const FEATURE_VERSION: u32 = 2;

/// The feature groups, in the order [`extract`] reports them.
pub const GROUPS: usize = 4;

const WORDS: usize = 0;
const PAIRS: usize = 1;
const TRIGRAMS: usize = 2;
const SHAPE: usize = 3;

const GROUP_SEEDS: [u64; GROUPS] = [
    0x9e37_79b9_7f4a_7c15,
    0xc2b2_ae3d_27d4_eb4f,
    0x1656_67b1_9e37_79f9,
    0x27d4_eb2f_1656_67c5,
];

/// FNV-1a over bytes, finished with the murmur3 64-bit finaliser. Frozen: trained
/// weights depend on it.
#[derive(Clone, Copy)]
struct Fnv(u64);

impl Fnv {
    const fn new(seed: u64) -> Self {
        Fnv(0xcbf2_9ce4_8422_2325 ^ seed)
    }

    const fn byte(self, b: u8) -> Self {
        Fnv((self.0 ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3))
    }

    const fn bytes(mut self, bytes: &[u8]) -> Self {
        let mut i = 0;
        while i < bytes.len() {
            self = self.byte(bytes[i]);
            i += 1;
        }
        self
    }

    #[inline(always)]
    fn char(self, c: char) -> Self {
        if c.is_ascii() {
            self.byte(c as u8)
        } else {
            let mut buf = [0u8; 4];
            self.bytes(c.encode_utf8(&mut buf).as_bytes())
        }
    }

    const fn finish(self) -> u64 {
        mix(self.0)
    }
}

/// The murmur3 64-bit finaliser: spreads every input bit over the output. Frozen.
const fn mix(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// Characters that are tokens of their own: markers of math, code and formatting.
const SYMBOLS: &[u8] = b"$\\^=+*/%<>{};`_|";
/// Math markers among ASCII characters (beside them: `×`, `÷`, `√`, `π`).
const MATH: &[u8] = b"$\\^=+*/%<>-";
/// Code markers.
const CODE: &[u8] = b"{};()[]`_#";

/// Per ASCII character: what it is, as the flags below.
const ALNUM: u8 = 1;
const DIGIT: u8 = 2;
const SYMBOL: u8 = 4;
const MATH_MARK: u8 = 8;
const CODE_MARK: u8 = 16;

const fn contains(set: &[u8], b: u8) -> bool {
    let mut i = 0;
    while i < set.len() {
        if set[i] == b {
            return true;
        }
        i += 1;
    }
    false
}

/// The flags of every ASCII character, built at compile time so the walk over a
/// prompt does one table read per character instead of a chain of comparisons.
const ASCII_CLASS: [u8; 128] = {
    let mut table = [0u8; 128];
    let mut b = 0u8;
    while b < 128 {
        let mut flags = 0;
        if b.is_ascii_alphanumeric() {
            flags |= ALNUM;
        }
        if b.is_ascii_digit() {
            flags |= DIGIT;
        }
        if contains(SYMBOLS, b) {
            flags |= SYMBOL;
        }
        if contains(MATH, b) {
            flags |= MATH_MARK;
        }
        if contains(CODE, b) {
            flags |= CODE_MARK;
        }
        table[b as usize] = flags;
        b += 1;
    }
    table
};

/// The flags of any character.
#[inline(always)]
fn class(c: char) -> u8 {
    if c.is_ascii() {
        ASCII_CLASS[c as usize]
    } else {
        let mut flags = 0;
        if c.is_alphanumeric() {
            flags |= ALNUM;
        }
        if matches!(c, '×' | '÷' | '√' | 'π') {
            flags |= MATH_MARK;
        }
        flags
    }
}

/// The hash of each symbol token (group seed not yet applied), by ASCII code; built at
/// compile time.
const SYMBOL_TOKENS: [u64; 128] = {
    let mut table = [0u64; 128];
    let mut b = 0u8;
    while b < 128 {
        if contains(SYMBOLS, b) {
            table[b as usize] = Fnv::new(4).byte(b).finish();
        }
        b += 1;
    }
    table
};

/// The tokens of digit runs of 1, 2, 3 and 4 or more digits: `<n1>` … `<n4>`.
const NUMBER_TOKENS: [u64; 4] = {
    let base = Fnv::new(1).bytes(b"<n");
    [
        base.byte(b'1').finish(),
        base.byte(b'2').finish(),
        base.byte(b'3').finish(),
        base.byte(b'4').finish(),
    ]
};

/// `n`'s bucket on a log scale: 0, 1, 2, 3–4, 5–8, 9–16, … (at most 15).
fn log_bucket(n: u32) -> u8 {
    if n == 0 {
        0
    } else {
        (32 - (n - 1).leading_zeros() + 1).min(15) as u8
    }
}

/// How many quarter octaves `n` reaches: 0 for 0, then `1 + floor(4·log2 n)`, so 1 for
/// 1, 2 for 2^0.25 ≈ 1.19, 5 for 2, 9 for 4, … Exact in integers, so the trainer and
/// the component agree on every count.
fn quarter_octaves(n: u32) -> u8 {
    if n == 0 {
        return 0;
    }
    let octave = 31 - n.leading_zeros();
    let fourth_power = u128::from(n).pow(4);
    let quarters = (1..=3)
        .filter(|q| fourth_power >= 1u128 << (4 * octave + q))
        .count() as u32;
    (4 * octave + quarters + 1) as u8
}

/// Where a feature lands: its group and its bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Feature {
    /// Which group (0 words, 1 word pairs, 2 word trigrams, 3 shape).
    pub group: usize,
    /// The bucket in `0..2^bits`.
    pub index: u32,
}

/// How many features each group produced, to scale them (see [`group_scale`]).
pub type GroupCounts = [u32; GROUPS];

/// The value each occurrence of a feature in `group` takes, given the counts.
pub fn group_scale(group: usize, counts: &GroupCounts) -> f32 {
    if group == SHAPE {
        1.0
    } else {
        match counts[group] {
            0 => 0.0,
            n => 1.0 / (n as f32).sqrt(),
        }
    }
}

/// Whether `text` offers answer options: some line opens with `A.` … `J.` or `A)` …
/// `J)`, the rule the shape group counts options by. The model keeps weights for
/// multiple-choice and for free-form prompts beside the shared ones (see
/// [`crate::model`]), so it reads this before the features.
pub fn multiple_choice(text: &str) -> bool {
    text.split('\n')
        .any(|line| matches!(line.as_bytes(), [b'A'..=b'J', b'.' | b')', ..]))
}

/// Walks `text` and calls `sink` once per feature occurrence, with buckets in
/// `0..2^bits`; returns how many occurrences each group had. A feature's value is
/// [`group_scale`] of its group, known only once the walk ends, so callers sum raw
/// weights per group and scale the sums afterwards.
pub fn extract(text: &str, bits: u32, sink: impl FnMut(Feature)) -> GroupCounts {
    let mut walker = Walker {
        mask: (1u64 << bits) - 1,
        sink,
        counts: [0; GROUPS],
        word: Fnv::new(0),
        word_len: 0,
        word_digits: true,
        trigram: 0,
        previous_word: None,
        words: 0,
        numbers: 0,
        longest: 0,
    };
    let mut chars = 0u32;
    let mut lines = 1u32;
    let mut math = 0u32;
    let mut code = 0u32;
    let mut questions = 0u32;
    let mut options = 0u32;
    // Characters seen on the current line, and its first one.
    let mut line_pos = 0u32;
    let mut line_first = ' ';
    let mut sentences = 0u32;
    let mut decimals = 0u32;
    let mut fractions = 0u32;
    // What the previous character, if it ended a word, may begin (see [`Joint`]).
    let mut joint = Joint::None;

    for c in text.chars() {
        chars += 1;
        let flags = class(c);
        if flags & ALNUM != 0 {
            if joint != Joint::None {
                if flags & DIGIT != 0 {
                    decimals += u32::from(joint == Joint::Point);
                    fractions += u32::from(joint == Joint::Slash);
                }
                joint = Joint::None;
            }
            walker.letter(c, flags & DIGIT != 0);
        } else {
            if joint.ends_sentence() && c.is_whitespace() {
                sentences += 1;
            }
            joint = match c {
                _ if walker.word_len == 0 => Joint::None,
                '.' if walker.word_digits => Joint::Point,
                '/' if walker.word_digits => Joint::Slash,
                '.' | '?' | '!' => Joint::Stop,
                _ => Joint::None,
            };
            if c == '\n' {
                lines += 1;
                line_pos = 0;
            }
            // `A.` or `A)` opening a line is an answer option.
            if (c == '.' || c == ')') && line_pos == 1 && ('A'..='J').contains(&line_first) {
                options += 1;
            }
            walker.end_word();
            if flags & SYMBOL != 0 {
                walker.emit(WORDS, SYMBOL_TOKENS[c as usize]);
            }
            questions += u32::from(c == '?');
        }
        math += u32::from(flags & MATH_MARK != 0);
        code += u32::from(flags & CODE_MARK != 0);
        if c != '\n' {
            if line_pos == 0 {
                line_first = c;
            }
            line_pos += 1;
        }
    }
    walker.end_word();
    sentences += u32::from(joint.ends_sentence());

    for (name, value) in [
        (b'c', log_bucket(chars)),
        (b'w', log_bucket(walker.words)),
        (b'l', log_bucket(lines)),
        (b'n', log_bucket(walker.numbers)),
        (b'm', log_bucket(math)),
        (b'k', log_bucket(code)),
        (b'o', log_bucket(options)),
        (b'q', log_bucket(questions)),
        (b'L', log_bucket(walker.longest)),
        (b's', log_bucket(sentences)),
        (b'd', log_bucket(decimals)),
        (b'f', log_bucket(fractions)),
    ] {
        walker.emit(SHAPE, Fnv::new(5).byte(name).byte(value).finish());
    }
    for (name, count) in [
        (b'c', chars),
        (b'w', walker.words),
        (b'n', walker.numbers),
        (b's', sentences),
        (b'L', walker.longest),
        (b'd', decimals),
    ] {
        for step in 1..=quarter_octaves(count) {
            walker.emit(SHAPE, Fnv::new(6).byte(name).byte(step).finish());
        }
    }
    walker.counts
}

/// What a character right after a word may join: a number and a point may make a
/// decimal (`2.5`), a number and a slash a fraction (`3/4`), and a word and `.`, `?` or
/// `!` end a sentence if whitespace or the end of the text follows (`5. Then` too).
/// Carried from one character to the next, so the walk keeps no history of characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Joint {
    None,
    Point,
    Slash,
    Stop,
}

impl Joint {
    #[inline(always)]
    fn ends_sentence(self) -> bool {
        matches!(self, Joint::Point | Joint::Stop)
    }
}

/// The `^` that marks a word's start in its trigrams, and the `$` that marks its end.
const WORD_START: u64 = '^' as u64;
const WORD_END: u64 = '$' as u64;

/// The state of one walk over a prompt's words. Plain fields rather than an `Option`
/// of a tuple, so that the per-character work stays in registers.
struct Walker<S> {
    mask: u64,
    sink: S,
    counts: GroupCounts,
    /// The hash of the word being read (meaningful when `word_len > 0`).
    word: Fnv,
    word_len: u32,
    /// Whether the word being read is all ASCII digits so far.
    word_digits: bool,
    /// The last two letters of the word being read, 21 bits each (`^^` before its
    /// start). A trigram packs three characters exactly: `(first << 42) | (second << 21)
    /// | third`.
    trigram: u64,
    previous_word: Option<u64>,
    words: u32,
    numbers: u32,
    longest: u32,
}

impl<S: FnMut(Feature)> Walker<S> {
    #[inline(always)]
    fn emit(&mut self, group: usize, token: u64) {
        self.counts[group] += 1;
        (self.sink)(Feature {
            group,
            index: (mix(token ^ GROUP_SEEDS[group]) & self.mask) as u32,
        });
    }

    #[inline(always)]
    fn letter(&mut self, c: char, digit: bool) {
        let lower = if c.is_ascii() {
            c.to_ascii_lowercase()
        } else {
            c.to_lowercase().next().unwrap_or(c)
        };
        if self.word_len == 0 {
            self.word = Fnv::new(0);
            self.word_digits = true;
            self.trigram = (WORD_START << 21) | WORD_START;
        }
        self.word = self.word.char(lower);
        self.word_len += 1;
        self.word_digits &= digit;
        if !digit {
            let last = u64::from(lower);
            let token = (self.trigram << 21) | last;
            self.emit(TRIGRAMS, token);
            self.trigram = ((self.trigram << 21) | last) & ((1 << 42) - 1);
        }
    }

    #[inline(always)]
    fn end_word(&mut self) {
        if self.word_len == 0 {
            return;
        }
        let len = self.word_len;
        self.word_len = 0;
        let token = if self.word_digits {
            self.numbers += 1;
            NUMBER_TOKENS[(len.min(4) - 1) as usize]
        } else {
            let closing = (self.trigram << 21) | WORD_END;
            self.emit(TRIGRAMS, closing);
            self.word.finish()
        };
        self.words += 1;
        self.longest = self.longest.max(len);
        self.emit(WORDS, token);
        if let Some(previous) = self.previous_word {
            self.emit(PAIRS, previous.rotate_left(23) ^ token);
        }
        self.previous_word = Some(token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn features(text: &str) -> (Vec<Feature>, GroupCounts) {
        let mut out = Vec::new();
        let counts = extract(text, 18, |f| out.push(f));
        (out, counts)
    }

    #[test]
    fn multiple_choice_is_an_option_opening_a_line() {
        assert!(multiple_choice("Which?\nA. one\nB. two"));
        assert!(multiple_choice("A) first line is an option"));
        assert!(!multiple_choice(
            "Josh buys a house for $80,000. How much profit?"
        ));
        assert!(!multiple_choice("Plan A. Then plan B."));
        assert!(!multiple_choice("K. is past the last option letter"));
    }

    #[test]
    fn hash_is_frozen() {
        // Trained weights depend on these values.
        assert_eq!(
            Fnv::new(0).bytes(b"integral").finish(),
            0xdd34_861a_e4d6_8698
        );
    }

    #[test]
    fn groups_count_words_pairs_trigrams_and_shape() {
        let (features, counts) = features("Two cats, 12 dogs = $x");
        // Words: two, cats, <n2>, dogs, x, and the symbols `=` and `$`.
        assert_eq!(counts[WORDS], 7);
        assert_eq!(counts[PAIRS], 4);
        // Trigrams: each letter of a word and its closing mark.
        assert_eq!(counts[TRIGRAMS], 4 + 5 + 5 + 2);
        // Twelve buckets, and the steps of 22 characters, 5 words, 1 number and a
        // longest word of 4 letters.
        assert_eq!(counts[SHAPE], 12 + 18 + 10 + 1 + 9);
        assert!(features.iter().all(|f| f.index < 1 << 18));
    }

    #[test]
    fn case_and_spacing_do_not_matter_but_words_do() {
        // (Of equal length: the shape steps tell 11 characters from 12.)
        assert_eq!(features("Hello  World").0, features("hello, world").0);
        assert_ne!(features("hello world").0, features("hello there").0);
    }

    #[test]
    fn answer_options_and_buckets() {
        let (_, counts) = features("Which?\nA. one\nB. two\nC) three");
        assert_eq!(counts[WORDS], 7);
        assert_ne!(
            features("Which?\nA. one\nB. two").0,
            features("Which?\nA one\nB two").0
        );
        assert_eq!(log_bucket(0), 0);
        assert_eq!(log_bucket(1), 1);
        assert_eq!(log_bucket(2), 2);
        assert_eq!(log_bucket(3), 3);
        assert_eq!(log_bucket(4), 3);
        assert_eq!(log_bucket(5), 4);
        assert_eq!(log_bucket(u32::MAX), 15);
    }

    #[test]
    fn quarter_octaves_step_at_powers_of_two_to_the_quarter() {
        assert_eq!(quarter_octaves(0), 0);
        assert_eq!(quarter_octaves(1), 1);
        assert_eq!(quarter_octaves(2), 5);
        // 2^1.5 ≈ 2.83 ≤ 3 < 2^1.75 ≈ 3.36.
        assert_eq!(quarter_octaves(3), 7);
        assert_eq!(quarter_octaves(4), 9);
        assert_eq!(quarter_octaves(22), 18);
        assert_eq!(quarter_octaves(u32::MAX), 128);
    }

    #[test]
    fn decimals_fractions_and_sentence_ends_add_a_step() {
        let shape = |text: &str| features(text).1[SHAPE];
        // Same length and words: only the decimal's "at least one" step differs.
        assert_eq!(shape("Pay 2.5 now"), shape("Pay 2 5 now") + 1);
        assert_eq!(shape("Done. Go"), shape("Done, Go") + 1);
        assert_eq!(shape("Go."), shape("Go,") + 1);
        assert_ne!(features("Eat 3/4 now").0, features("Eat 3 /4 now").0);
    }

    #[test]
    fn empty_text_has_only_shape() {
        let (features, counts) = features("");
        assert_eq!(counts, [0, 0, 0, 12]);
        assert_eq!(features.len(), 12);
        assert_eq!(group_scale(WORDS, &counts), 0.0);
    }
}
