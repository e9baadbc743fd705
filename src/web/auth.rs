//! `WEB_TOKEN`: when set, every request must carry it, as `Authorization: Bearer <token>` or
//! as the query parameter `token` (a browser's `EventSource` cannot set headers). The
//! configuration refuses a non-loopback `WEB_BIND` without one, so the API is never open to
//! the network.

use std::collections::HashMap;
use std::sync::Arc;

use warp::Filter;
use warp::filters::BoxedFilter;

use super::error::ApiError;

/// A filter that lets a request through only with the right token (any request when
/// `token` is `None`).
pub fn required(token: Option<String>) -> BoxedFilter<()> {
    let Some(token) = token else {
        return warp::any().boxed();
    };
    let token: Arc<[u8]> = token.into_bytes().into();
    warp::header::optional::<String>("authorization")
        .and(query())
        .and_then(move |header: Option<String>, query: HashMap<String, String>| {
            let token = token.clone();
            async move {
                let given = header
                    .as_deref()
                    .and_then(|h| h.strip_prefix("Bearer "))
                    .map(str::trim)
                    .or(query.get("token").map(String::as_str));
                match given {
                    Some(given) if same(given.as_bytes(), &token) => Ok(()),
                    Some(_) => Err(warp::reject::custom(ApiError::unauthorized(
                        "wrong token: send WEB_TOKEN as `Authorization: Bearer <token>` or ?token=",
                    ))),
                    None => Err(warp::reject::custom(ApiError::unauthorized(
                        "this server needs WEB_TOKEN: send `Authorization: Bearer <token>` or \
                         ?token=",
                    ))),
                }
            }
        })
        .untuple_one()
        .boxed()
}

/// The query parameters, or none when there is no query string or it cannot be read.
fn query() -> BoxedFilter<(HashMap<String, String>,)> {
    warp::query::<HashMap<String, String>>()
        .or(warp::any().map(HashMap::new))
        .unify()
        .boxed()
}

/// Compares in time that depends only on the lengths, so the comparison does not tell an
/// attacker how much of a guess was right.
fn same(given: &[u8], token: &[u8]) -> bool {
    let mut diff = u8::from(given.len() != token.len());
    for (i, t) in token.iter().enumerate() {
        diff |= given.get(i).copied().unwrap_or(!t) ^ t;
    }
    diff == 0
}

#[cfg(test)]
mod tests {
    use super::same;

    #[test]
    fn only_the_exact_token_is_the_same() {
        assert!(same(b"s3cret-token", b"s3cret-token"));
        assert!(!same(b"s3cret-tokeN", b"s3cret-token"));
        assert!(!same(b"s3cret", b"s3cret-token"));
        assert!(!same(b"s3cret-token-and-more", b"s3cret-token"));
        assert!(!same(b"", b"s3cret-token"));
    }
}
