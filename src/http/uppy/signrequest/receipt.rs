//! Receipts: what the service did for a `signRequest` call (started, completed, aborted
//! an upload), signed and short-lived, and the URL that answers them in S3's XML, so
//! that Uppy, which calls the store itself, reads what the store would have said.

use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use url::form_urlencoded;

use super::body::Signed;
use crate::http::answers;
use crate::http::error::ApiError;
use crate::http::extract::Authorized;
use crate::http::reply::Handled;
use crate::http::state::AppState;
use crate::routes;
use crate::s3xml;

/// How long a receipt's URL answers: Uppy calls it at once.
const RECEIPT_VALIDITY: Duration = Duration::from_secs(300);

/// What a receipt's URL answers, as S3 would.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "did", rename_all = "snake_case")]
pub(super) enum Receipt {
    /// `InitiateMultipartUploadResult`; the upload id is the signed handle.
    Started {
        bucket: String,
        key: String,
        upload_id: String,
    },
    /// `CompleteMultipartUploadResult`.
    Completed {
        location: String,
        bucket: String,
        key: String,
        etag: Option<String>,
    },
    /// An abort answers nothing.
    Aborted,
}

/// The answer URL of `receipt`, relative to the service's base URL.
pub(super) fn answer_with(
    state: &AppState,
    who: &Authorized,
    receipt: &Receipt,
    key: String,
) -> Handled {
    let signed = state
        .handles
        .sign_receipt(receipt, who.now + RECEIPT_VALIDITY)
        .map_err(ApiError::internal)?;
    let query: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("r", &signed)
        .finish();
    let started = matches!(receipt, Receipt::Started { .. });
    let signed = Signed::url(
        // Relative to the service's base URL: the route without its leading slash.
        format!("{}?{query}", routes::UPPY_ANSWER.trim_start_matches('/')),
        started.then(|| key.clone()),
    );
    Ok((answers::json(StatusCode::OK, &signed)?, key))
}

/// `uploads/uppy/answer?r=<receipt>`: the XML S3 answers for what the receipt says was
/// done. GET, POST or DELETE (Uppy POSTs, or DELETEs); no token: the receipt is the proof, and
/// it only repeats what its holder was told.
pub(super) async fn answer(State(state): State<AppState>, RawQuery(query): RawQuery) -> Response {
    let receipt = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .find(|(name, _)| name == "r")
        .map(|(_, value)| value.into_owned());
    let now = state.clock.now();
    let receipt = receipt.and_then(|r| state.handles.verify_receipt::<Receipt>(&r, now).ok());
    let Some(receipt) = receipt else {
        return s3xml::error(
            StatusCode::FORBIDDEN,
            "AccessDenied",
            "the receipt is invalid or has expired: sign the request again",
        );
    };
    let body = match receipt {
        Receipt::Started {
            bucket,
            key,
            upload_id,
        } => format!(
            "<InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId></InitiateMultipartUploadResult>",
            s3xml::escape(&bucket),
            s3xml::escape(&key),
            s3xml::escape(&upload_id)
        ),
        Receipt::Completed {
            location,
            bucket,
            key,
            etag,
        } => format!(
            "<CompleteMultipartUploadResult><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
            s3xml::escape(&location),
            s3xml::escape(&bucket),
            s3xml::escape(&key),
            s3xml::escape(etag.as_deref().unwrap_or_default())
        ),
        Receipt::Aborted => return StatusCode::NO_CONTENT.into_response(),
    };
    s3xml::document(StatusCode::OK, &body)
}
