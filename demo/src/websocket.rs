//! `/ws`: a WebSocket echo. Every text or binary message comes back as it was sent; a close is
//! answered with a close.

use std::convert::Infallible;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::header::{CONNECTION, SEC_WEBSOCKET_ACCEPT, SEC_WEBSOCKET_KEY, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Message, Role};

/// Switches to WebSocket and echoes, or answers 400 to a request that did not ask to switch.
pub fn echo(mut req: Request<Incoming>, name: &str) -> Response<BoxBody<Bytes, Infallible>> {
    let asks = req
        .headers()
        .get(UPGRADE)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"websocket"));
    let Some(key) = req.headers().get(SEC_WEBSOCKET_KEY).filter(|_| asks) else {
        return Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .header("x-backend", name)
            .body(Empty::new().boxed())
            .expect("a static answer");
    };
    let accept = derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut ws =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        while let Some(Ok(message)) = ws.next().await {
            let echoed = match message {
                Message::Text(_) | Message::Binary(_) => message,
                Message::Close(_) => break,
                _ => continue,
            };
            if ws.send(echoed).await.is_err() {
                return;
            }
        }
        let _ = ws.close(None).await;
    });
    Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(UPGRADE, "websocket")
        .header(CONNECTION, "Upgrade")
        .header(SEC_WEBSOCKET_ACCEPT, accept)
        .header("x-backend", name)
        .body(Empty::new().boxed())
        .expect("a static answer")
}
