//! Who is asking: a token from `Authorization: Bearer TOKEN`, or from HTTP
//! basic auth (login = the token's name, password = the token), which is
//! what apt sends from its auth.conf for a private apt tree.
//!
//! Owns reading credentials from headers; `repo::tokens` decides whether
//! a token is live. Tokens are never logged.

use axum::http::{header, HeaderMap};
use base64::Engine as _;

/// The credentials a request carries.
pub struct Credentials {
    pub token: String,
    /// The login of basic auth, which must name the token.
    pub login: Option<String>,
}

pub fn credentials(headers: &HeaderMap) -> Option<Credentials> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        return Some(Credentials {
            token: rest.to_string(),
            login: None,
        });
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .ok()?;
        let text = String::from_utf8(decoded).ok()?;
        let (login, token) = text.split_once(':')?;
        return Some(Credentials {
            token: token.to_string(),
            login: Some(login.to_string()),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn bearer_and_basic_both_carry_the_token() {
        let bearer = credentials(&with("Bearer repoctl_abc")).unwrap();
        assert_eq!(bearer.token, "repoctl_abc");
        assert!(bearer.login.is_none());
        // base64("fleet:repoctl_abc")
        let basic = credentials(&with("Basic ZmxlZXQ6cmVwb2N0bF9hYmM=")).unwrap();
        assert_eq!(basic.token, "repoctl_abc");
        assert_eq!(basic.login.as_deref(), Some("fleet"));
        assert!(credentials(&with("Digest x")).is_none());
        assert!(credentials(&HeaderMap::new()).is_none());
    }
}
