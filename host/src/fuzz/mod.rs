//! Fuzz targets for every parser of bytes that come from outside the gateway: a
//! client's request body and how it is read, an upstream's SSE stream and what an
//! Anthropic upstream answers (streams, messages, errors), a Messages or Responses
//! client's request and what a chat upstream answers it, the policy state snapshot
//! read back from disk, the config file, the admin API's policy upload and the
//! `Authorization` header.
//!
//! Each target is a bolero test: `cargo test` replays its corpus
//! (`__fuzz__/<target>/corpus/` beside these files: real requests, streams, configs
//! and every input that once failed) and then tries random inputs for [`CI_TIME`];
//! `BOLERO_RANDOM_TEST_TIME_MS` raises that, and `cargo bolero test` runs the same
//! target under libFuzzer (docs/reliability.md, "Fuzzing").
//!
//! Every input is read twice. Raw, as the parser would receive it: that is what a
//! corpus file holds and what libFuzzer mutates. And shaped: the same bytes drive an
//! [`arbitrary::Unstructured`] that builds a well-formed request, stream or config
//! with hostile details, because random bytes alone almost never get past the first
//! check of a structured format and the stable engine does not mutate its corpus.
//! Targets check properties (the same events whatever the chunking, a round trip,
//! an error placed inside the input), not only the absence of a panic.

mod admin_upload;
mod anthropic_upstream;
mod body_read;
mod config_file;
mod key_ring;
mod messages_client;
mod request_body;
mod responses_client;
mod sse;
mod state_snapshot;

use std::time::Duration;

/// How long each target tries random inputs in an ordinary test run, after its
/// corpus. `BOLERO_RANDOM_TEST_TIME_MS` in the environment takes precedence.
pub(crate) const CI_TIME: Duration = Duration::from_secs(2);

/// `bytes` cut into pieces whose sizes come from `sizes` (1 to 16 bytes each, cycling;
/// one byte each when `sizes` is empty): a stream as a network might deliver it.
pub(crate) fn pieces<'a>(bytes: &'a [u8], sizes: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = bytes;
    let mut i = 0;
    while !rest.is_empty() {
        let size = sizes
            .get(i % sizes.len().max(1))
            .map_or(1, |s| usize::from(s % 16) + 1);
        let (head, tail) = rest.split_at(size.min(rest.len()));
        out.push(head);
        rest = tail;
        i += 1;
    }
    out
}
