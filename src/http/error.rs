//! The one place where errors become HTTP responses: RFC 9457 problem+json with a stable
//! machine `code`. 5xx causes are logged, never returned.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::auth::AuthError;
use crate::credentials::DisplayChain;
use crate::limits::{LimitError, Refused};
use crate::policy::PolicyError;
use crate::store::StoreError;
use crate::upload::UploadError;

/// Every error the API answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request`.
    #[error("{0}")]
    InvalidRequest(String),
    /// 415 `unsupported_media_type`.
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// 413 `payload_too_large`.
    #[error(
        "the request body is over the limit ({} bytes; 1 MiB for a completion)",
        super::state::MAX_BODY_BYTES
    )]
    PayloadTooLarge,
    /// 401 `invalid_token`.
    #[error("the bearer token is missing or invalid")]
    InvalidToken(#[source] AuthError),
    /// 403 `insufficient_scope`.
    #[error("the token lacks the scope {0:?}")]
    InsufficientScope(String),
    /// 403 `tenant_unknown`.
    #[error("the token's tenant is not served here")]
    TenantUnknown,
    /// 422 and 400 codes of the tenant rules.
    #[error(transparent)]
    Policy(#[from] PolicyError),
    /// 429 `rate_limited`, `tenant_rate_limited`, `quota_exceeded`, `too_many_uploads`,
    /// `store_rate_limited`.
    #[error("{}; retry in {retry_after} s", limit_detail(*.refused))]
    Limited {
        /// Which limit.
        refused: Refused,
        /// Seconds until it lets a ticket through again.
        retry_after: u64,
    },
    /// 503 `limits_unavailable`: the limits backend cannot be reached and the tenant
    /// denies meanwhile.
    #[error("the limits cannot be checked right now; retry shortly")]
    LimitsUnavailable,
    /// 503 `credentials_unavailable`.
    #[error("signing credentials are not available right now; retry shortly")]
    CredentialsUnavailable,
    /// 503 `timeout`.
    #[error("the request took too long")]
    Timeout,
    /// 404 `not_found`.
    #[error("no such resource")]
    NotFound,
    /// 405 `method_not_allowed`.
    #[error("method not allowed on this resource")]
    MethodNotAllowed,
    /// 404 `upload_not_found`: the handle is forged, expired or for an aborted upload.
    #[error("no such multipart upload, or its handle has expired")]
    UploadNotFound,
    /// 403 `not_owner`: a valid handle or key, but of another subject or tenant.
    #[error("this upload belongs to someone else")]
    NotOwner,
    /// 404 `object_not_found`.
    #[error("no object under this key")]
    ObjectNotFound,
    /// 422 `client_unsupported`: the client (Uppy 6) cannot send what the tenant's
    /// tickets require.
    #[error("{0}")]
    ClientUnsupported(String),
    /// 422 `parts_invalid`: the part list does not complete the upload.
    #[error("{0}")]
    PartsInvalid(String),
    /// 422 `upload_rejected`: the completed upload breaks its ticket or the tenant's
    /// rules (in words); the tenant's `on_rejected` decided what became of it.
    #[error("{0}")]
    UploadRejected(String),
    /// 422 `checksum_mismatch`: the store computed another checksum than declared.
    #[error("{0}")]
    ChecksumMismatch(String),
    /// 409 `object_exists`: the key holds an object, and the tenant prevents overwrites.
    #[error("an object already exists under this key; this tenant does not replace objects")]
    ObjectExists,
    /// 422 `store_unsupported`: the object store does not implement what was asked.
    #[error("the object store does not support this: {0}")]
    StoreUnsupported(String),
    /// 502 `store_error`: the object store failed; the cause is logged.
    #[error("the object store did not complete the operation; retry shortly")]
    Store(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// 500 `internal`: the cause is logged, the client learns nothing of it.
    #[error("internal error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    /// Any unexpected error.
    pub fn internal(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal(Box::new(error))
    }

    /// HTTP status and stable code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use PolicyError as P;
        match self {
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            Self::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            Self::InvalidToken(_) | Self::Policy(P::UnusableSubject) => {
                (StatusCode::UNAUTHORIZED, "invalid_token")
            }
            Self::InsufficientScope(_) => (StatusCode::FORBIDDEN, "insufficient_scope"),
            Self::TenantUnknown => (StatusCode::FORBIDDEN, "tenant_unknown"),
            Self::Policy(P::InvalidFilename) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "invalid_filename")
            }
            Self::Policy(P::ContentTypeRequired(_) | P::ContentTypeNotAllowed { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "content_type_not_allowed")
            }
            Self::Policy(
                P::ContentTypeInvalid(_)
                | P::InvalidExpiry
                | P::SizeRequired(_)
                | P::ChecksumInvalid(_),
            ) => (StatusCode::BAD_REQUEST, "invalid_request"),
            Self::Policy(P::ChecksumRequired(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "checksum_required")
            }
            Self::Policy(P::FileTooLarge { .. } | P::NeedsMultipart { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "file_too_large")
            }
            Self::Policy(P::FileTooSmall { .. }) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "file_too_small")
            }
            Self::Policy(P::MetadataNotAllowed(_)) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "metadata_not_allowed")
            }
            Self::Limited { refused, .. } => (StatusCode::TOO_MANY_REQUESTS, refused.code()),
            Self::LimitsUnavailable => (StatusCode::SERVICE_UNAVAILABLE, "limits_unavailable"),
            Self::CredentialsUnavailable => {
                (StatusCode::SERVICE_UNAVAILABLE, "credentials_unavailable")
            }
            Self::Timeout => (StatusCode::SERVICE_UNAVAILABLE, "timeout"),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            Self::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            Self::UploadNotFound => (StatusCode::NOT_FOUND, "upload_not_found"),
            Self::NotOwner => (StatusCode::FORBIDDEN, "not_owner"),
            Self::ObjectNotFound => (StatusCode::NOT_FOUND, "object_not_found"),
            Self::ClientUnsupported(_) => (StatusCode::UNPROCESSABLE_ENTITY, "client_unsupported"),
            Self::PartsInvalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "parts_invalid"),
            Self::UploadRejected(_) => (StatusCode::UNPROCESSABLE_ENTITY, "upload_rejected"),
            Self::ChecksumMismatch(_) => (StatusCode::UNPROCESSABLE_ENTITY, "checksum_mismatch"),
            Self::ObjectExists => (StatusCode::CONFLICT, "object_exists"),
            Self::StoreUnsupported(_) => (StatusCode::UNPROCESSABLE_ENTITY, "store_unsupported"),
            Self::Store(_) => (StatusCode::BAD_GATEWAY, "store_error"),
            Self::Policy(P::Presign(_)) | Self::Internal(_) => {
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        }
    }
}

/// What a refusing limit is, in words (the quota's remaining bytes with it).
fn limit_detail(refused: Refused) -> String {
    match refused {
        Refused::SubjectRate => "too many tickets this minute".to_owned(),
        Refused::TenantRate => "too many tickets for this tenant this minute".to_owned(),
        Refused::Quota { remaining } => {
            format!("the tenant's daily upload quota is reached ({remaining} bytes left today)")
        }
        Refused::OpenUploads => "too many multipart uploads open at once".to_owned(),
        Refused::StoreCalls => {
            "too many completions, checks, part listings and aborts this minute".to_owned()
        }
    }
}

impl From<LimitError> for ApiError {
    fn from(error: LimitError) -> Self {
        match error {
            LimitError::Refused {
                refused,
                retry_after,
            } => Self::Limited {
                refused,
                retry_after,
            },
            LimitError::Unavailable(_) => Self::LimitsUnavailable,
        }
    }
}

/// The problem+json body.
#[derive(Debug, Serialize)]
pub struct Problem {
    /// `urn:upload-tickets:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The status's reason phrase.
    pub title: &'static str,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for a person.
    pub detail: String,
    /// The same words again: Uppy (Companion's clients) shows a 4xx body's `message`.
    pub message: String,
    /// The stable machine code.
    pub code: &'static str,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = if status.is_server_error() {
            if matches!(
                self,
                Self::Internal(_) | Self::Store(_) | Self::Policy(PolicyError::Presign(_))
            ) {
                tracing::error!(code, error = %DisplayChain(&self), "request failed");
            } else {
                tracing::warn!(code, error = %self, "request refused");
            }
            match &self {
                Self::Internal(_) | Self::Policy(PolicyError::Presign(_)) => {
                    "The server could not complete the request.".to_owned()
                }
                other => other.to_string(),
            }
        } else {
            // The reason a token failed goes to debug logs only.
            if let Self::InvalidToken(reason) = &self {
                tracing::debug!(%reason, "token refused");
            }
            self.to_string()
        };
        let problem = Problem {
            kind: format!("urn:upload-tickets:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error"),
            status: status.as_u16(),
            message: detail.clone(),
            detail,
            code,
        };
        let mut response = (status, Json(problem)).into_response();
        super::access::report(
            &mut response,
            super::access::Outcome {
                code: Some(code),
                ..super::access::Outcome::default()
            },
        );
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        match &self {
            Self::InvalidToken(_) | Self::Policy(PolicyError::UnusableSubject) => {
                headers.insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            Self::InsufficientScope(scope) => {
                let value = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
                if let Ok(value) = HeaderValue::from_str(&value) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            Self::Limited { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            Self::CredentialsUnavailable | Self::Timeout | Self::LimitsUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            }
            _ => {}
        }
        response
    }
}

impl From<AuthError> for ApiError {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::InsufficientScope(scope) => Self::InsufficientScope(scope),
            other => Self::InvalidToken(other),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::NoSuchUpload => Self::UploadNotFound,
            StoreError::NoSuchObject => Self::ObjectNotFound,
            StoreError::PartsRefused(reason) => Self::PartsInvalid(reason),
            StoreError::ChecksumMismatch(reason) => Self::ChecksumMismatch(reason),
            StoreError::ObjectExists => Self::ObjectExists,
            StoreError::Unsupported(reason) => Self::StoreUnsupported(reason),
            StoreError::Failed(cause) => Self::Store(cause),
        }
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        match error {
            UploadError::Rules(error) => Self::Policy(error),
            UploadError::Limits(error) => error.into(),
            UploadError::Store(error) => error.into(),
            UploadError::CredentialsUnavailable => Self::CredentialsUnavailable,
            UploadError::UploadNotFound => Self::UploadNotFound,
            UploadError::NotOwner => Self::NotOwner,
            UploadError::InvalidRequest(reason) => Self::InvalidRequest(reason),
            UploadError::PartsInvalid(reason) => Self::PartsInvalid(reason),
            UploadError::Rejected(reason) => Self::UploadRejected(reason),
            UploadError::Internal(cause) => Self::Internal(cause),
        }
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        match rejection {
            JsonRejection::MissingJsonContentType(_) => Self::UnsupportedMediaType(
                "send the body as JSON with Content-Type: application/json".to_owned(),
            ),
            JsonRejection::BytesRejection(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
                Self::PayloadTooLarge
            }
            other => Self::InvalidRequest(other.body_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 4096)
            .await
            .unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn internal_errors_say_nothing_of_their_cause() {
        let error = ApiError::internal(std::io::Error::other("disk /secret/path is full"));
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = body_of(response).await;
        assert_eq!(body["code"], "internal");
        assert!(!body.to_string().contains("secret"), "{body}");
    }

    #[tokio::test]
    async fn a_refused_token_says_why_only_in_the_log() {
        let response = ApiError::from(AuthError::Invalid("bad signature".into())).into_response();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(
            response.headers()[header::WWW_AUTHENTICATE],
            "Bearer error=\"invalid_token\""
        );
        let body = body_of(response).await;
        assert!(!body.to_string().contains("signature"), "{body}");
    }
}
