//! The credentials a ticket is signed with.

use std::fmt;

use zeroize::Zeroizing;

use super::PresignError;

/// An AWS access key: id, secret and, for temporary credentials, a session token.
///
/// The secret and the token are wiped from memory on drop and never printed: `Debug`
/// shows only the access key id, which AWS treats as an identifier, not a secret.
#[derive(Clone)]
pub struct Credentials {
    access_key_id: String,
    secret_access_key: Zeroizing<String>,
    session_token: Option<Zeroizing<String>>,
}

impl Credentials {
    /// Long-term or temporary credentials. Refused: an empty id or secret, an empty
    /// token, and an id that would corrupt the credential scope (a `/`, white space or
    /// anything outside printable ASCII; AWS ids are upper-case alphanumerics, other
    /// stores allow a few symbols).
    pub fn new(
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        session_token: Option<String>,
    ) -> Result<Self, PresignError> {
        let access_key_id = access_key_id.into();
        let secret_access_key = Zeroizing::new(secret_access_key.into());
        let session_token = session_token.map(Zeroizing::new);
        if access_key_id.is_empty() || access_key_id.len() > 128 {
            return Err(PresignError::InvalidCredentials(
                "the access key id must have 1 to 128 characters",
            ));
        }
        if !access_key_id
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/')
        {
            return Err(PresignError::InvalidCredentials(
                "the access key id may only have printable ASCII characters other than '/'",
            ));
        }
        if secret_access_key.is_empty() {
            return Err(PresignError::InvalidCredentials(
                "the secret access key is empty",
            ));
        }
        if session_token.as_ref().is_some_and(|t| t.is_empty()) {
            return Err(PresignError::InvalidCredentials(
                "the session token is empty",
            ));
        }
        Ok(Self {
            access_key_id,
            secret_access_key,
            session_token,
        })
    }

    /// The access key id (not secret: it is sent in `X-Amz-Credential`).
    pub fn access_key_id(&self) -> &str {
        &self.access_key_id
    }

    /// The secret access key. Only the signer should read it.
    pub fn secret_access_key(&self) -> &str {
        &self.secret_access_key
    }

    /// The session token of temporary credentials.
    pub fn session_token(&self) -> Option<&str> {
        self.session_token.as_deref().map(String::as_str)
    }
}

/// The AWS SDK's credentials (what `aws_config::SdkConfig`'s provider resolves, from
/// the environment, profiles, SSO, web identity, ECS or IMDS), as signing credentials.
///
/// Their expiry is the SDK's to track: sign nothing that outlives it (see
/// `aws_credential_types::Credentials::expiry` and `examples/sdk_config.rs`).
///
/// ```
/// use s3_presigned_post::Credentials;
///
/// let sdk = aws_credential_types::Credentials::new("AKIDEXAMPLE", "secret", None, None, "example");
/// let credentials = Credentials::try_from(&sdk)?;
/// assert_eq!(credentials.access_key_id(), "AKIDEXAMPLE");
/// # Ok::<(), s3_presigned_post::PresignError>(())
/// ```
impl TryFrom<&aws_credential_types::Credentials> for Credentials {
    type Error = PresignError;

    fn try_from(sdk: &aws_credential_types::Credentials) -> Result<Self, PresignError> {
        Self::new(
            sdk.access_key_id(),
            sdk.secret_access_key(),
            sdk.session_token().map(str::to_owned),
        )
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .field("secret_access_key", &"** redacted **")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "** redacted **"),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_or_the_token() {
        let credentials =
            Credentials::new("AKIDEXAMPLE", "s3cr3t-value", Some("t0ken-value".into())).unwrap();
        let shown = format!("{credentials:?} {credentials:#?}");
        assert!(shown.contains("AKIDEXAMPLE"));
        assert!(!shown.contains("s3cr3t-value"));
        assert!(!shown.contains("t0ken-value"));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn unusable_credentials_are_refused() {
        assert!(Credentials::new("", "s", None).is_err());
        assert!(Credentials::new("AKID/2015", "s", None).is_err());
        assert!(Credentials::new("AKID", "", None).is_err());
        assert!(Credentials::new("AKID", "s", Some(String::new())).is_err());
        let error = Credentials::new("AKID", "", None).unwrap_err().to_string();
        assert!(!error.contains("AKID"));
    }
}
