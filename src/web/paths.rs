//! Actor paths in URLs, and finding the supervisor that owns an actor.
//!
//! Paths contain `/` (`root/chat/groups/group:tg:42`), so routes take them either
//! percent-encoded as one segment (`root%2Fchat%2Frouter`) or as the rest of the URL path;
//! [`decode`] accepts both. An action on an actor goes to its parent supervisor, found by
//! walking down from the root one child at a time ([`parent_of`]).

use supervisors::SupervisorRef;

use super::WebContext;
use super::error::ApiError;

/// `raw` (the URL's tail) percent-decoded into an actor path.
pub fn decode(raw: &str) -> Result<String, ApiError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = raw.get(i + 1..i + 3).unwrap_or("");
            let byte = u8::from_str_radix(hex, 16).map_err(|_| {
                ApiError::bad_request(format!("the actor path {raw:?} has a bad %-escape"))
            })?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let path = String::from_utf8(out)
        .map_err(|_| ApiError::bad_request(format!("the actor path {raw:?} is not UTF-8")))?;
    let path = path.trim_matches('/').to_owned();
    if path.is_empty() {
        return Err(ApiError::bad_request(
            "name an actor: /api/actors/<path>/restart, e.g. root/control",
        ));
    }
    Ok(path)
}

/// The supervisor of the actor at `path` and the actor's id under it. The actor must be
/// registered; the root itself has no parent.
pub async fn parent_of(ctx: &WebContext, path: &str) -> Result<(SupervisorRef, String), ApiError> {
    if ctx.introspection.get(path).is_none() {
        return Err(ApiError::not_found(format!(
            "no actor {path}; GET /api/actors lists them"
        )));
    }
    let root = ctx
        .root
        .clone()
        .ok_or_else(|| ApiError::unavailable("this server was started without the tree"))?;
    let below = path
        .strip_prefix(&ctx.root_path)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{path} is the root supervisor: restart borg itself instead"
            ))
        })?;
    let mut ids: Vec<&str> = split_ids(below);
    let id = ids.pop().unwrap_or_default().to_owned();
    let mut supervisor = root;
    for step in ids {
        let cell = supervisor
            .child(step)
            .await
            .map_err(|e| ApiError::unavailable(format!("cannot reach {path}: {e}")))?
            .ok_or_else(|| {
                ApiError::conflict(format!(
                    "{step} on the way to {path} is not running right now"
                ))
            })?;
        supervisor = SupervisorRef::new(cell.into());
    }
    Ok((supervisor, id))
}

/// The child ids along a path below the root. borg's ids are `name` or `kind:name` (chat ids
/// use `:`, never `/`), so `/` separates levels.
fn split_ids(below: &str) -> Vec<&str> {
    below.split('/').filter(|s| !s.is_empty()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_decode_from_either_form() {
        assert_eq!(decode("root%2Fchat%2Frouter").unwrap(), "root/chat/router");
        assert_eq!(decode("root/chat/router/").unwrap(), "root/chat/router");
        assert_eq!(
            decode("root/chat/groups/group%3Atg%3A42").unwrap(),
            "root/chat/groups/group:tg:42"
        );
        assert!(decode("root%2").is_err());
        assert!(decode("%ff%fe").is_err());
        assert!(decode("/").is_err());
    }
}
