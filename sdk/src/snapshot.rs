//! Targets joined with their live signals, and the selection helpers policies share.

use crate::{Decision, Signals, Target};

/// Every target of the activation with its signals at the moment of the call.
#[derive(Debug, Clone, Copy)]
pub struct Snapshot<'a> {
    targets: &'a [Target],
    signals: &'a [Signals],
}

impl<'a> Snapshot<'a> {
    /// Joins `targets` with `signals` (same order). Extra entries on either side are
    /// ignored; the host always sends exactly one signal per target.
    pub fn new(targets: &'a [Target], signals: &'a [Signals]) -> Self {
        let n = targets.len().min(signals.len());
        Snapshot {
            targets: &targets[..n],
            signals: &signals[..n],
        }
    }

    /// Number of targets.
    pub fn len(&self) -> usize {
        self.targets.len()
    }

    /// Whether there are no targets at all.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }

    /// Target `index` with its signals.
    pub fn get(&self, index: usize) -> Option<Candidate<'a>> {
        Some(Candidate {
            index: index as u32,
            target: self.targets.get(index)?,
            signals: self.signals.get(index)?,
        })
    }

    /// The index of the target whose id is `id`.
    pub fn index_of(&self, id: &str) -> Option<u32> {
        self.targets
            .iter()
            .position(|t| t.id == id)
            .map(|i| i as u32)
    }

    /// Every target, in activation order.
    pub fn iter(&self) -> impl Iterator<Item = Candidate<'a>> + 'a {
        let (targets, signals) = (self.targets, self.signals);
        targets
            .iter()
            .zip(signals)
            .enumerate()
            .map(|(i, (target, signals))| Candidate {
                index: i as u32,
                target,
                signals,
            })
    }

    /// All targets as a [`Candidates`] list to filter and order.
    pub fn candidates(&self) -> Candidates<'a> {
        Candidates {
            list: self.iter().collect(),
        }
    }
}

/// One target with its signals and its index in the activation's target list.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Index to put in a [`Decision`].
    pub index: u32,
    /// The static description.
    pub target: &'a Target,
    /// The live signals.
    pub signals: &'a Signals,
}

impl Candidate<'_> {
    /// The latency figure to compare: time to first token when measured, else total
    /// latency; `None` when the target has not been measured yet.
    pub fn observed_latency_ms(&self) -> Option<f32> {
        [self.signals.ttft_ms, self.signals.latency_ms]
            .into_iter()
            .find(|v| *v > 0.0)
    }
}

/// An ordered list of candidate targets: filter, order, then turn into a decision.
///
/// Filters keep the current order; orderings are stable, so the previous order breaks
/// ties. A typical chain:
///
/// ```
/// use signalbox_sdk::{Snapshot, Signals, Target};
/// let targets = [
///     Target::new("big", "gpt-4o").price(2.5, 10.0),
///     Target::new("small", "gpt-4o-mini").price(0.15, 0.6).tag("code"),
/// ];
/// let signals = [Signals::default(), Signals::unhealthy()];
/// let snapshot = Snapshot::new(&targets, &signals);
/// let decision = snapshot
///     .candidates()
///     .by_price(1000, 200)     // cheapest first
///     .available_first()       // then healthy ones before the rest
///     .into_decision("cheapest available");
/// assert_eq!(decision.targets(), &[0, 1]);
/// ```
#[derive(Debug, Clone)]
pub struct Candidates<'a> {
    list: Vec<Candidate<'a>>,
}

impl<'a> Candidates<'a> {
    /// Keeps the candidates for which `keep` is true.
    pub fn filter(mut self, keep: impl Fn(&Candidate<'a>) -> bool) -> Self {
        self.list.retain(|c| keep(c));
        self
    }

    /// Keeps the candidates for which `pred` is true, unless none is: then keeps all.
    /// For soft preferences ("EU if we can").
    pub fn prefer(self, pred: impl Fn(&Candidate<'a>) -> bool) -> Self {
        if self.list.iter().any(&pred) {
            self.filter(pred)
        } else {
            self
        }
    }

    /// Keeps targets whose model or id equals `model`.
    pub fn serving(self, model: &str) -> Self {
        self.filter(|c| c.target.model == model || c.target.id == model)
    }

    /// Keeps targets tagged `tag`.
    pub fn with_tag(self, tag: &str) -> Self {
        self.filter(|c| c.target.has_tag(tag))
    }

    /// Drops targets tagged `tag`.
    pub fn without_tag(self, tag: &str) -> Self {
        self.filter(|c| !c.target.has_tag(tag))
    }

    /// Keeps targets whose circuit is closed.
    pub fn healthy(self) -> Self {
        self.filter(|c| c.signals.healthy)
    }

    /// Keeps targets that are healthy and not rate-limited.
    pub fn available(self) -> Self {
        self.filter(|c| c.signals.available())
    }

    /// Keeps targets whose context window fits `tokens` (input plus output).
    pub fn fitting(self, tokens: u32) -> Self {
        self.filter(|c| c.target.fits(tokens))
    }

    /// Orders by estimated cost of `input` and `output` tokens, cheapest first.
    pub fn by_price(mut self, input: u32, output: u32) -> Self {
        self.list.sort_by(|a, b| {
            a.target
                .cost(input, output)
                .total_cmp(&b.target.cost(input, output))
        });
        self
    }

    /// Orders by observed latency (see [`Candidate::observed_latency_ms`]), fastest
    /// first; unmeasured targets go after measured ones.
    pub fn by_latency(mut self) -> Self {
        self.list.sort_by(|a, b| {
            let key = |c: &Candidate| c.observed_latency_ms().unwrap_or(f32::INFINITY);
            key(a).total_cmp(&key(b))
        });
        self
    }

    /// Orders by load (in-flight relative to capacity), least loaded first.
    pub fn by_load(mut self) -> Self {
        self.list
            .sort_by(|a, b| a.signals.load().total_cmp(&b.signals.load()));
        self
    }

    /// Moves available targets (healthy, not rate-limited) before the others, then
    /// healthy-but-rate-limited ones, keeping the order within each group.
    pub fn available_first(mut self) -> Self {
        self.list.sort_by_key(|c| c.signals.rank());
        self
    }

    /// The first candidate in the current order.
    pub fn first(&self) -> Option<Candidate<'a>> {
        self.list.first().copied()
    }

    /// The cheapest candidate for `input` and `output` tokens.
    pub fn cheapest(&self, input: u32, output: u32) -> Option<Candidate<'a>> {
        self.clone().by_price(input, output).first()
    }

    /// The candidate with the lowest observed latency (unmeasured ones last).
    pub fn fastest(&self) -> Option<Candidate<'a>> {
        self.clone().by_latency().first()
    }

    /// The least-loaded candidate.
    pub fn least_loaded(&self) -> Option<Candidate<'a>> {
        self.clone().by_load().first()
    }

    /// Number of candidates left.
    pub fn len(&self) -> usize {
        self.list.len()
    }

    /// Whether no candidate is left.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The candidates in order.
    pub fn iter(&self) -> impl Iterator<Item = &Candidate<'a>> {
        self.list.iter()
    }

    /// Their indices, in order.
    pub fn indices(&self) -> Vec<u32> {
        self.list.iter().map(|c| c.index).collect()
    }

    /// Routes to the candidates in order; an empty list becomes an invalid decision,
    /// so check [`is_empty`](Self::is_empty) first when a rejection is wanted.
    pub fn into_decision(self, reason: impl Into<String>) -> Decision {
        Decision::route(self.indices(), reason)
    }
}

impl<'a> IntoIterator for Candidates<'a> {
    type Item = Candidate<'a>;
    type IntoIter = std::vec::IntoIter<Candidate<'a>>;

    fn into_iter(self) -> Self::IntoIter {
        self.list.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> (Vec<Target>, Vec<Signals>) {
        let targets = vec![
            Target::new("a", "m1")
                .price(10.0, 30.0)
                .context_window(8_000),
            Target::new("b", "m1").price(1.0, 2.0).tag("code"),
            Target::new("c", "m2")
                .price(5.0, 5.0)
                .context_window(200_000),
        ];
        let signals = vec![
            Signals {
                latency_ms: 900.0,
                in_flight: 1,
                capacity: 10,
                ..Signals::default()
            },
            Signals {
                rate_limited_ms: 500,
                ttft_ms: 120.0,
                in_flight: 5,
                capacity: 10,
                ..Signals::default()
            },
            Signals::unhealthy(),
        ];
        (targets, signals)
    }

    #[test]
    fn filters_and_orders() {
        let (t, s) = fixture();
        let snap = Snapshot::new(&t, &s);
        assert_eq!(snap.candidates().serving("m1").indices(), vec![0, 1]);
        assert_eq!(snap.candidates().serving("c").indices(), vec![2]);
        assert_eq!(snap.candidates().with_tag("code").indices(), vec![1]);
        assert_eq!(snap.candidates().fitting(10_000).indices(), vec![1, 2]);
        assert_eq!(
            snap.candidates().by_price(1000, 1000).indices(),
            vec![1, 2, 0]
        );
        assert_eq!(
            snap.candidates()
                .by_price(1000, 1000)
                .available_first()
                .indices(),
            vec![0, 1, 2]
        );
        assert_eq!(snap.candidates().by_latency().indices(), vec![1, 0, 2]);
        assert_eq!(snap.least_loaded_index(), Some(2));
        assert_eq!(snap.candidates().available().indices(), vec![0]);
        assert_eq!(
            snap.candidates().prefer(|c| c.target.has_tag("gpu")).len(),
            3
        );
        assert_eq!(snap.index_of("c"), Some(2));
    }

    impl Snapshot<'_> {
        fn least_loaded_index(&self) -> Option<u32> {
            self.candidates().least_loaded().map(|c| c.index)
        }
    }
}
