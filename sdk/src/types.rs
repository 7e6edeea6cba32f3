//! The values a policy reads: targets, their live signals, and the request.

use crate::bindings::signalbox::policy::types as wit;

/// One upstream model deployment the tenant may route to.
///
/// Targets are fixed for the lifetime of an activation and are referred to by their
/// index in the list handed to [`Policy::activate`](crate::Policy::activate).
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// Unique id within the tenant, e.g. `openai-gpt-4o-mini`.
    pub id: String,
    /// The provider that serves it, e.g. `openai`.
    pub provider: String,
    /// The model name clients may ask for, e.g. `gpt-4o-mini`.
    pub model: String,
    /// US dollars per one million input tokens (`0.0` when unknown).
    pub input_price: f64,
    /// US dollars per one million output tokens (`0.0` when unknown).
    pub output_price: f64,
    /// Maximum input plus output tokens; `0` means unknown (treated as unlimited).
    pub context_window: u32,
    /// Capability and placement tags, e.g. `code`, `region:eu`.
    pub tags: Vec<String>,
}

impl Target {
    /// A target with the given id and model, no price, no context limit and no tags.
    /// Chain the other builder methods to fill it in (mostly useful in tests).
    ///
    /// ```
    /// use signalbox_sdk::Target;
    /// let t = Target::new("mini", "gpt-4o-mini").price(0.15, 0.60).context_window(128_000).tag("code");
    /// assert!(t.has_tag("code") && t.fits(100_000));
    /// ```
    pub fn new(id: impl Into<String>, model: impl Into<String>) -> Self {
        Target {
            id: id.into(),
            provider: "openai".into(),
            model: model.into(),
            input_price: 0.0,
            output_price: 0.0,
            context_window: 0,
            tags: Vec::new(),
        }
    }

    /// Sets the provider name.
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = provider.into();
        self
    }

    /// Sets the prices in US dollars per one million input and output tokens.
    pub fn price(mut self, input: f64, output: f64) -> Self {
        self.input_price = input;
        self.output_price = output;
        self
    }

    /// Sets the context window in tokens (`0` = unlimited).
    pub fn context_window(mut self, tokens: u32) -> Self {
        self.context_window = tokens;
        self
    }

    /// Adds a tag.
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Whether the target carries `tag` (exact, case-sensitive match).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Whether a request needing `tokens` (input plus output) fits the context window.
    /// Always true when the window is unknown (`0`).
    pub fn fits(&self, tokens: u32) -> bool {
        self.context_window == 0 || tokens <= self.context_window
    }

    /// Estimated cost in US dollars of `input` and `output` tokens on this target.
    pub fn cost(&self, input: u32, output: u32) -> f64 {
        (f64::from(input) * self.input_price + f64::from(output) * self.output_price) / 1e6
    }
}

impl From<wit::Target> for Target {
    fn from(t: wit::Target) -> Self {
        Target {
            id: t.id,
            provider: t.provider,
            model: t.model,
            input_price: t.input_price,
            output_price: t.output_price,
            context_window: t.context_window,
            tags: t.tags,
        }
    }
}

/// What the host knows about one target at the moment of the call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Signals {
    /// False while the target's circuit breaker is open.
    pub healthy: bool,
    /// Requests in flight to this target now.
    pub in_flight: u32,
    /// Most requests allowed in flight at once; `0` means no limit.
    pub capacity: u32,
    /// Moving average of total latency in ms (`0.0` = not measured yet).
    pub latency_ms: f32,
    /// Moving average of time to first token in ms (`0.0` = not measured yet).
    pub ttft_ms: f32,
    /// Moving share of failed attempts, in `[0, 1]`.
    pub error_rate: f32,
    /// Milliseconds until the upstream rate limit lifts; `0` = not limited.
    pub rate_limited_ms: u32,
}

impl Default for Signals {
    /// A healthy, idle, unmeasured target.
    fn default() -> Self {
        Signals {
            healthy: true,
            in_flight: 0,
            capacity: 0,
            latency_ms: 0.0,
            ttft_ms: 0.0,
            error_rate: 0.0,
            rate_limited_ms: 0,
        }
    }
}

impl Signals {
    /// A target whose circuit is open.
    pub fn unhealthy() -> Self {
        Signals {
            healthy: false,
            ..Signals::default()
        }
    }

    /// Healthy and not rate-limited: worth trying first.
    pub fn available(&self) -> bool {
        self.healthy && self.rate_limited_ms == 0
    }

    /// Which group to try first: 0 available, 1 healthy but rate-limited, 2 unhealthy.
    /// Policies sort by it before their own criterion, so a failing target is only
    /// tried when nothing better is left.
    ///
    /// ```
    /// use signalbox_sdk::Signals;
    ///
    /// let limited = Signals { rate_limited_ms: 500, ..Signals::default() };
    /// assert_eq!(Signals::default().rank(), 0);
    /// assert_eq!(limited.rank(), 1);
    /// assert_eq!(Signals::unhealthy().rank(), 2);
    /// ```
    pub fn rank(&self) -> u8 {
        match (self.healthy, self.rate_limited_ms) {
            (true, 0) => 0,
            (true, _) => 1,
            (false, _) => 2,
        }
    }

    /// In-flight requests relative to capacity, in `[0, ∞)`. Without a configured
    /// capacity this is the raw in-flight count, so unlimited targets compare by count.
    pub fn load(&self) -> f32 {
        if self.capacity == 0 {
            self.in_flight as f32
        } else {
            self.in_flight as f32 / self.capacity as f32
        }
    }
}

impl From<wit::Signals> for Signals {
    fn from(s: wit::Signals) -> Self {
        Signals {
            healthy: s.healthy,
            in_flight: s.in_flight,
            capacity: s.capacity,
            latency_ms: s.latency_ms,
            ttft_ms: s.ttft_ms,
            error_rate: s.error_rate,
            rate_limited_ms: s.rate_limited_ms,
        }
    }
}

/// Which API the client called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    /// `POST /v1/chat/completions`.
    Chat,
    /// `POST /v1/embeddings`.
    Embedding,
}

impl From<wit::Endpoint> for Endpoint {
    fn from(e: wit::Endpoint) -> Self {
        match e {
            wit::Endpoint::Chat => Endpoint::Chat,
            wit::Endpoint::Embedding => Endpoint::Embedding,
        }
    }
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// System prompt.
    System,
    /// The end user.
    User,
    /// The model.
    Assistant,
    /// A tool (function) result.
    Tool,
    /// A role this contract version does not name.
    Other,
}

impl From<wit::Role> for Role {
    fn from(r: wit::Role) -> Self {
        match r {
            wit::Role::System => Role::System,
            wit::Role::User => Role::User,
            wit::Role::Assistant => Role::Assistant,
            wit::Role::Tool => Role::Tool,
            wit::Role::Other => Role::Other,
        }
    }
}

/// Where a request's message text comes from: the host (read lazily, across the
/// component boundary) or memory (tests).
enum MessageSource<'a> {
    Host(&'a wit::Messages),
    Local(Vec<(Role, String)>),
}

/// The request being routed.
///
/// Scalar fields are plain data. Message text is read on demand through
/// [`message_text`](Request::message_text) and [`last_user_text`](Request::last_user_text):
/// each call copies that text from the host, so a policy that never reads text pays
/// nothing for a long prompt, and one that does should read it once.
pub struct Request<'a> {
    /// The gateway's id for this request; the same id arrives in outcomes and feedback.
    pub id: String,
    /// The API the client called.
    pub endpoint: Endpoint,
    /// The model or alias the client asked for, as sent (may be empty).
    pub model: String,
    /// The host's estimate of input tokens.
    pub input_tokens: u32,
    /// The output budget the client asked for, if any.
    pub max_output_tokens: Option<u32>,
    /// Whether the client asked for a streamed response.
    pub stream: bool,
    /// Whether the request offers tools to the model.
    pub has_tools: bool,
    /// Lower-case metadata pairs (from `x-signalbox-*` headers and the body's
    /// `metadata`), in the order received.
    pub metadata: Vec<(String, String)>,
    message_count: u32,
    messages: MessageSource<'a>,
}

impl<'a> Request<'a> {
    pub(crate) fn from_host(request: wit::Request, messages: &'a wit::Messages) -> Self {
        Request {
            id: request.id,
            endpoint: request.endpoint.into(),
            model: request.model,
            input_tokens: request.input_tokens,
            max_output_tokens: request.max_output_tokens,
            stream: request.stream,
            has_tools: request.has_tools,
            metadata: request.metadata,
            message_count: request.message_count,
            messages: MessageSource::Host(messages),
        }
    }

    /// The first value of metadata `key`, if present.
    pub fn metadata(&self, key: &str) -> Option<&str> {
        self.metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of metadata `key`, in order.
    pub fn metadata_all<'s>(&'s self, key: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.metadata
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Whether the request carries routing tag `tag`: a `tag` metadata entry whose
    /// comma-separated values include it (so `x-signalbox-tag: code, eu` has both).
    pub fn has_tag(&self, tag: &str) -> bool {
        self.metadata_all("tag")
            .flat_map(|v| v.split(','))
            .any(|t| t.trim() == tag)
    }

    /// Tokens the request may need in total: input plus the output budget, with
    /// `default_output` standing in when the client set no budget.
    pub fn total_tokens(&self, default_output: u32) -> u32 {
        self.input_tokens
            .saturating_add(self.max_output_tokens.unwrap_or(default_output))
    }

    /// Number of messages.
    pub fn message_count(&self) -> u32 {
        self.message_count
    }

    /// The role of message `index`, or `None` when out of range.
    pub fn message_role(&self, index: u32) -> Option<Role> {
        match &self.messages {
            MessageSource::Host(m) => m.role(index).map(Role::from),
            MessageSource::Local(v) => v.get(index as usize).map(|(r, _)| *r),
        }
    }

    /// The text of message `index`, or `None` when out of range. Copies the text.
    pub fn message_text(&self, index: u32) -> Option<String> {
        match &self.messages {
            MessageSource::Host(m) => m.text(index),
            MessageSource::Local(v) => v.get(index as usize).map(|(_, t)| t.clone()),
        }
    }

    /// The size in bytes of message `index`'s text, without copying it.
    pub fn message_len(&self, index: u32) -> Option<u32> {
        match &self.messages {
            MessageSource::Host(m) => m.text_len(index),
            MessageSource::Local(v) => v.get(index as usize).map(|(_, t)| t.len() as u32),
        }
    }

    /// The text of the last `user` message, or `None` when there is none. Copies it.
    pub fn last_user_text(&self) -> Option<String> {
        match &self.messages {
            MessageSource::Host(m) => m.last_user_text(),
            MessageSource::Local(v) => v
                .iter()
                .rev()
                .find(|(r, _)| *r == Role::User)
                .map(|(_, t)| t.clone()),
        }
    }
}

impl std::fmt::Debug for Request<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &self.id)
            .field("endpoint", &self.endpoint)
            .field("model", &self.model)
            .field("input_tokens", &self.input_tokens)
            .field("max_output_tokens", &self.max_output_tokens)
            .field("stream", &self.stream)
            .field("has_tools", &self.has_tools)
            .field("metadata", &self.metadata)
            .field("message_count", &self.message_count)
            .finish_non_exhaustive()
    }
}

/// Builds a [`Request`] in memory, for native tests of a policy.
///
/// ```
/// use signalbox_sdk::RequestBuilder;
/// let req = RequestBuilder::chat("gpt-4o").system("Be brief.").user("Hello!").tag("code").build();
/// assert_eq!(req.message_count(), 2);
/// assert!(req.has_tag("code"));
/// assert_eq!(req.last_user_text().as_deref(), Some("Hello!"));
/// ```
#[derive(Debug, Clone)]
pub struct RequestBuilder {
    id: String,
    endpoint: Endpoint,
    model: String,
    input_tokens: Option<u32>,
    max_output_tokens: Option<u32>,
    stream: bool,
    has_tools: bool,
    metadata: Vec<(String, String)>,
    messages: Vec<(Role, String)>,
}

impl RequestBuilder {
    /// A chat request for `model` with no messages yet.
    pub fn chat(model: impl Into<String>) -> Self {
        RequestBuilder {
            id: "req-test".into(),
            endpoint: Endpoint::Chat,
            model: model.into(),
            input_tokens: None,
            max_output_tokens: None,
            stream: false,
            has_tools: false,
            metadata: Vec::new(),
            messages: Vec::new(),
        }
    }

    /// Sets the endpoint.
    pub fn endpoint(mut self, endpoint: Endpoint) -> Self {
        self.endpoint = endpoint;
        self
    }

    /// Sets the request id.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = id.into();
        self
    }

    /// Appends a message.
    pub fn message(mut self, role: Role, text: impl Into<String>) -> Self {
        self.messages.push((role, text.into()));
        self
    }

    /// Appends a system message.
    pub fn system(self, text: impl Into<String>) -> Self {
        self.message(Role::System, text)
    }

    /// Appends a user message.
    pub fn user(self, text: impl Into<String>) -> Self {
        self.message(Role::User, text)
    }

    /// Appends an assistant message.
    pub fn assistant(self, text: impl Into<String>) -> Self {
        self.message(Role::Assistant, text)
    }

    /// Overrides the input-token estimate (by default, [`estimate_tokens`] of all
    /// message text plus 4 per message, as the host estimates).
    ///
    /// [`estimate_tokens`]: crate::estimate_tokens
    pub fn input_tokens(mut self, tokens: u32) -> Self {
        self.input_tokens = Some(tokens);
        self
    }

    /// Sets the output budget.
    pub fn max_output_tokens(mut self, tokens: u32) -> Self {
        self.max_output_tokens = Some(tokens);
        self
    }

    /// Marks the request as streamed.
    pub fn stream(mut self, stream: bool) -> Self {
        self.stream = stream;
        self
    }

    /// Marks the request as offering tools.
    pub fn has_tools(mut self, has_tools: bool) -> Self {
        self.has_tools = has_tools;
        self
    }

    /// Adds a metadata pair (the key is lower-cased, as the host does).
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.metadata
            .push((key.into().to_ascii_lowercase(), value.into()));
        self
    }

    /// Adds a routing tag (metadata `tag`).
    pub fn tag(self, tag: impl Into<String>) -> Self {
        self.metadata("tag", tag)
    }

    /// Finishes the request.
    pub fn build(self) -> Request<'static> {
        let estimated = self
            .messages
            .iter()
            .map(|(_, t)| crate::estimate_tokens(t).saturating_add(4))
            .fold(0u32, u32::saturating_add);
        Request {
            id: self.id,
            endpoint: self.endpoint,
            model: self.model,
            input_tokens: self.input_tokens.unwrap_or(estimated),
            max_output_tokens: self.max_output_tokens,
            stream: self.stream,
            has_tools: self.has_tools,
            metadata: self.metadata,
            message_count: self.messages.len() as u32,
            messages: MessageSource::Local(self.messages),
        }
    }
}
