//! The demo's gRPC service (`demo/proto/catalog.proto`), over HTTP/2 on every demo backend:
//! `demo.Catalog` (GetProduct, ListProducts as a server stream, CreateProduct) and the standard
//! health service `grpc.health.v1.Health/Check`. Written with prost messages and hyper, no code
//! generation: the gRPC framing (a flag byte, a 4-byte length, the message) is a few lines.
//!
//! Answers carry `x-backend` like the demo's HTTP answers; `grpc-status` and `grpc-message`
//! come as trailers.

use std::convert::Infallible;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};

#[derive(Clone, PartialEq, prost::Message)]
pub struct GetProductRequest {
    #[prost(string, tag = "1")]
    pub id: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct ListProductsRequest {
    #[prost(int32, tag = "1")]
    pub limit: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct CreateProductRequest {
    #[prost(message, optional, tag = "1")]
    pub product: Option<Product>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Product {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(string, tag = "2")]
    pub name: String,
    #[prost(int64, tag = "3")]
    pub price_cents: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    pub service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HealthCheckResponse {
    /// 1: SERVING.
    #[prost(int32, tag = "1")]
    pub status: i32,
}

/// The catalog the service serves (the same products as the JSON endpoints).
pub fn catalog() -> Vec<Product> {
    [
        ("1", "Espresso machine", 24900),
        ("2", "Burr grinder", 12950),
        ("3", "Milk jug", 1990),
    ]
    .into_iter()
    .map(|(id, name, price_cents)| Product {
        id: id.into(),
        name: name.into(),
        price_cents,
    })
    .collect()
}

type Body = BoxBody<Bytes, Infallible>;

/// Whether `path` is one of the service's methods.
pub fn serves(path: &str) -> bool {
    path.starts_with("/demo.Catalog/") || path == "/grpc.health.v1.Health/Check"
}

/// Answers one call.
pub async fn handle(req: Request<Incoming>, backend: &str) -> Response<Body> {
    let path = req.uri().path().to_string();
    let message = match req.into_body().collect().await {
        Ok(body) => first_message(body.to_bytes()),
        Err(_) => None,
    };
    let Some(message) = message else {
        return answer(
            backend,
            Vec::new(),
            3,
            "the request is not one gRPC message",
            None,
        );
    };
    match path.as_str() {
        "/demo.Catalog/GetProduct" => {
            let Ok(asked) = <GetProductRequest as prost::Message>::decode(message) else {
                return answer(backend, Vec::new(), 3, "not a GetProductRequest", None);
            };
            match catalog().into_iter().find(|p| p.id == asked.id) {
                Some(p) => answer(backend, vec![frame(&p)], 0, "", None),
                None => answer(
                    backend,
                    Vec::new(),
                    5,
                    &format!("no product {:?}", asked.id),
                    None,
                ),
            }
        }
        "/demo.Catalog/ListProducts" => {
            let Ok(asked) = <ListProductsRequest as prost::Message>::decode(message) else {
                return answer(backend, Vec::new(), 3, "not a ListProductsRequest", None);
            };
            if asked.limit < 0 {
                // A status after the head, without a message: not Trailers-Only.
                return answer(backend, Vec::new(), 3, "limit must not be negative", None);
            }
            let limit = usize::try_from(asked.limit).unwrap_or(0);
            let products: Vec<Bytes> = catalog()
                .iter()
                .take(if limit == 0 { usize::MAX } else { limit })
                .map(frame)
                .collect();
            // One message every 20 ms: a stream, not one answer.
            answer(backend, products, 0, "", Some(Duration::from_millis(20)))
        }
        "/demo.Catalog/CreateProduct" => {
            match <CreateProductRequest as prost::Message>::decode(message) {
                Ok(CreateProductRequest {
                    product: Some(p), ..
                }) if !p.id.is_empty() => answer(backend, vec![frame(&p)], 0, "", None),
                _ => answer(
                    backend,
                    Vec::new(),
                    3,
                    "a product with an id is required",
                    None,
                ),
            }
        }
        "/grpc.health.v1.Health/Check" => {
            let serving = HealthCheckResponse { status: 1 };
            answer(backend, vec![frame(&serving)], 0, "", None)
        }
        _ => answer(backend, Vec::new(), 12, "no such method", None),
    }
}

/// The first length-prefixed message of a request body (uncompressed).
fn first_message(mut body: Bytes) -> Option<Bytes> {
    if body.len() < 5 || body[0] != 0 {
        return None;
    }
    body.advance(1);
    let len = body.get_u32() as usize;
    (body.len() >= len).then(|| body.split_to(len))
}

/// A message framed for the wire.
pub fn frame(message: &impl prost::Message) -> Bytes {
    let mut out = BytesMut::with_capacity(5 + message.encoded_len());
    out.put_u8(0);
    out.put_u32(message.encoded_len() as u32);
    message
        .encode(&mut out)
        .expect("a BytesMut grows as needed");
    out.freeze()
}

/// The answer: `messages` (one every `pace`), then the status as trailers.
fn answer(
    backend: &str,
    messages: Vec<Bytes>,
    status: u32,
    message: &str,
    pace: Option<Duration>,
) -> Response<Body> {
    let mut trailers = HeaderMap::new();
    trailers.insert("grpc-status", HeaderValue::from(status));
    if let Ok(m) = HeaderValue::from_str(message)
        && !message.is_empty()
    {
        trailers.insert("grpc-message", m);
    }
    let frames = messages
        .into_iter()
        .map(Frame::data)
        .chain(std::iter::once(Frame::trailers(trailers)));
    let stream = futures::stream::iter(frames).then(move |f| async move {
        if let Some(pace) = pace
            && f.is_data()
        {
            tokio::time::sleep(pace).await;
        }
        Ok::<_, Infallible>(f)
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    let headers = resp.headers_mut();
    headers.insert("content-type", HeaderValue::from_static("application/grpc"));
    if let Ok(b) = HeaderValue::from_str(backend) {
        headers.insert("x-backend", b);
    }
    resp
}

/// `frontdesk-demo grpc URL get ID | list`: calls the service at `URL` (the gateway, or a
/// backend) over HTTP/2 with prior knowledge, and prints what came back.
pub async fn call(args: &[String]) -> anyhow::Result<()> {
    let (url, path, message) = match args {
        [url, get, id] if get == "get" => (
            url,
            "/demo.Catalog/GetProduct",
            frame(&GetProductRequest { id: id.clone() }),
        ),
        [url, list] if list == "list" => (
            url,
            "/demo.Catalog/ListProducts",
            frame(&ListProductsRequest { limit: 0 }),
        ),
        _ => anyhow::bail!("usage: frontdesk-demo grpc URL get ID | list"),
    };
    let uri: http::Uri = url.parse()?;
    let authority = uri
        .authority()
        .ok_or_else(|| anyhow::anyhow!("{url} has no host:port"))?
        .clone();
    let tcp = tokio::net::TcpStream::connect(authority.as_str()).await?;
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await?;
    tokio::spawn(conn);
    let req = Request::post(format!("http://{authority}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(message))?;
    let resp = sender.send_request(req).await?;
    let head = resp.headers().clone();
    let body = resp.into_body().collect().await?;
    let trailers = body.trailers().cloned().unwrap_or_default();
    let mut data = body.to_bytes();
    while data.len() >= 5 {
        data.advance(1);
        let len = data.get_u32() as usize;
        let p = <Product as prost::Message>::decode(data.split_to(len.min(data.len())))?;
        println!(
            "{{\"id\": {:?}, \"name\": {:?}, \"priceCents\": {}}}",
            p.id, p.name, p.price_cents
        );
    }
    let status = |k: &str| {
        trailers
            .get(k)
            .or_else(|| head.get(k))
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    println!(
        "grpc-status: {} {}",
        status("grpc-status"),
        status("grpc-message")
    );
    Ok(())
}
