//! A compiled rule and how it matches a request.

use signalbox_sdk::Request;

/// A condition on the last user message.
pub(crate) enum TextMatch {
    /// Any of these (already lower-cased) appears in the lower-cased text.
    Keywords(Vec<String>),
    /// The regex matches the text as sent.
    Regex(regex::Regex),
}

/// One rule, ready to match: everything the request is compared with was prepared at
/// activation (lower-cased keywords and metadata keys, compiled regex, target indices).
pub(crate) struct Rule {
    /// `rule:<name>`, the decision's reason.
    pub reason: String,
    /// Requested model equals one of these (empty: any).
    pub models: Vec<String>,
    /// Conditions on the last user message (all must hold).
    pub text: Vec<TextMatch>,
    /// Metadata key (lower case) = value pairs that must all be present.
    pub metadata: Vec<(String, String)>,
    pub min_tokens: u32,
    pub max_tokens: u32,
    pub has_tools: Option<bool>,
    pub stream: Option<bool>,
    /// Target indices, in the configured fallback order.
    pub targets: Vec<u32>,
}

impl Rule {
    /// The rule's name as configured (or its position).
    pub fn name(&self) -> &str {
        self.reason.strip_prefix("rule:").unwrap_or(&self.reason)
    }

    /// Whether the rule has no condition at all.
    pub fn is_catch_all(&self) -> bool {
        self.models.is_empty()
            && self.text.is_empty()
            && self.metadata.is_empty()
            && self.min_tokens == 0
            && self.max_tokens == u32::MAX
            && self.has_tools.is_none()
            && self.stream.is_none()
    }

    /// Whether every condition holds. Cheap conditions are checked first, so the
    /// message text is read only for rules that get that far.
    pub fn matches(&self, req: &Request<'_>, text: &mut UserText<'_, '_>) -> bool {
        if !self.models.is_empty() && !self.models.contains(&req.model) {
            return false;
        }
        if self.stream.is_some_and(|s| s != req.stream)
            || self.has_tools.is_some_and(|t| t != req.has_tools)
            || req.input_tokens < self.min_tokens
            || req.input_tokens > self.max_tokens
        {
            return false;
        }
        if !self
            .metadata
            .iter()
            .all(|(key, want)| metadata_has(req, key, want))
        {
            return false;
        }
        self.text.iter().all(|condition| match condition {
            TextMatch::Keywords(words) => text
                .lowered()
                .is_some_and(|t| words.iter().any(|w| t.contains(w.as_str()))),
            TextMatch::Regex(re) => text.raw().is_some_and(|t| re.is_match(t)),
        })
    }
}

/// Whether metadata `key` has a value equal to `want`, ignoring ASCII case; a value
/// with commas (`x-signalbox-tag: code, eu`) counts as several values.
fn metadata_has(req: &Request<'_>, key: &str, want: &str) -> bool {
    req.metadata_all(key)
        .flat_map(|v| v.split(','))
        .any(|v| v.trim().eq_ignore_ascii_case(want))
}

/// The last user message, read from the host at most once per request and lower-cased
/// at most once, whatever number of rules look at it.
pub(crate) struct UserText<'q, 'r> {
    req: &'q Request<'r>,
    /// Bytes looked at, from the start of the text.
    limit: usize,
    raw: Option<Option<String>>,
    lowered: Option<Option<String>>,
}

impl<'q, 'r> UserText<'q, 'r> {
    pub fn new(req: &'q Request<'r>, limit: usize) -> Self {
        UserText {
            req,
            limit,
            raw: None,
            lowered: None,
        }
    }

    /// The text as sent, up to the limit (cut at a character boundary); `None` when
    /// the request has no user message.
    pub fn raw(&mut self) -> Option<&str> {
        let (req, limit) = (self.req, self.limit);
        self.raw
            .get_or_insert_with(|| {
                req.last_user_text().map(|mut text| {
                    if text.len() > limit {
                        let mut end = limit;
                        while !text.is_char_boundary(end) {
                            end -= 1;
                        }
                        text.truncate(end);
                    }
                    text
                })
            })
            .as_deref()
    }

    /// The text lower-cased (Unicode-aware, like the keywords).
    pub fn lowered(&mut self) -> Option<&str> {
        if self.lowered.is_none() {
            let lowered = self.raw().map(|t| {
                if t.is_ascii() {
                    t.to_ascii_lowercase()
                } else {
                    t.to_lowercase()
                }
            });
            self.lowered = Some(lowered);
        }
        self.lowered.as_ref().and_then(|t| t.as_deref())
    }
}
