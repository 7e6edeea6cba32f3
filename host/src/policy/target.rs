//! What a policy knows about the tenant's targets: their fixed description (handed
//! over once per activation) and their live signals (per call).

/// One configured target as a policy sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetInfo {
    /// Unique id within the tenant.
    pub id: String,
    /// The provider that serves it.
    pub provider: String,
    /// The model clients may ask for.
    pub model: String,
    /// US dollars per million input tokens.
    pub input_price: f64,
    /// US dollars per million output tokens.
    pub output_price: f64,
    /// Input plus output tokens accepted; `0` when unknown.
    pub context_window: u32,
    /// Lower-case capability and placement tags.
    pub tags: Vec<String>,
}

/// What the host knows about one target right now.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct TargetSignals {
    /// False while the circuit breaker is open.
    pub healthy: bool,
    /// Requests in flight to it now.
    pub in_flight: u32,
    /// Most requests at once; `0` for no limit.
    pub capacity: u32,
    /// Latency moving average, ms (`0.0` until served).
    pub latency_ms: f32,
    /// Time-to-first-token moving average, ms (`0.0` until streamed).
    pub ttft_ms: f32,
    /// Moving share of failed attempts, in `[0, 1]`.
    pub error_rate: f32,
    /// Milliseconds until its upstream rate limit lifts; `0` when not limited.
    pub rate_limited_ms: u32,
}
