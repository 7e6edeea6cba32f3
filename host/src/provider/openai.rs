//! Any OpenAI-compatible server (OpenAI, vLLM, llama.cpp, Ollama, Groq…), Azure OpenAI
//! among them at its own URLs: the body goes up with only `model` rewritten, and the
//! answer comes back byte for byte.

use super::{Attempt, AttemptKind, HttpsClient, UpstreamBody, UpstreamError, post_json};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// What must be escaped in a URL path segment (a deployment name).
const PATH_SEGMENT: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'/')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');
/// What must be escaped in a query value.
const QUERY_VALUE: &AsciiSet = &PATH_SEGMENT.add(b'&').add(b'=').add(b'+');

/// Where an Azure OpenAI deployment answers.
pub(super) struct AzureSite<'a> {
    /// The resource's URL, e.g. `https://my-resource.openai.azure.com`.
    pub base: &'a str,
    /// The `api-version` of deployment URLs; `None` for the v1 API.
    pub api_version: Option<&'a str>,
    /// The deployment (the target's upstream model).
    pub deployment: &'a str,
    /// The secret is a Microsoft Entra token, not an `api-key`.
    pub entra: bool,
}

pub(super) struct OpenAi {
    client: HttpsClient,
    chat_url: String,
    embeddings_url: String,
    /// The Responses API, for a provider of that kind.
    responses_url: String,
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
            responses_url: format!("{base}/responses"),
            headers: key
                .map(|k| vec![("authorization", format!("Bearer {k}"))])
                .unwrap_or_default(),
        })
    }

    /// Azure OpenAI at `site`: the deployment's URLs with their `api-version`, or the
    /// v1 API; `key` sent as `api-key`, or as a bearer token when it is an Entra
    /// token.
    pub fn azure(client: HttpsClient, site: &AzureSite<'_>, key: Option<&str>) -> Self {
        let base = site.base.trim_end_matches('/');
        let url = |operation: &str| match site.api_version {
            Some(version) => format!(
                "{base}/openai/deployments/{}/{operation}?api-version={}",
                utf8_percent_encode(site.deployment, PATH_SEGMENT),
                utf8_percent_encode(version, QUERY_VALUE),
            ),
            None => format!("{base}/openai/v1/{operation}"),
        };
        let headers = match (key, site.entra) {
            (Some(token), true) => vec![("authorization", format!("Bearer {token}"))],
            (Some(key), false) => vec![("api-key", key.to_owned())],
            (None, _) => Vec::new(),
        };
        OpenAi {
            client,
            chat_url: url("chat/completions"),
            embeddings_url: url("embeddings"),
            responses_url: url("responses"),
            headers,
        }
    }

    /// A Responses request as the client wrote it, only `model` replaced; the answer
    /// comes back untouched.
    pub async fn send_responses(
        &self,
        model: &str,
        attempt: Attempt<'_>,
    ) -> Result<http::Response<UpstreamBody>, UpstreamError> {
        let body = attempt.body.with_model(model);
        post_json(&self.client, &self.responses_url, &self.headers, body).await
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
