//! The trained model, read in place from the embedded weights file. Two heads share
//! the hashed features: a logistic regression for the strong model's expected gain,
//! and a linear regression for the natural log of the answer's length in tokens.
//!
//! The gain head is trained with three weights per bucket: one shared by every prompt,
//! one for multiple-choice prompts and one for free-form ones ([`multiple_choice`]); a
//! feature counts its shared weight plus [`DOMAIN_SCALE`] times the weight of its
//! prompt's kind. Grade-school maths and open questions can so depart from what the
//! multiple-choice exams teach the shared weights, without either kind pulling the
//! other's ranking about ("frustratingly easy" domain adaptation, Daumé 2007). A
//! prompt only ever reads one kind, so the file stores each kind's sum, `shared +
//! DOMAIN_SCALE × kind`: two gain weights per bucket, not three.
//!
//! File layout (little-endian), written by `tools/train-complexity`:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SBCPLX03` |
//! | 4 | feature version (u32; must equal [`FEATURE_VERSION`]) |
//! | 4 | `bits` (u32): `2^bits` buckets |
//! | 4 | gain bias (f32) |
//! | 4 | length bias (f32) |
//! | 4 | reference input tokens (f32) |
//! | 4 | reference output tokens (f32) |
//! | 6 × 2^bits | per bucket: the multiple-choice and the free-form gain weight, then the length weight (IEEE 754 half precision) |
//!
//! The weights are read straight from the embedded bytes, so activation costs nothing.
//! A bucket's weights sit side by side, so a feature costs one memory access for both
//! heads and two half-precision conversions. Half precision keeps three significant digits, plenty for a linear
//! model's weights, and halves the component and the memory each decision touches.

use crate::features::{FEATURE_VERSION, GROUPS, extract, group_scale, multiple_choice};

/// The magic bytes that open a weights file.
pub const MAGIC: &[u8; 8] = b"SBCPLX03";

/// The value of a feature's copy for its prompt's kind, relative to the shared
/// feature's. Below 1, a kind-specific departure costs more of the L2 penalty than a
/// shared weight, so the shared weights carry what the kinds agree on (chosen by
/// cross-validation among 0.5, 1 and 1.5).
pub const DOMAIN_SCALE: f32 = 0.5;

/// Weights per bucket: multiple-choice gain, free-form gain, length.
const PER_BUCKET: usize = 3;

/// Header size in bytes.
pub const HEADER: usize = 32;

/// What the model says of one prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    /// The strong model's expected gain in quality over the weak one, in `[0, 1]`
    /// (see [`Model::score`]).
    pub gain: f64,
    /// The expected length of the answer in tokens (at least 1).
    pub output_tokens: f64,
}

/// One head's raw linear output: the bias plus the group-scaled sums.
fn linear(bias: f32, sums: &[f32; GROUPS], scales: &[f32; GROUPS]) -> f64 {
    f64::from(bias + sums.iter().zip(scales).map(|(s, k)| s * k).sum::<f32>())
}

/// A model over borrowed weight bytes.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    bits: u32,
    bias: f32,
    length_bias: f32,
    reference: (f32, f32),
    /// Per bucket, the half-precision weights (see [`PER_BUCKET`]), little-endian.
    weights: &'a [[u8; 2 * PER_BUCKET]],
}

impl<'a> Model<'a> {
    /// Checks and wraps a weights file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err("the weights file is not a complexity model (version 3)".into());
        }
        let word = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
        let float = |at: usize| f32::from_le_bytes(word(at));
        let version = u32::from_le_bytes(word(8));
        if version != FEATURE_VERSION {
            return Err(format!(
                "the weights were trained on feature version {version}, this policy extracts version {FEATURE_VERSION}"
            ));
        }
        let bits = u32::from_le_bytes(word(12));
        if !(4..=24).contains(&bits) {
            return Err(format!("the weights file has {bits} hash bits"));
        }
        let reference = (float(24), float(28));
        if !(reference.0 >= 0.0 && reference.1 >= 1.0) {
            return Err(format!(
                "the weights file's reference request ({} input, {} output tokens) is not a request",
                reference.0, reference.1
            ));
        }
        let (weights, rest) = bytes[HEADER..].as_chunks::<{ 2 * PER_BUCKET }>();
        if !rest.is_empty() || weights.len() != 1 << bits {
            return Err(format!(
                "the weights file holds {} bytes of weights, {} expected",
                bytes.len() - HEADER,
                (2 * PER_BUCKET) << bits
            ));
        }
        Ok(Model {
            bits,
            bias: float(16),
            length_bias: float(20),
            reference,
            weights,
        })
    }

    /// Reads one byte of every memory page of the weights, so that the first decisions
    /// of a fresh instance do not stall on page faults (a prompt touches hundreds of
    /// pages at random; faulting them in on a decision's deadline would miss it).
    pub fn warm(&self) -> u8 {
        self.weights
            .iter()
            .step_by(512)
            .fold(0u8, |acc, w| acc ^ std::hint::black_box(w[0]))
    }

    /// The number of hash bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The typical request of the training data, `(input, output)` tokens: the scale
    /// against which a cost-aware policy compares a request's cost.
    pub fn reference(&self) -> (f64, f64) {
        (f64::from(self.reference.0), f64::from(self.reference.1))
    }

    /// A bucket's gain weight for a prompt of the kind at byte `kind` of the bucket
    /// (0: multiple choice, 2: free form), and its length weight.
    #[inline(always)]
    fn weights(&self, index: u32, kind: usize) -> (f32, f32) {
        match self.weights.get(index as usize) {
            Some(&[a, b, c, d, e, f]) => {
                let gain = if kind == 0 { [a, b] } else { [c, d] };
                (
                    f16_to_f32_finite(u16::from_le_bytes(gain)),
                    f16_to_f32_finite(u16::from_le_bytes([e, f])),
                )
            }
            None => (0.0, 0.0),
        }
    }

    /// Both heads' raw linear outputs for `text`: the gain logit and the log length.
    pub fn linear(&self, text: &str) -> (f64, f64) {
        let kind = if multiple_choice(text) { 0 } else { 2 };
        let mut gain = [0f32; GROUPS];
        let mut length = [0f32; GROUPS];
        let counts = extract(text, self.bits, |f| {
            let (g, l) = self.weights(f.index, kind);
            gain[f.group] += g;
            length[f.group] += l;
        });
        let scales: [f32; GROUPS] = std::array::from_fn(|g| group_scale(g, &counts));
        (
            linear(self.bias, &gain, &scales),
            linear(self.length_bias, &length, &scales),
        )
    }

    /// Both estimates for `text`, from one walk over it.
    pub fn estimate(&self, text: &str) -> Estimate {
        let (gain, length) = self.linear(text);
        Estimate {
            gain: gain_of(sigmoid(gain)),
            output_tokens: length.exp().max(1.0),
        }
    }

    /// The model's score for `text`, in `[0, 1]`: the expected gain in quality from
    /// the strong model over the weak one — for right-or-wrong answers, the probability
    /// that only the strong model is right minus the probability that only the weak one
    /// is — with expected losses as 0.
    pub fn score(&self, text: &str) -> f64 {
        self.estimate(text).gain
    }

    /// The gain head's raw output for `text`, in `(0, 1)`.
    pub fn probability(&self, text: &str) -> f64 {
        sigmoid(self.linear(text).0)
    }
}

/// The gain a probability of the gain head stands for. The regression predicts
/// `(gain + 1) / 2` (see `tools/train-complexity`), so the gain is `2p − 1`, with
/// expected losses clamped to 0.
pub fn gain_of(p: f64) -> f64 {
    (2.0 * p - 1.0).clamp(0.0, 1.0)
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// One head of a model to write: its bias and weights.
#[derive(Debug, Clone, Copy)]
pub struct Head<'w> {
    /// The bias.
    pub bias: f32,
    /// The weights.
    pub weights: &'w [f32],
}

/// Serialises a model in the layout above, folding each kind's gain weight into the
/// shared one. The length head has one weight per bucket, a power of two of them; the
/// gain head three times as many: the shared weights of every bucket, then the
/// multiple-choice ones, then the free-form ones.
pub fn write(gain: Head<'_>, length: Head<'_>, reference: (f32, f32)) -> Vec<u8> {
    let buckets = length.weights.len();
    assert!(buckets.is_power_of_two());
    assert_eq!(gain.weights.len(), 3 * buckets);
    let bits = buckets.trailing_zeros();
    let mut out = Vec::with_capacity(HEADER + 2 * PER_BUCKET * buckets);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FEATURE_VERSION.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    for v in [gain.bias, length.bias, reference.0, reference.1] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for (i, &l) in length.weights.iter().enumerate() {
        let shared = gain.weights[i];
        for w in [
            shared + DOMAIN_SCALE * gain.weights[buckets + i],
            shared + DOMAIN_SCALE * gain.weights[2 * buckets + i],
            l,
        ] {
            out.extend_from_slice(&f32_to_f16(w).to_le_bytes());
        }
    }
    out
}

/// A weight as stored: `w` rounded to half precision and back.
pub fn stored(w: f32) -> f32 {
    f16_to_f32(f32_to_f16(w))
}

/// IEEE 754 binary16 bits of `v`, rounded to nearest (ties to even); overflow becomes
/// infinity, tiny values flush towards zero through subnormals.
fn f32_to_f16(v: f32) -> u16 {
    let bits = v.to_bits();
    let sign = ((bits >> 16) & 0x8000) as u16;
    let exp = ((bits >> 23) & 0xff) as i32;
    let mant = bits & 0x007f_ffff;
    if exp == 0xff {
        return sign | 0x7c00 | if mant != 0 { 0x200 } else { 0 };
    }
    let e = exp - 127 + 15;
    if e >= 0x1f {
        return sign | 0x7c00;
    }
    if e <= 0 {
        if e < -10 {
            return sign;
        }
        let m = mant | 0x0080_0000;
        let shift = (14 - e) as u32;
        let half = 1u32 << (shift - 1);
        let rounded = (m + half - 1 + ((m >> shift) & 1)) >> shift;
        return sign | rounded as u16;
    }
    let rounded = mant + 0x0fff + ((mant >> 13) & 1);
    // A carry out of the mantissa bumps the exponent, as it should.
    let value = ((e as u32) << 10) + (rounded >> 13);
    if value >= 0x7c00 {
        sign | 0x7c00
    } else {
        sign | value as u16
    }
}

/// The f32 value of binary16 bits `h` that are not infinity or NaN (trained weights
/// never are), without branches: the hot path of scoring converts one weight per
/// feature. Exact for normal and subnormal values alike.
#[inline(always)]
fn f16_to_f32_finite(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from(h & 0x7c00);
    let mant = u32::from(h & 0x3ff);
    // Normal: move exponent and mantissa into place and rebias the exponent.
    let normal = f32::from_bits((u32::from(h & 0x7fff) << 13) + ((127 - 15) << 23));
    // Subnormal (and zero): mant × 2^-24, computed on integers turned to floats so no
    // subnormal f32 is involved.
    let subnormal = mant as f32 * (1.0 / 16_777_216.0);
    let magnitude = if exp == 0 { subnormal } else { normal };
    f32::from_bits(magnitude.to_bits() | sign)
}

/// The f32 value of binary16 bits `h`.
fn f16_to_f32(h: u16) -> f32 {
    let sign = u32::from(h & 0x8000) << 16;
    let exp = u32::from((h >> 10) & 0x1f);
    let mant = u32::from(h & 0x3ff);
    let bits = match exp {
        0 if mant == 0 => sign,
        0 => {
            // Subnormal: normalise.
            let shift = mant.leading_zeros() - 21;
            let m = (mant << shift) & 0x3ff;
            sign | ((127 - 15 + 1 - shift) << 23) | (m << 13)
        }
        0x1f => sign | 0x7f80_0000 | (mant << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (mant << 13),
    };
    f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model of `2^4` buckets with every shared gain weight `g`, no kind-specific
    /// ones, and every length weight `l`.
    fn uniform(gain_bias: f32, g: f32, length_bias: f32, l: f32) -> Vec<u8> {
        let mut gain = [0.0; 48];
        gain[..16].fill(g);
        write(
            Head {
                bias: gain_bias,
                weights: &gain,
            },
            Head {
                bias: length_bias,
                weights: &[l; 16],
            },
            (100.0, 50.0),
        )
    }

    #[test]
    fn round_trip_and_score() {
        let zero = uniform(0.0, 0.0, 0.0, 0.0);
        let model = Model::parse(&zero).unwrap();
        assert_eq!(model.probability("anything"), 0.5);
        assert_eq!(model.score("anything"), 0.0);
        assert_eq!(model.reference(), (100.0, 50.0));
        let biased = uniform(2.0, 0.0, 0.0, 0.0);
        let m = Model::parse(&biased).unwrap();
        assert!((m.probability("x") - sigmoid(2.0)).abs() < 1e-6);
        assert!((m.score("x") - (2.0 * sigmoid(2.0) - 1.0)).abs() < 1e-6);
        assert_eq!(
            Model::parse(&uniform(-2.0, 0.0, 0.0, 0.0))
                .unwrap()
                .score("x"),
            0.0
        );
        let heavy = uniform(0.0, 1.0, 0.0, 0.0);
        assert!(Model::parse(&heavy).unwrap().score("some words here") > 0.9);
    }

    #[test]
    fn each_kind_of_prompt_adds_its_own_weights() {
        // Multiple-choice weights 1, free-form weights -1, nothing shared.
        let mut gain = [0.0; 48];
        gain[16..32].fill(1.0);
        gain[32..].fill(-1.0);
        let bytes = write(
            Head {
                bias: 0.0,
                weights: &gain,
            },
            Head {
                bias: 0.0,
                weights: &[0.0; 16],
            },
            (100.0, 50.0),
        );
        let m = Model::parse(&bytes).unwrap();
        let choice = m.linear("Which is prime?\nA. 4\nB. 7").0;
        let free = m.linear("Which is prime, 4 or 7?").0;
        assert!(choice > 0.0 && free < 0.0, "{choice} {free}");
        // A kind's weight counts DOMAIN_SCALE times a shared one.
        let mut shared = [0.0; 48];
        shared[..16].fill(1.0);
        let bytes = write(
            Head {
                bias: 0.0,
                weights: &shared,
            },
            Head {
                bias: 0.0,
                weights: &[0.0; 16],
            },
            (100.0, 50.0),
        );
        let text = "Which is prime?\nA. 4\nB. 7";
        let all_shared = Model::parse(&bytes).unwrap().linear(text).0;
        assert!((m.linear(text).0 - f64::from(DOMAIN_SCALE) * all_shared).abs() < 1e-4);
    }

    #[test]
    fn the_length_head_is_read_beside_the_gain_head() {
        // Bias ln 40 and no weights: 40 tokens whatever the text, gain untouched.
        let m = uniform(0.0, 0.0, 40f32.ln(), 0.0);
        let estimate = Model::parse(&m)
            .unwrap()
            .estimate("How long is a piece of string?");
        assert!((estimate.output_tokens - 40.0).abs() < 1e-3, "{estimate:?}");
        assert_eq!(estimate.gain, 0.0);
        // Positive length weights lengthen the answer; the gain head does not see them.
        let longer = Model::parse(&uniform(0.0, 0.0, 40f32.ln(), 0.5))
            .unwrap()
            .estimate("How long is a piece of string?");
        assert!(longer.output_tokens > 40.0, "{longer:?}");
        assert_eq!(longer.gain, 0.0);
        // Never below one token.
        let short = uniform(0.0, 0.0, -20.0, 0.0);
        let short = Model::parse(&short).unwrap();
        assert_eq!(short.estimate("x").output_tokens, 1.0);
    }

    #[test]
    fn half_precision_round_trips() {
        for v in [0.0f32, 1.0, -2.5, 0.1, 1e-3, -7.25e-5, 3e-7, 65504.0] {
            let back = stored(v);
            assert!((back - v).abs() <= v.abs() * 1e-3 + 6e-8, "{v} -> {back}");
        }
        assert_eq!(f32_to_f16(1.0), 0x3c00);
        assert_eq!(f32_to_f16(-2.0), 0xc000);
        assert_eq!(f32_to_f16(1e6), 0x7c00);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(stored(1.0 + 1.0 / 4096.0), 1.0);
        // The branch-free conversion agrees with the general one on every finite value.
        for h in 0..=u16::MAX {
            if h & 0x7c00 != 0x7c00 {
                assert_eq!(
                    f16_to_f32_finite(h).to_bits(),
                    f16_to_f32(h).to_bits(),
                    "{h:#x}"
                );
            }
        }
    }

    #[test]
    fn rejects_bad_files() {
        assert!(Model::parse(b"nope").is_err());
        let mut short = uniform(0.0, 0.0, 0.0, 0.0);
        short.pop();
        assert!(
            Model::parse(&short)
                .unwrap_err()
                .contains("bytes of weights")
        );
        let mut other = uniform(0.0, 0.0, 0.0, 0.0);
        other[8] = 99;
        assert!(
            Model::parse(&other)
                .unwrap_err()
                .contains("feature version")
        );
        // A reference request of no output tokens would divide by zero.
        let mut no_reference = uniform(0.0, 0.0, 0.0, 0.0);
        no_reference[28..32].copy_from_slice(&0f32.to_le_bytes());
        assert!(
            Model::parse(&no_reference)
                .unwrap_err()
                .contains("reference request")
        );
    }
}
