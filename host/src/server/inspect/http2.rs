//! Counts an HTTP/2 client's control frames against a budget per connection.
//!
//! h2 answers every PING and SETTINGS and accepts every RST_STREAM, each cheap alone;
//! sent by the thousand they make the gateway work without doing anything for the
//! client (the floods of CVE-2019-9512/9515 and the rapid reset of CVE-2023-44487,
//! whose other half hyper's `max_pending_accept_reset_streams` bounds). h2 has no
//! bound on them, so this scanner reads the frame headers (9 bytes each, simple and
//! fixed) and ends the connection when the client goes over its budget: a token
//! bucket of `per_sec` frames a second holding up to two seconds' worth.

use std::time::Instant;

/// The client's connection preface, which comes before its first frame.
pub(super) const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

const FRAME_HEADER: usize = 9;
const PRIORITY: u8 = 0x2;
const RST_STREAM: u8 = 0x3;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const WINDOW_UPDATE: u8 = 0x8;
const ACK: u8 = 0x1;

/// The HTTP/2 scanner of one connection (after the preface).
#[derive(Debug)]
pub(super) struct Http2Scan {
    /// The frame header being read.
    header: [u8; FRAME_HEADER],
    /// How much of it is read.
    have: usize,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    /// Frames the client may still send now.
    tokens: f64,
    /// Refill rate, frames a second.
    per_sec: f64,
    /// When `tokens` was last refilled.
    refilled: Instant,
}

impl Http2Scan {
    pub(super) fn new(per_sec: u32) -> Self {
        let per_sec = f64::from(per_sec.max(1));
        Http2Scan {
            header: [0; FRAME_HEADER],
            have: 0,
            skip: 0,
            tokens: 2.0 * per_sec,
            per_sec,
            refilled: Instant::now(),
        }
    }

    /// Follows `bytes`; false when the client went over its control-frame budget.
    pub(super) fn feed(&mut self, mut bytes: &[u8]) -> bool {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(bytes.len() as u64);
                self.skip -= n;
                bytes = &bytes[n as usize..];
                continue;
            }
            let n = (FRAME_HEADER - self.have).min(bytes.len());
            self.header[self.have..self.have + n].copy_from_slice(&bytes[..n]);
            self.have += n;
            bytes = &bytes[n..];
            if self.have < FRAME_HEADER {
                break;
            }
            self.have = 0;
            let h = self.header;
            let length = u64::from(u32::from_be_bytes([0, h[0], h[1], h[2]]));
            self.skip = length;
            if is_control(h[3], h[4], length) && !self.take() {
                return false;
            }
        }
        true
    }

    /// Takes a token for one control frame, if one is left.
    fn take(&mut self) -> bool {
        if self.tokens < 1.0 {
            let now = Instant::now();
            let elapsed = now.duration_since(self.refilled).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.per_sec).min(2.0 * self.per_sec);
            self.refilled = now;
        }
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// Frames that cost the gateway work and carry no request: PING and SETTINGS (not
/// their acknowledgements, which answer the gateway's own), RST_STREAM, PRIORITY and
/// malformed WINDOW_UPDATEs. A well-formed WINDOW_UPDATE is ordinary flow control
/// while a response streams, so it is not counted.
fn is_control(kind: u8, flags: u8, length: u64) -> bool {
    match kind {
        PING | SETTINGS => flags & ACK == 0,
        RST_STREAM | PRIORITY => true,
        WINDOW_UPDATE => length != 4,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(kind: u8, flags: u8, payload: &[u8]) -> Vec<u8> {
        let len = (payload.len() as u32).to_be_bytes();
        let mut f = vec![len[1], len[2], len[3], kind, flags, 0, 0, 0, 1];
        f.extend(payload);
        f
    }

    #[test]
    fn a_ping_flood_runs_out_of_budget_and_acks_and_data_do_not_count() {
        let mut s = Http2Scan::new(10);
        for _ in 0..1000 {
            assert!(s.feed(&frame(0x0, 0, &[7; 100])), "DATA is not control");
            assert!(s.feed(&frame(PING, ACK, &[0; 8])), "an ACK answers us");
            assert!(s.feed(&frame(WINDOW_UPDATE, 0, &[0, 0, 1, 0])));
        }
        let ping = frame(PING, 0, &[0; 8]);
        let allowed = (0..1000).take_while(|_| s.feed(&ping)).count();
        assert!((20..25).contains(&allowed), "{allowed}");
    }

    #[test]
    fn frames_are_followed_across_any_split() {
        let mut bytes = Vec::new();
        for _ in 0..30 {
            bytes.extend(frame(0x1, 0x4, &[1; 20]));
            bytes.extend(frame(RST_STREAM, 0, &[0, 0, 0, 8]));
        }
        let mut s = Http2Scan::new(1);
        let refused_in = bytes.chunks(5).position(|c| !s.feed(c)).unwrap() * 5;
        // Two seconds' worth of resets pass; the third, whose header ends in the
        // third pair of frames, does not.
        assert!((2 * 42 + 29..3 * 42).contains(&refused_in), "{refused_in}");
    }
}
