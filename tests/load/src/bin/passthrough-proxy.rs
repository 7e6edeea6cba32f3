//! The floor: a minimal hyper reverse proxy that forwards every request to one
//! upstream over a pooled connection and streams the answer back, doing nothing else
//! (no auth, no parsing, no policy). The gateway's overhead is measured against it.
//!
//! `passthrough-proxy --listen 127.0.0.1:9002 --upstream 127.0.0.1:9001`

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

type Body = BoxBody<Bytes, hyper::Error>;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = signalbox_load::arg("--listen", "127.0.0.1:9002")
        .parse()
        .map_err(|e| std::io::Error::other(format!("--listen: {e}")))?;
    let upstream = signalbox_load::arg("--upstream", "127.0.0.1:9001");
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, hyper::body::Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    signalbox_load::serve(addr, move |req: hyper::Request<hyper::body::Incoming>| {
        let client = client.clone();
        let upstream = upstream.clone();
        async move {
            let (mut parts, body) = req.into_parts();
            let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
            match format!("http://{upstream}{path}").parse() {
                Ok(uri) => parts.uri = uri,
                Err(_) => return bad_gateway(),
            }
            parts.headers.remove(hyper::header::HOST);
            match client
                .request(hyper::Request::from_parts(parts, body))
                .await
            {
                Ok(response) => response.map(|b| b.boxed()),
                Err(_) => bad_gateway(),
            }
        }
    })
    .await
}

fn bad_gateway() -> hyper::Response<Body> {
    let mut response = hyper::Response::new(
        http_body_util::Empty::new()
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = hyper::StatusCode::BAD_GATEWAY;
    response
}
