//! `policies/guardrail` through the gateway: 1,000 randomized requests — prompts with
//! and without personal data of each kind, random metadata, approved targets healthy
//! and then failing — never put personal or regulated data on an unapproved target's
//! wire, and are refused with a clear 403 once no approved target is healthy.

use crate::fake_upstream::{FakeUpstream, Reply as UpstreamReply, Wire};
use crate::gateway_support::{KEY, TestGateway, send_with};
use crate::support::{engine, policy_check, wasm};
use serde_json::{Value, json};

fn component() -> std::path::PathBuf {
    wasm("signalbox_policy_guardrail")
}

/// Two public targets (not approved for anything) and two approved ones: `eu` for
/// personal data, `onprem` for personal and regulated data. The safe route is
/// approved too, so even a failing policy could not leak.
fn gateway_config(urls: [&str; 4]) -> String {
    let key = signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(KEY));
    let mut toml = String::from(
        "[server]\nlisten = \"127.0.0.1:0\"\nbreaker_failures = 2\nbreaker_cool_down_ms = 600000\n\n[engine]\ndeadline_ms = 50\n\n",
    );
    for ((id, price, tags), url) in [
        ("public-mini", (0.1, 0.2), "[]"),
        ("public-large", (5.0, 15.0), "[]"),
        ("eu", (0.2, 0.4), "[\"region:eu\"]"),
        ("onprem", (0.3, 0.6), "[\"self-hosted\"]"),
    ]
    .into_iter()
    .zip(urls)
    {
        toml += &format!(
            "[[providers]]\nname = \"{id}\"\nkind = \"openai\"\nbase_url = \"{url}/v1\"\napi_key_env = \"TEST_KEY\"\n\n\
             [[targets]]\nid = \"{id}\"\nprovider = \"{id}\"\nmodel = \"{id}-model\"\ninput_price = {}\noutput_price = {}\ncontext_window = 100000\ntags = {tags}\nfirst_byte_timeout_ms = 2000\n\n",
            price.0, price.1
        );
    }
    toml += &format!(
        r#"[[tenants]]
id = "acme"
key_hashes = ["{key}"]
policy = "{policy}"
safe_route = ["onprem"]

[tenants.policy_config]
detect = ["email", "phone", "card", "iban"]
strategy = "cost-quality"

[tenants.policy_config.approved]
pii = ["region:eu", "self-hosted"]
regulated = ["self-hosted"]

[tenants.policy_config.cost_quality]
tiers = {{ public-mini = 1, onprem = 2, eu = 2, public-large = 3 }}
"#,
        policy = component().display()
    );
    toml
}

/// A deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn digits(&mut self, n: usize) -> String {
        (0..n)
            .map(|_| char::from(b'0' + self.below(10) as u8))
            .collect()
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

fn luhn_valid(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            let d = u32::from(d);
            if i % 2 == 1 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A Luhn-valid card number of 13 to 19 digits, written contiguously or in groups of
/// four separated by spaces or dashes.
fn card(rng: &mut Rng) -> String {
    let len = 13 + rng.below(7);
    let mut digits: Vec<u8> = rng.digits(len).bytes().map(|b| b - b'0').collect();
    digits[0] = 4;
    let last = len - 1;
    while !luhn_valid(&digits) {
        digits[last] = (digits[last] + 1) % 10;
    }
    let number: String = digits.iter().map(|d| char::from(b'0' + d)).collect();
    group(rng, &number, &["", " ", "-"])
}

fn group(rng: &mut Rng, number: &str, separators: &[&str]) -> String {
    let sep = rng.pick(separators);
    number
        .as_bytes()
        .chunks(4)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect::<Vec<_>>()
        .join(sep)
}

/// A German IBAN with valid check digits.
fn iban(rng: &mut Rng) -> String {
    let bban = rng.digits(18);
    // Check digits: 98 − (BBAN, "DE", "00" as a number) mod 97.
    let mut r = 0u32;
    for c in format!("{bban}131400").bytes() {
        r = (r * 10 + u32::from(c - b'0')) % 97;
    }
    group(rng, &format!("DE{:02}{bban}", 98 - r), &["", " "])
}

fn pii(rng: &mut Rng, kind: usize) -> String {
    match kind {
        0 => card(rng),
        1 => format!(
            "client{}@corp{}.example.com",
            rng.below(1000),
            rng.below(10)
        ),
        2 => {
            if rng.below(2) == 0 {
                format!("+{} {} {}", 1 + rng.below(90), rng.digits(3), rng.digits(6))
            } else {
                format!("({}) {}-{}", rng.digits(3), rng.digits(3), rng.digits(4))
            }
        }
        _ => iban(rng),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_never_reaches_an_unapproved_target() {
    let ups = [
        FakeUpstream::start(Wire::OpenAi).await,
        FakeUpstream::start(Wire::OpenAi).await,
        FakeUpstream::start(Wire::OpenAi).await,
        FakeUpstream::start(Wire::OpenAi).await,
    ];
    let [public_mini, public_large, eu, onprem] = &ups;
    let urls = ups.each_ref().map(|u| u.url());
    let gw = TestGateway::start(&gateway_config(urls.each_ref().map(String::as_str))).await;

    let words = [
        "please",
        "summarise",
        "the",
        "invoice",
        "total",
        "fn",
        "main()",
        "step",
        "by",
        "compare",
        "refund",
        "thanks",
        "order",
        "ok",
        "prove",
        "why",
        "customer",
    ];
    let mut rng = Rng(0x5eed_1234_abcd);
    let mut secrets: Vec<String> = Vec::new();
    let mut regulated_marks: Vec<String> = Vec::new();
    let (mut refused, mut failed, mut served_sensitive) = (0, 0, 0);

    for i in 0..1_000 {
        if i == 600 {
            // The approved targets start failing: their circuits open after two
            // failures each, and from then on sensitive requests must be refused.
            eu.set_default(UpstreamReply::ok().status(500));
            onprem.set_default(UpstreamReply::ok().status(500));
        }
        let mark = format!("[r{i}]");
        let mut prompt = vec![mark.clone()];
        for _ in 0..1 + rng.below(12) {
            prompt.push(rng.pick(&words).to_owned());
        }
        let kind = rng.below(5);
        let secret = (kind < 4).then(|| pii(&mut rng, kind));
        let regulated = rng.below(6) == 0;
        let placement = rng.below(3);
        if let Some(s) = &secret {
            let at = 1 + rng.below(prompt.len());
            prompt.insert(at, s.clone());
            secrets.push(s.clone());
        }
        if regulated {
            regulated_marks.push(mark.clone());
        }
        let prompt = prompt.join(" ");
        let messages = match placement {
            0 => {
                json!([{"role": "system", "content": prompt}, {"role": "user", "content": "go on"}])
            }
            1 => {
                json!([{"role": "user", "content": prompt}, {"role": "assistant", "content": "ok"}, {"role": "user", "content": "and?"}])
            }
            _ => json!([{"role": "user", "content": prompt}]),
        };
        let mut body = json!({"model": "auto", "messages": messages});
        if rng.below(2) == 0 {
            body["user"] = json!(format!("u-{}", rng.below(50)));
        }
        if rng.below(3) == 0 {
            body["metadata"] = json!({"team": rng.pick(&["billing", "support", "data-class"])});
        }
        let mut headers: Vec<(&str, &str)> = Vec::new();
        if regulated {
            headers.push(("x-signalbox-data-class", "regulated"));
        } else if rng.below(5) == 0 {
            headers.push(("x-signalbox-data-class", "public"));
        }
        if rng.below(3) == 0 {
            headers.push((
                "x-signalbox-tag",
                rng.pick(&["code", "tier:3", "tier:1", "eu"]),
            ));
        }

        let r = send_with(
            "POST",
            &gw.url("/v1/chat/completions"),
            Some(KEY),
            Some(body.to_string().as_bytes()),
            &headers,
        )
        .await;
        let sensitive = secret.is_some() || regulated;
        let target = r.header("x-signalbox-target").to_owned();
        match r.status {
            200 => {
                if secret.is_some() {
                    assert!(["eu", "onprem"].contains(&target.as_str()), "{i}: {target}");
                }
                if regulated {
                    assert_eq!(target, "onprem", "{i}");
                }
                served_sensitive += usize::from(sensitive);
            }
            403 => {
                assert!(sensitive && i >= 600, "{i}: {}", r.text());
                let message = r.json()["error"]["message"].as_str().unwrap().to_owned();
                assert!(
                    message.contains("no target approved for it is healthy"),
                    "{message}"
                );
                let class = if secret.is_some() {
                    "personal data"
                } else {
                    "regulated"
                };
                assert!(message.contains(class), "{message}");
                if let Some(s) = &secret {
                    assert!(!message.contains(s.as_str()), "{message}");
                }
                refused += 1;
            }
            // While the approved targets fail but their circuits are not open yet,
            // every approved attempt fails; nothing else is tried.
            502..=504 => {
                assert!(sensitive && i >= 600, "{i}: {} {}", r.status, r.text());
                failed += 1;
            }
            other => panic!("{i}: unexpected {other}: {}", r.text()),
        }
        if !sensitive {
            assert_eq!(r.status, 200, "{i}: {}", r.text());
        }
    }

    assert!(served_sensitive > 300, "{served_sensitive}");
    assert!(refused > 200, "{refused}");
    eprintln!(
        "guardrail: {served_sensitive} sensitive requests served by approved targets, {refused} refused, {failed} failed while the circuits were closing; hits {:?}",
        ups.each_ref().map(FakeUpstream::hits)
    );
    assert!(
        failed <= 4,
        "{failed} requests failed before the circuits opened"
    );

    // The wire: no unapproved upstream ever received personal data, and `eu` never
    // received a regulated request.
    for (name, up) in [("public-mini", public_mini), ("public-large", public_large)] {
        assert!(
            up.hits() > 10,
            "{name} served ordinary traffic: {}",
            up.hits()
        );
        for req in up.requests() {
            let raw = String::from_utf8_lossy(&req.raw_body);
            for s in &secrets {
                assert!(!raw.contains(s.as_str()), "{name} received {s}");
            }
            for m in &regulated_marks {
                assert!(!raw.contains(m.as_str()), "{name} received regulated {m}");
            }
        }
    }
    for req in eu.requests() {
        let raw = String::from_utf8_lossy(&req.raw_body);
        for m in &regulated_marks {
            assert!(!raw.contains(m.as_str()), "eu received regulated {m}");
        }
    }
}

#[test]
fn the_example_config_passes_policy_check() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/policies/guardrail.json"
    );
    let config = std::fs::read_to_string(example).unwrap();
    let text = policy_check(&component(), &config);
    assert!(text.contains("(no rule; tier 2: code"), "{text}");
}

#[test]
fn a_broken_config_is_refused_at_activation_naming_the_field() {
    let policy = engine().load_file(&component()).unwrap();
    let targets = signalbox::policy::sample_targets();
    let example: Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../examples/policies/guardrail.json"
        ))
        .unwrap(),
    )
    .unwrap();
    let mut typo = example.clone();
    typo["approved"]["pii"] = json!(["region:eu", "on-prem"]);
    let mut kind = example.clone();
    kind["detect"] = json!(["card", "passport"]);
    let mut tier = example;
    tier["cost_quality"]["tiers"]["anthropic-opus"] = json!(5);
    for (config, needle) in [
        (
            typo,
            "`approved.pii[1]`: `on-prem` is neither the id nor a tag of any target",
        ),
        (kind, "detect[1]"),
        (
            tier,
            "`cost_quality.tiers.anthropic-opus`: no target has this id",
        ),
    ] {
        let err = policy
            .bind(
                signalbox::policy::TenantContext::new("acme"),
                &config.to_string(),
                targets.clone(),
            )
            .unwrap_err();
        assert_eq!(err.kind(), "bad_config", "{config}");
        assert!(err.to_string().contains(needle), "{config}: {err}");
    }
}
