//! XML as S3 answers it, for what speaks S3 to clients: the dev store's refusals and
//! the receipts Uppy 6 reads.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// `body` (one element) as an S3 XML document with `status`; no cache keeps it.
pub(crate) fn document(status: StatusCode, body: &str) -> Response {
    let document = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}");
    let mut response = (status, document).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/xml"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// S3's error document: `<Error><Code/><Message/></Error>`.
pub(crate) fn error(status: StatusCode, code: &str, message: &str) -> Response {
    let body = format!(
        "<Error><Code>{}</Code><Message>{}</Message></Error>",
        escape(code),
        escape(message)
    );
    document(status, &body)
}

pub(crate) use crate::policy::xml_escape as escape;
