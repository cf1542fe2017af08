//! Building successful responses: static bodies and small JSON writers.

use bytes::Bytes;
use http_body_util::Full;
use hyper::{header, Response, StatusCode};

pub type Body = Full<Bytes>;

/// A JSON response with `status`.
pub fn json(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    response
}

/// A static JSON body, allocated once.
pub fn json_static(status: StatusCode, body: &'static str) -> Response<Body> {
    json(status, Bytes::from_static(body.as_bytes()))
}
