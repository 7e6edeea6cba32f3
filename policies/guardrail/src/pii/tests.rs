use super::*;

fn all() -> Detect {
    Detect::of(&PiiKind::ALL)
}

fn scan(text: &str) -> Option<PiiKind> {
    all().scan(text.as_bytes())
}

/// A deterministic generator for the randomized tests.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub(crate) fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
}

/// A Luhn-valid card number of `len` digits.
pub(crate) fn card_number(rng: &mut Rng, len: usize) -> String {
    let mut digits: Vec<u8> = rng.digits(len - 1).bytes().map(|b| b - b'0').collect();
    digits[0] = [3, 4, 5, 6][rng.below(4) as usize];
    digits.push(0);
    for check in 0..10 {
        *digits.last_mut().unwrap() = check;
        if luhn(&digits) {
            break;
        }
    }
    digits.iter().map(|d| char::from(b'0' + d)).collect()
}

/// `number` grouped the way people write it: contiguous, or in fours by spaces or
/// dashes.
pub(crate) fn grouped(rng: &mut Rng, number: &str) -> String {
    let sep = match rng.below(3) {
        0 => return number.to_owned(),
        1 => ' ',
        _ => '-',
    };
    number
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(&sep.to_string())
}

/// A valid IBAN for `country` with a random numeric account part.
pub(crate) fn iban(rng: &mut Rng, country: &str, bban_len: usize) -> String {
    let bban = rng.digits(bban_len);
    let mut r = 0;
    for c in bban.bytes().chain(country.bytes()).chain(*b"00") {
        r = mod97_push(r, c);
    }
    format!("{country}{:02}{bban}", 98 - r)
}

#[test]
fn the_word_at_a_time_filter_finds_the_first_trigger_byte() {
    let is_trigger = |b: u8| b.is_ascii_digit() || matches!(b, b'@' | b'+' | b'(');
    let mut rng = Rng::new(7);
    let pool = *b"ab (+@09:/ z\x80\xff\x00";
    for _ in 0..200_000 {
        let word: [u8; 8] = std::array::from_fn(|_| pool[rng.below(pool.len() as u64) as usize]);
        let mask = maybe_triggers(u64::from_le_bytes(word));
        match word.iter().position(|&b| is_trigger(b)) {
            None => assert_eq!(mask, 0, "{word:?}"),
            Some(first) => assert_eq!(mask.trailing_zeros() / 8, first as u32, "{word:?}"),
        }
    }
    for b in 0..=255u8 {
        let mut word = *b"abcdefgh";
        word[3] = b;
        let mask = maybe_triggers(u64::from_le_bytes(word));
        assert_eq!(mask != 0, is_trigger(b), "byte {b:#x}");
    }
}

#[test]
fn finds_email_addresses() {
    for text in [
        "mail jane.doe@example.com please",
        "jane+tag@mail.example.co.uk",
        "<a.b_c%d-e@x-y.io>",
        "end of sentence: x@y.org.",
        "a@b.cd",
    ] {
        assert_eq!(scan(text), Some(PiiKind::Email), "{text}");
    }
    for text in [
        "@mention and user@localhost",
        "x@1.2.3.4",
        "foo@bar",
        "a@b.c",
        "email me at",
        "price: 5 @ 10.00",
    ] {
        assert_eq!(scan(text), None, "{text}");
    }
}

#[test]
fn finds_luhn_valid_card_numbers_in_every_usual_shape() {
    for text in [
        "card 4111 1111 1111 1111 thanks",
        "4111-1111-1111-1111",
        "4111111111111111",
        "amex 378282246310005.",
        "amex 3782 822463 10005",
        "(5555555555554444)",
        "card:4012888888881881",
        "number 4111 1111 1111 1111 12/26",
        "ref 12 4111 1111 1111 1111",
        "visa 4222222222222 (13 digits)",
        "6011 0009 9013 9424 exp 09/27",
    ] {
        assert_eq!(scan(text), Some(PiiKind::Card), "{text}");
    }
    for text in [
        "4111 1111 1111 1112",
        "order 1234567890123456",
        "x4111111111111111",
        "pi is 3.14159265358979323846",
        "4111  1111  1111  1111",
    ] {
        assert_ne!(scan(text), Some(PiiKind::Card), "{text}");
    }
}

#[test]
fn finds_phone_numbers() {
    for text in [
        "call +44 20 7946 0958",
        "+14155552671",
        "(555) 123-4567",
        "555-123-4567 after five",
        "1-800-555-0199",
        "030 1234 5678",
        "+1 (415) 555-2671",
        "+33 1 23 45 67 89",
    ] {
        assert_eq!(scan(text), Some(PiiKind::Phone), "{text}");
    }
    for text in [
        "on 2024-01-15 10:30:00 UTC",
        "server 192.168.100.200",
        "5551234567",
        "v1.2.3 built 2025-11-28",
        "pages 10-12",
        "total: 1,234,567.89",
        "between 1 and 100",
    ] {
        assert_eq!(scan(text), None, "{text}");
    }
}

#[test]
fn finds_ibans_with_the_mod97_check() {
    for text in [
        "IBAN DE89 3704 0044 0532 0130 00 please",
        "GB82 WEST 1234 5698 7654 32",
        "NL91ABNA0417164300",
        "pay to: FR14 2004 1010 0505 0001 3M02 606.",
        "de89370400440532013000",
        "BE68 5390 0754 7034 then more text",
    ] {
        let found = scan(text);
        assert!(
            found == Some(PiiKind::Iban) || found == Some(PiiKind::Card),
            "{text}: {found:?}"
        );
        assert_eq!(
            Detect::of(&[PiiKind::Iban]).scan(text.as_bytes()),
            Some(PiiKind::Iban),
            "{text}"
        );
    }
    let iban_only = Detect::of(&[PiiKind::Iban]);
    for text in [
        "DE88 3704 0044 0532 0130 00",
        "ABCD EFGH",
        "mp3s and HD44 things",
        "XDE89370400440532013000",
    ] {
        assert_eq!(iban_only.scan(text.as_bytes()), None, "{text}");
    }
}

#[test]
fn ordinary_text_and_code_are_clean() {
    for text in [
        "",
        "Hello! Can you summarise this article about the 2024 elections?",
        "fn main() { let v = vec![1, 2, 3]; println!(\"{:?}\", v); }",
        "SELECT id, total FROM orders WHERE created_at > '2025-01-01' LIMIT 100;",
        "The integral of x^2 from 0 to 1 is 1/3, about 0.333333333333333.",
        "Version 10.15.7, build 19H2, sha 3f7f3a1b9c",
        "Prices: $1,299.00 and €15,50; ticket #12345678",
        "日本語のテキスト 1234",
    ] {
        assert_eq!(scan(text), None, "{text}");
    }
}

#[test]
fn only_the_configured_kinds_are_looked_for() {
    let text = b"mail a@b.com or card 4111111111111111";
    assert_eq!(Detect::of(&[PiiKind::Card]).scan(text), Some(PiiKind::Card));
    assert_eq!(
        Detect::of(&[PiiKind::Email]).scan(text),
        Some(PiiKind::Email)
    );
    assert_eq!(Detect::of(&[PiiKind::Phone]).scan(text), None);
    assert_eq!(Detect::of(&[]).scan(text), None);
}

#[test]
fn random_texts_with_injected_pii_are_always_caught() {
    let mut rng = Rng::new(0x5eed);
    let words = [
        "the",
        "invoice",
        "Please",
        "send",
        "to",
        "account",
        "on",
        "2025-03-01",
        "ref",
        "42",
        "v2.1",
        "ok,",
        "(see",
        "below)",
        "x=3",
        "#7",
        "total:",
        "12.50",
    ];
    for round in 0..5_000 {
        let mut text = String::new();
        for _ in 0..rng.below(12) {
            text.push_str(words[rng.below(words.len() as u64) as usize]);
            text.push(' ');
        }
        let kind = PiiKind::ALL[round % 4];
        let pii = match kind {
            PiiKind::Card => {
                let len = 13 + rng.below(7) as usize;
                let n = card_number(&mut rng, len);
                grouped(&mut rng, &n)
            }
            PiiKind::Iban => {
                let n = iban(&mut rng, "DE", 18);
                grouped(&mut rng, &n).replace('-', " ")
            }
            PiiKind::Email => format!("user{}@example{}.com", rng.below(1000), rng.below(9)),
            PiiKind::Phone => format!("+{} {}", 1 + rng.below(98), rng.digits(9)),
        };
        text.push_str(&pii);
        text.push_str([" ", ".", ", thanks", ""][rng.below(4) as usize]);
        let detect = Detect::of(&[kind]);
        assert_eq!(detect.scan(text.as_bytes()), Some(kind), "{text}");
        assert!(all().scan(text.as_bytes()).is_some(), "{text}");
    }
}
