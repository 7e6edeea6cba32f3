//! The trained model: a logistic regression over the hashed features, read in place
//! from the embedded weights file.
//!
//! File layout (little-endian), written by `tools/train-complexity`:
//!
//! | bytes | field |
//! |---|---|
//! | 8 | magic `SBCPLX01` |
//! | 4 | feature version (u32; must equal [`FEATURE_VERSION`]) |
//! | 4 | `bits` (u32): the model has `2^bits` weights |
//! | 4 | bias (f32) |
//! | 4 × 2^bits | weights (f32) |
//!
//! The weights are read straight from the embedded bytes, so activation costs nothing
//! and every instance shares the one copy in the component's data segment.

use crate::features::{FEATURE_VERSION, GROUPS, extract, group_scale};

/// The magic bytes that open a weights file.
pub const MAGIC: &[u8; 8] = b"SBCPLX01";

/// Header size in bytes.
pub const HEADER: usize = 20;

/// A model over borrowed weight bytes.
#[derive(Debug, Clone, Copy)]
pub struct Model<'a> {
    bits: u32,
    bias: f32,
    weights: &'a [u8],
}

impl<'a> Model<'a> {
    /// Checks and wraps a weights file.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, String> {
        if bytes.len() < HEADER || &bytes[..8] != MAGIC {
            return Err("the weights file is not a complexity model".into());
        }
        let word = |at: usize| [bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]];
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
        let bias = f32::from_le_bytes(word(16));
        let weights = &bytes[HEADER..];
        if weights.len() != 4 << bits {
            return Err(format!(
                "the weights file holds {} bytes of weights, {} expected",
                weights.len(),
                4usize << bits
            ));
        }
        Ok(Model {
            bits,
            bias,
            weights,
        })
    }

    /// The number of hash bits.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    fn weight(&self, index: u32) -> f32 {
        let at = index as usize * 4;
        match self.weights.get(at..at + 4) {
            Some(w) => f32::from_le_bytes([w[0], w[1], w[2], w[3]]),
            None => 0.0,
        }
    }

    /// The model's score for `text`, in `[0, 1]`: the expected gain in quality from
    /// the strong model over the weak one — for right-or-wrong answers, the probability
    /// that only the strong model is right minus the probability that only the weak one
    /// is — with expected losses as 0.
    ///
    /// The regression predicts `(gain + 1) / 2` (see `tools/train-complexity`), so the
    /// score is `2p − 1`, clamped.
    pub fn score(&self, text: &str) -> f64 {
        (2.0 * self.probability(text) - 1.0).clamp(0.0, 1.0)
    }

    /// The regression's raw output for `text`, in `(0, 1)`.
    pub fn probability(&self, text: &str) -> f64 {
        let mut sums = [0f32; GROUPS];
        let counts = extract(text, self.bits, |f| sums[f.group] += self.weight(f.index));
        let z: f32 = self.bias
            + sums
                .iter()
                .enumerate()
                .map(|(g, s)| s * group_scale(g, &counts))
                .sum::<f32>();
        sigmoid(f64::from(z))
    }
}

/// The logistic function.
pub fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

/// Serialises a model in the layout above.
pub fn write(bits: u32, bias: f32, weights: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + 4 * weights.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FEATURE_VERSION.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(&bias.to_le_bytes());
    for w in weights {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_score() {
        let zero = write(4, 0.0, &[0.0; 16]);
        let model = Model::parse(&zero).unwrap();
        assert_eq!(model.probability("anything"), 0.5);
        assert_eq!(model.score("anything"), 0.0);
        let biased = write(4, 2.0, &[0.0; 16]);
        let m = Model::parse(&biased).unwrap();
        assert!((m.probability("x") - sigmoid(2.0)).abs() < 1e-6);
        assert!((m.score("x") - (2.0 * sigmoid(2.0) - 1.0)).abs() < 1e-6);
        assert_eq!(
            Model::parse(&write(4, -2.0, &[0.0; 16]))
                .unwrap()
                .score("x"),
            0.0
        );
        let heavy = write(4, 0.0, &[1.0; 16]);
        assert!(Model::parse(&heavy).unwrap().score("some words here") > 0.9);
    }

    #[test]
    fn rejects_bad_files() {
        assert!(Model::parse(b"nope").is_err());
        let mut short = write(4, 0.0, &[0.0; 16]);
        short.pop();
        assert!(
            Model::parse(&short)
                .unwrap_err()
                .contains("bytes of weights")
        );
        let mut other = write(4, 0.0, &[0.0; 16]);
        other[8] = 99;
        assert!(
            Model::parse(&other)
                .unwrap_err()
                .contains("feature version")
        );
    }
}
