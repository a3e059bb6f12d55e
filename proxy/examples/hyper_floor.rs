//! The floor under frontdesk's engine: hyper's HTTP/1.1 server in front of hyper's HTTP/1.1
//! client connections (one pool per process, LIFO, no routing, no policy, no metrics), on one
//! current-thread runtime. `make bench` runs it as the contender `hyper-floor`: the CPU it
//! spends per request is what any proxy built on hyper's HTTP/1 machinery pays before doing
//! anything of its own.
//!
//!     hyper_floor LISTEN_ADDR BACKEND_ADDR
#![allow(clippy::disallowed_types, clippy::disallowed_methods)]

use std::cell::RefCell;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::rc::Rc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::BodyExt;
use http_body_util::combinators::BoxBody;
use hyper::body::Incoming;
use hyper::client::conn::http1::{self, SendRequest};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

type Pool = Rc<RefCell<Vec<SendRequest<Incoming>>>>;

fn main() {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args.next().expect("LISTEN_ADDR").parse().unwrap();
    let backend: SocketAddr = args.next().expect("BACKEND_ADDR").parse().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, async move {
        let listener = TcpListener::bind(listen).await.unwrap();
        let pool: Pool = Rc::default();
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let _ = stream.set_nodelay(true);
            let pool = pool.clone();
            tokio::task::spawn_local(async move {
                let service = service_fn(move |req| forward(req, backend, pool.clone()));
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}

async fn forward(
    req: Request<Incoming>,
    backend: SocketAddr,
    pool: Pool,
) -> Result<Response<BoxBody<Bytes, hyper::Error>>, Infallible> {
    let idle = pool.borrow_mut().pop().filter(|s| s.is_ready());
    let mut sender = match idle {
        Some(s) => s,
        None => {
            let stream = TcpStream::connect(backend).await.unwrap();
            let _ = stream.set_nodelay(true);
            let (sender, conn) = http1::handshake(TokioIo::new(stream)).await.unwrap();
            tokio::task::spawn_local(conn);
            sender
        }
    };
    let resp = sender.send_request(req).await.unwrap();
    let (head, body) = resp.into_parts();
    // Good enough for a floor: small bodies arrive with their headers.
    let body = body.collect().await.unwrap().to_bytes();
    pool.borrow_mut().push(sender);
    Ok(Response::from_parts(
        head,
        http_body_util::Full::new(body)
            .map_err(|never| match never {})
            .boxed(),
    ))
}
