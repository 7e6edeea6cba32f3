//! Azure OpenAI upstreams: the OpenAI API at a resource's own URLs — per deployment
//! with an `api-version`, or the v1 API — authenticated by `api-key` or by a Microsoft
//! Entra bearer token, for chat (whole and streamed), embeddings, and Messages clients
//! (translated).

use crate::fake_upstream::{FakeUpstream, Reply as Upstream, Wire};
use crate::gateway_support::*;
use serde_json::json;

/// A gateway whose one provider is Azure at `up`, with `extra` provider settings, and
/// targets `gpt` (deployment `gpt-4o-prod`) and `embed`.
async fn gateway(up: &FakeUpstream, extra: &str, secret: &str) -> TestGateway {
    let toml = config(
        &[("azure", "azure", &up.url())],
        &[("gpt", "azure", "gpt"), ("embed", "azure", "embed")],
        "",
    )
    .replace(
        "upstream_model = \"gpt-upstream\"",
        "upstream_model = \"gpt-4o-prod\"",
    )
    .replace("kind = \"azure\"\n", &format!("kind = \"azure\"\n{extra}"))
    .replace("api_key_env = \"TEST_KEY\"", secret);
    TestGateway::start(&toml).await
}

fn chat_body(stream: bool) -> Vec<u8> {
    json!({"model": "gpt", "stream": stream, "messages": [{"role": "user", "content": "Hello"}]})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn deployments_are_called_at_their_urls_with_their_api_version_and_key() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    up.set_default(Upstream::ok().text("Hello from Azure"));
    let gw = gateway(
        &up,
        "api_version = \"2024-10-21\"\n",
        "api_key_env = \"TEST_KEY\"",
    )
    .await;

    let reply = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(&chat_body(false)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(
        reply.json()["choices"][0]["message"]["content"],
        "Hello from Azure"
    );
    assert_eq!(reply.json()["model"], "gpt");
    let reply = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(&chat_body(true)),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(streamed_text(&reply.text()), "Hello from Azure");
    let embed = json!({"model": "embed", "input": "hello"}).to_string();
    let reply = send(
        "POST",
        &gw.url("/v1/embeddings"),
        Some(KEY),
        Some(embed.as_bytes()),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let requests = up.requests();
    assert_eq!(
        requests[0].path,
        "/openai/deployments/gpt-4o-prod/chat/completions"
    );
    assert_eq!(requests[0].query.as_deref(), Some("api-version=2024-10-21"));
    assert_eq!(requests[0].header("api-key"), Some("upstream-secret"));
    assert_eq!(
        requests[0].header("authorization"),
        None,
        "the key goes in api-key only"
    );
    assert_eq!(
        requests[1].path,
        "/openai/deployments/gpt-4o-prod/chat/completions"
    );
    assert_eq!(
        requests[2].path,
        "/openai/deployments/embed-upstream/embeddings"
    );
    assert_eq!(requests[2].query.as_deref(), Some("api-version=2024-10-21"));
}

#[tokio::test]
async fn the_v1_api_and_an_entra_token() {
    let up = FakeUpstream::start(Wire::OpenAi).await;
    up.set_default(Upstream::ok().text("Hello from Azure"));
    let gw = gateway(&up, "", "entra_token_env = \"TEST_KEY\"").await;
    let reply = send(
        "POST",
        &gw.url("/v1/chat/completions"),
        Some(KEY),
        Some(&chat_body(false)),
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // A Messages client, translated to chat for Azure.
    let body = json!({"model": "gpt", "max_tokens": 32, "messages": [{"role": "user", "content": "Hello"}]});
    let reply = send_with(
        "POST",
        &gw.url("/v1/messages"),
        None,
        Some(body.to_string().as_bytes()),
        &[("x-api-key", KEY)],
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.json()["content"][0]["text"], "Hello from Azure");

    let requests = up.requests();
    for r in &requests {
        assert_eq!(r.path, "/openai/v1/chat/completions");
        assert_eq!(r.query, None);
        assert_eq!(r.header("authorization"), Some("Bearer upstream-secret"));
        assert_eq!(r.header("api-key"), None);
        assert_eq!(r.body["model"], "gpt-4o-prod");
    }
}

#[test]
fn azure_settings_are_checked() {
    let parse = |provider: &str| {
        let toml = format!(
            "[[providers]]\nname = \"p\"\n{provider}\n\n[[targets]]\nid = \"t\"\nprovider = \"p\"\nmodel = \"m\"\n\n[[tenants]]\nid = \"a\"\nkey_hashes = [\"sha256:{}\"]\nsafe_route = [\"t\"]\n",
            "0".repeat(64)
        );
        signalbox::config::Config::parse(&toml, "t.toml", std::path::Path::new("."), &|_| {
            Some("secret".to_owned())
        })
        .map(|_| ())
        .map_err(|e| e.to_string())
    };
    let azure = "kind = \"azure\"\nbase_url = \"https://r.openai.azure.com\"";
    assert_eq!(parse(&format!("{azure}\napi_key_env = \"K\"")), Ok(()));
    let both = parse(&format!(
        "{azure}\napi_key_env = \"K\"\nentra_token_env = \"T\""
    ))
    .unwrap_err();
    assert!(both.contains("not both"), "{both}");
    let misplaced =
        parse("kind = \"openai\"\nbase_url = \"https://x\"\napi_version = \"2024-10-21\"")
            .unwrap_err();
    assert!(
        misplaced.contains("api_version") && misplaced.contains("azure"),
        "{misplaced}"
    );
    let no_url = parse("kind = \"azure\"").unwrap_err();
    assert!(no_url.contains("base_url"), "{no_url}");
}
