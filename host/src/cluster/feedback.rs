//! Feedback that reaches a replica other than the one that decided: each replica
//! remembers only its own decisions (request ids name the process that made them), so
//! the replica that receives the score puts it in the deciding replica's mailbox in
//! Redis, and that replica hands it to the policy version that decided.
//!
//! In Redis: `…:feedback:<origin>` (a list, origin being the request id's process
//! prefix), capped at [`MAILBOX`] entries and expiring an hour after its last use, so
//! the mailbox of a replica that stopped does not stay.

use super::Cluster;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Most scores waiting for one replica; older ones are dropped first.
const MAILBOX: isize = 10_000;

/// How often a replica empties its mailbox.
pub(crate) const POLL: Duration = Duration::from_millis(100);

/// Most scores taken per poll.
const TAKE: usize = 500;

/// A score on its way to the replica that decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ForwardedFeedback {
    /// The tenant that sent it (the deciding replica checks it is the request's).
    pub tenant: String,
    /// The request scored.
    pub request_id: String,
    /// The score in `[0, 1]`.
    pub score: f64,
}

impl Cluster {
    fn mailbox(&self, origin: u32) -> String {
        format!("{}:feedback:{origin:08x}", self.prefix())
    }

    /// Puts `feedback` in the mailbox of the replica `origin` (bounded by the timeout,
    /// like every call on a request's path).
    pub async fn forward_feedback(
        &self,
        origin: u32,
        feedback: &ForwardedFeedback,
    ) -> Result<(), super::ClusterError> {
        let key = self.mailbox(origin);
        let json = serde_json::to_string(feedback).unwrap_or_default();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .rpush(&key, json)
            .ignore()
            .ltrim(&key, -MAILBOX, -1)
            .ignore()
            .expire(&key, 3600)
            .ignore();
        self.call("feedback_forward", async |c| {
            pipe.query_async::<()>(c).await
        })
        .await
    }

    /// Takes up to [`TAKE`] scores from the mailbox of the replica whose request ids
    /// carry `origin` (this one's), oldest first.
    pub async fn take_feedback(
        &self,
        origin: u32,
    ) -> Result<Vec<ForwardedFeedback>, super::ClusterError> {
        let key = self.mailbox(origin);
        let items: Option<Vec<String>> = self
            .call_within("feedback_take", POLL, async |c| {
                redis::cmd("LPOP").arg(&key).arg(TAKE).query_async(c).await
            })
            .await?;
        Ok(items
            .unwrap_or_default()
            .iter()
            .filter_map(|item| serde_json::from_str(item).ok())
            .collect())
    }
}
