//! Bearer-token guard of the requests that change a job (cancel, stop).

use axum::http::{HeaderMap, header};

use super::api_error::ApiError;

/// Passes when no token is configured, or the request carries
/// `Authorization: Bearer <token>` with the configured token.
pub(crate) fn authorize(token: Option<&str>, headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(expected) = token else {
        return Ok(());
    };
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match given {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        _ => Err(ApiError::Unauthorized),
    }
}

/// Compares without stopping at the first difference, so response times do not
/// reveal how much of a guess was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_right_bearer_token_passes() {
        let mut headers = HeaderMap::new();
        assert!(authorize(None, &headers).is_ok());
        assert!(authorize(Some("s3cret"), &headers).is_err());
        headers.insert(header::AUTHORIZATION, "Bearer wrong!".parse().unwrap());
        assert!(authorize(Some("s3cret"), &headers).is_err());
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert!(authorize(Some("s3cret"), &headers).is_ok());
        headers.insert(header::AUTHORIZATION, "Basic s3cret".parse().unwrap());
        assert!(authorize(Some("s3cret"), &headers).is_err());
    }
}
