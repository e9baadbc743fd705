//! Request bodies: read with a size limit counted while reading, and parsed as JSON with
//! errors that say what is wrong (`missing field `title``, `expected a string`).

use futures_util::{Stream, StreamExt};
use serde::de::DeserializeOwned;
use warp::Buf;
use warp::http::StatusCode;

use super::error::ApiError;

/// The largest request body taken.
pub const MAX_BODY: usize = 64 * 1024;

/// A request body as read: its bytes, or why it could not be taken.
pub type Body = Result<Vec<u8>, ApiError>;

/// Reads the body, at most [`MAX_BODY`] bytes. Counted while reading, so a body without a
/// `Content-Length` (or with a false one) is bounded too, and an action without a body
/// (`curl -X POST`) is simply empty.
pub async fn read_body<S, B>(body: S) -> Body
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let mut body = std::pin::pin!(body);
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| ApiError::bad_request(format!("the body could not be read: {e}")))?;
        if out.len() + chunk.remaining() > MAX_BODY {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("the body is larger than {MAX_BODY} bytes"),
            ));
        }
        out.extend_from_slice(chunk.chunk());
    }
    Ok(out)
}

/// The body as `T`; an empty body is `{}`.
pub fn parse<T: DeserializeOwned>(body: &Body) -> Result<T, ApiError> {
    let body = body.as_ref().map_err(Clone::clone)?;
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(format!("bad JSON body: {e}")))
}
