//! The direct-response action: a fixed status, body and content type, precompiled per rule.

use bytes::Bytes;
use frontdesk_snapshot as snap;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};

use crate::body::{ProxyBody, full};

pub struct Direct {
    status: StatusCode,
    body: Bytes,
    content_type: Option<HeaderValue>,
}

impl Direct {
    pub fn build(d: &snap::DirectResponse) -> Result<Self, String> {
        Ok(Direct {
            status: StatusCode::from_u16(d.status).map_err(|e| e.to_string())?,
            body: Bytes::from(d.body.clone()),
            content_type: d
                .content_type
                .as_deref()
                .map(HeaderValue::from_str)
                .transpose()
                .map_err(|e| format!("contentType: {e}"))?,
        })
    }

    pub fn answer(&self) -> Response<ProxyBody> {
        let mut resp = Response::new(full(self.body.clone()));
        *resp.status_mut() = self.status;
        if let Some(ct) = &self.content_type {
            resp.headers_mut().insert(CONTENT_TYPE, ct.clone());
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;

    use super::*;

    #[tokio::test]
    async fn answers_the_configured_status_body_and_type() {
        let d = Direct::build(&snap::DirectResponse {
            status: 418,
            body: "short and stout".into(),
            content_type: Some("text/plain".into()),
        })
        .unwrap();
        let resp = d.answer();
        assert_eq!(resp.status(), 418);
        assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain");
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "short and stout");
    }
}
