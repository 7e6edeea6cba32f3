//! The gateway over HTTPS: certificates made at test time by a throwaway CA, clients
//! that trust only that CA, and a certificate replaced while a connection stays open.

use crate::fake_upstream::{FakeUpstream, Wire};
use crate::gateway_support::*;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use signalbox::config::Config;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A certificate authority that exists for one test.
pub(crate) struct Authority {
    cert: CertificateDer<'static>,
    pub(crate) cert_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

/// A leaf certificate chain and its key, as PEM.
pub(crate) struct Leaf {
    pub(crate) chain_pem: String,
    pub(crate) key_pem: String,
}

impl Authority {
    pub(crate) fn new(name: &str) -> Authority {
        let mut params = CertificateParams::default();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Authority {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for `localhost` and 127.0.0.1; the chain ends with this CA.
    pub(crate) fn leaf(&self) -> Leaf {
        self.signed("localhost", ExtendedKeyUsagePurpose::ServerAuth)
    }

    /// A client certificate (for mutual TLS); the chain ends with this CA.
    pub(crate) fn client_leaf(&self) -> Leaf {
        self.signed("signalbox", ExtendedKeyUsagePurpose::ClientAuth)
    }

    fn signed(&self, name: &str, usage: ExtendedKeyUsagePurpose) -> Leaf {
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.extended_key_usages = vec![usage];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain_pem: format!("{}{}", cert.pem(), self.cert_pem),
            key_pem: key.serialize_pem(),
        }
    }

    /// A client configuration trusting this CA and nothing else, offering `alpn`.
    pub(crate) fn client_config(&self, alpn: &[&[u8]]) -> rustls::ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.cert.clone()).unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config
    }

    /// A fresh client (its own connection pool) trusting only this CA.
    fn client(&self, alpn: &[&[u8]]) -> Client<HttpsConnector<HttpConnector>, Full<Bytes>> {
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        let connector = HttpsConnector::from((http, self.client_config(alpn)));
        Client::builder(TokioExecutor::new()).build(connector)
    }
}

const H2_AND_H1: &[&[u8]] = &[b"h2", b"http/1.1"];
const H1_ONLY: &[&[u8]] = &[b"http/1.1"];

/// The directory holding the gateway's certificate files.
struct CertDir {
    dir: tempfile::TempDir,
}

impl CertDir {
    fn with(leaf: &Leaf) -> CertDir {
        let certs = CertDir {
            dir: tempfile::tempdir().unwrap(),
        };
        certs.install(leaf);
        certs
    }

    fn cert_file(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    fn key_file(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// Replaces both files the way deployment tools do: write aside, then rename over.
    fn install(&self, leaf: &Leaf) {
        replace(&self.cert_file(), &leaf.chain_pem);
        replace(&self.key_file(), &leaf.key_pem);
    }

    /// The `[server.tls]` section naming these files.
    fn section(&self) -> String {
        tls_section(&self.cert_file(), &self.key_file())
    }
}

fn replace(path: &Path, content: &str) {
    let staged = path.with_extension("staged");
    std::fs::write(&staged, content).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

fn tls_section(cert: &Path, key: &Path) -> String {
    // TOML literal strings: a path is taken as written.
    format!(
        "[server.tls]\ncert_file = '{}'\nkey_file = '{}'\n",
        cert.display(),
        key.display()
    )
}

async fn tls_gateway(upstream: &FakeUpstream, certs: &CertDir) -> TestGateway {
    let toml = config(
        &[("up", "openai", &format!("{}/v1", upstream.url()))],
        &[("t", "up", "m")],
        &certs.section(),
    );
    TestGateway::start(&toml).await
}

fn hello() -> Value {
    json!({"model": "m", "messages": [{"role": "user", "content": "Hello"}]})
}

fn chat_request(uri: &str) -> http::Request<Full<Bytes>> {
    http::Request::post(uri)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(hello().to_string())))
        .unwrap()
}

/// Status, protocol version and the parsed body of a chat completion.
async fn chat_over(
    client: &Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    gw: &TestGateway,
) -> Result<(u16, http::Version, Value), hyper_util::client::legacy::Error> {
    let response = client
        .request(chat_request(&gw.url("/v1/chat/completions")))
        .await?;
    let (parts, body) = response.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    Ok((
        parts.status.as_u16(),
        parts.version,
        serde_json::from_slice(&body).unwrap_or(Value::Null),
    ))
}

#[tokio::test]
async fn chat_completes_over_http1_and_http2() {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let ca = Authority::new("Signalbox test CA");
    let certs = CertDir::with(&ca.leaf());
    let gw = tls_gateway(&upstream, &certs).await;
    assert!(gw.url("/").starts_with("https://"));

    let (status, version, body) = chat_over(&ca.client(H1_ONLY), &gw).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(version, http::Version::HTTP_11);
    assert_eq!(body["object"], "chat.completion");

    // Offered both, the server picks HTTP/2.
    let (status, version, body) = chat_over(&ca.client(H2_AND_H1), &gw).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(version, http::Version::HTTP_2);
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(upstream.hits(), 2);
}

#[tokio::test]
async fn plain_http_clients_get_no_answer() {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let ca = Authority::new("Signalbox test CA");
    let certs = CertDir::with(&ca.leaf());
    let gw = tls_gateway(&upstream, &certs).await;
    let plain = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let url = format!("http://{}/v1/chat/completions", gw.addr);
    let outcome = tokio::time::timeout(Duration::from_secs(5), plain.request(chat_request(&url)))
        .await
        .expect("the server hangs up on a plain HTTP request");
    assert!(outcome.is_err(), "plain HTTP got an answer");
    assert_eq!(upstream.hits(), 0);
}

#[tokio::test]
async fn a_client_that_never_finishes_its_handshake_holds_up_no_one() {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let ca = Authority::new("Signalbox test CA");
    let certs = CertDir::with(&ca.leaf());
    let gw = tls_gateway(&upstream, &certs).await;
    // Connected, silent: the server waits for a ClientHello that never comes.
    let _silent = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let outcome = tokio::time::timeout(Duration::from_secs(3), chat_over(&ca.client(H1_ONLY), &gw))
        .await
        .expect("a silent client held up the next one");
    assert_eq!(outcome.unwrap().0, 200);
}

/// An HTTP/1.1 connection over TLS that stays open across requests.
async fn open_connection(
    ca: &Authority,
    gw: &TestGateway,
) -> hyper::client::conn::http1::SendRequest<Full<Bytes>> {
    let connector = tokio_rustls::TlsConnector::from(Arc::new(ca.client_config(H1_ONLY)));
    let tcp = tokio::net::TcpStream::connect(gw.addr).await.unwrap();
    let server_name = ServerName::try_from("127.0.0.1").unwrap();
    let tls = connector.connect(server_name, tcp).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    sender
}

async fn chat_on(
    sender: &mut hyper::client::conn::http1::SendRequest<Full<Bytes>>,
    gw: &TestGateway,
) -> u16 {
    sender.ready().await.unwrap();
    let mut request = chat_request("/v1/chat/completions");
    request
        .headers_mut()
        .insert("host", gw.addr.to_string().parse().unwrap());
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    // Read to the end so the connection is ready for the next request.
    response.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn replaced_certificate_files_serve_new_connections_and_spare_open_ones() {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let first_ca = Authority::new("Signalbox test CA 1");
    let second_ca = Authority::new("Signalbox test CA 2");
    let certs = CertDir::with(&first_ca.leaf());
    let gw = tls_gateway(&upstream, &certs).await;

    let mut kept_open = open_connection(&first_ca, &gw).await;
    assert_eq!(chat_on(&mut kept_open, &gw).await, 200);
    assert!(
        chat_over(&second_ca.client(H2_AND_H1), &gw).await.is_err(),
        "the second CA is trusted before the switch"
    );

    certs.install(&second_ca.leaf());
    let started = Instant::now();
    loop {
        if chat_over(&second_ca.client(H2_AND_H1), &gw).await.is_ok() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the new certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(
        chat_over(&first_ca.client(H2_AND_H1), &gw).await.is_err(),
        "new connections still get the old certificate"
    );
    let (status, _, body) = chat_over(&second_ca.client(H1_ONLY), &gw).await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        chat_on(&mut kept_open, &gw).await,
        200,
        "the connection opened before the reload"
    );
}

#[tokio::test]
async fn a_broken_replacement_keeps_the_current_certificate() {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let first_ca = Authority::new("Signalbox test CA 1");
    let second_ca = Authority::new("Signalbox test CA 2");
    let certs = CertDir::with(&first_ca.leaf());
    let gw = tls_gateway(&upstream, &certs).await;

    // A new chain with the old key: refused, the old pair stays in service.
    replace(&certs.cert_file(), &second_ca.leaf().chain_pem);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (status, _, _) = chat_over(&first_ca.client(H2_AND_H1), &gw).await.unwrap();
    assert_eq!(status, 200);

    // Its key arrives: now the pair is whole and loads.
    let leaf = second_ca.leaf();
    certs.install(&leaf);
    let started = Instant::now();
    while chat_over(&second_ca.client(H2_AND_H1), &gw).await.is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the repaired certificate was not picked up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn parse(toml: &str, base: &Path) -> Config {
    Config::parse(toml, "test.toml", base, &|_| Some("k".into())).unwrap()
}

fn sim_config(extra: &str) -> String {
    config(
        &[("up", "openai", "http://127.0.0.1:9/v1")],
        &[("t", "up", "m")],
        extra,
    )
}

/// The config only names the files; they are read when TLS starts, and that is where
/// a bad one stops start-up, naming the config key.
fn start_error(config: &Config) -> String {
    let section = config.server.tls.as_ref().unwrap();
    match signalbox::server::tls::TlsAcceptor::start(section) {
        Ok(_) => panic!("TLS started with bad files"),
        Err(e) => e.to_string(),
    }
}

#[test]
fn start_up_refuses_a_missing_key_file_naming_it() {
    let ca = Authority::new("Signalbox test CA");
    let certs = CertDir::with(&ca.leaf());
    let missing = certs.dir.path().join("missing-key.pem");
    let toml = sim_config(&tls_section(&certs.cert_file(), &missing));
    let text = start_error(&parse(&toml, Path::new(".")));
    assert!(
        text.starts_with("server.tls.key_file: cannot read"),
        "{text}"
    );
    assert!(text.contains("missing-key.pem"), "{text}");

    // `signalbox serve` stops there, naming the file, the key and the missing file.
    let path = certs.dir.path().join("test.toml");
    std::fs::write(&path, &toml).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_signalbox"))
        .args(["serve", "--config", path.to_str().unwrap()])
        .env("TEST_KEY", "k")
        .env_remove("RUST_LOG")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("test.toml: server.tls.key_file: cannot read"),
        "{stderr}"
    );
    assert!(stderr.contains("missing-key.pem"), "{stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("listening"));
}

#[test]
fn start_up_refuses_files_that_do_not_make_a_certificate() {
    let ca = Authority::new("Signalbox test CA");
    let leaf = ca.leaf();
    let other = ca.leaf();
    let certs = CertDir::with(&leaf);
    let dir = certs.dir.path();
    let write = |name: &str, content: &str| {
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        path
    };
    let other_key = write("other-key.pem", &other.key_pem);
    let no_cert = write("no-cert.pem", "nothing to see\n");

    let e = start_error(&parse(
        &sim_config(&tls_section(&certs.cert_file(), &other_key)),
        dir,
    ));
    assert!(e.starts_with("server.tls.key_file: "), "{e}");
    assert!(e.contains("does not belong"), "{e}");
    assert!(!e.contains("PRIVATE KEY-----"), "{e}");

    let e = start_error(&parse(
        &sim_config(&tls_section(&no_cert, &certs.key_file())),
        dir,
    ));
    assert!(e.starts_with("server.tls.cert_file: "), "{e}");
    assert!(e.contains("no PEM certificate"), "{e}");

    // The key where the certificate belongs: no certificate, and no key quoted.
    let e = start_error(&parse(
        &sim_config(&tls_section(&certs.key_file(), &certs.key_file())),
        dir,
    ));
    assert!(e.starts_with("server.tls.cert_file: "), "{e}");
    assert!(!e.contains(leaf.key_pem.lines().nth(1).unwrap()), "{e}");
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let ca = Authority::new("Signalbox test CA");
    let certs = CertDir::with(&ca.leaf());
    let toml = sim_config("[server.tls]\ncert_file = \"cert.pem\"\nkey_file = \"key.pem\"\n");
    let config = parse(&toml, certs.dir.path());
    let tls = config.server.tls.as_ref().unwrap();
    assert_eq!(tls.cert_file, certs.cert_file());
    assert_eq!(tls.key_file, certs.key_file());
    assert!(signalbox::server::tls::TlsAcceptor::start(tls).is_ok());
    // Elsewhere, the same relative names point at nothing.
    let e = start_error(&parse(&toml, Path::new("/nonexistent")));
    assert!(e.starts_with("server.tls.cert_file: cannot read"), "{e}");
}

#[tokio::test]
async fn the_admin_api_serves_https_with_its_own_certificate() {
    let upstream = FakeUpstream::start(Wire::OpenAi).await;
    let ca = Authority::new("Signalbox admin CA");
    let certs = CertDir::with(&ca.leaf());
    let token = "sb-admin-tls-operator";
    let hash = signalbox::tenancy::format_key_hash(&signalbox::tenancy::hash_key(token));
    let admin = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n[admin.tls]\ncert_file = '{}'\nkey_file = '{}'\n[[admin.tokens]]\nhash = \"{hash}\"\n",
        certs.cert_file().display(),
        certs.key_file().display()
    );
    let toml = config(
        &[("up", "openai", &format!("{}/v1", upstream.url()))],
        &[("t", "up", "m")],
        &admin,
    );
    let gw = TestGateway::start(&toml).await;
    let url = gw.admin_url("/admin/tenants/acme/policies");
    assert!(url.starts_with("https://"), "{url}");
    let request = http::Request::get(&url)
        .header("authorization", format!("Bearer {token}"))
        .body(Full::new(Bytes::new()))
        .unwrap();
    let response = ca.client(H2_AND_H1).request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), http::Version::HTTP_2);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let report: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(report["tenant"], "acme");
}
