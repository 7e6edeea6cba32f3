//! Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, Groq…): the body goes
//! up with only `model` rewritten, and the answer comes back byte for byte.

use super::{Attempt, AttemptKind, HttpsClient, UpstreamBody, UpstreamError, post_json};

pub(super) struct OpenAi {
    client: HttpsClient,
    chat_url: String,
    embeddings_url: String,
    headers: Vec<(&'static str, String)>,
}

impl OpenAi {
    pub fn new(
        client: HttpsClient,
        base_url: &str,
        key: Option<&str>,
    ) -> Result<Self, UpstreamError> {
        let base = base_url.trim_end_matches('/');
        Ok(OpenAi {
            client,
            chat_url: format!("{base}/chat/completions"),
            embeddings_url: format!("{base}/embeddings"),
            headers: key
                .map(|k| vec![("authorization", format!("Bearer {k}"))])
                .unwrap_or_default(),
        })
    }

    pub async fn send(
        &self,
        model: &str,
        attempt: Attempt<'_>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        let url = match attempt.kind {
            AttemptKind::Chat => &self.chat_url,
            AttemptKind::Embeddings => &self.embeddings_url,
        };
        let body = if attempt.logprobs {
            attempt.body.with_model_and(model, "logprobs", "true")
        } else {
            attempt.body.with_model(model)
        };
        post_json(&self.client, url, &self.headers, body).await
    }
}
