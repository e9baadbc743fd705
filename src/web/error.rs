//! Answers and errors as JSON: every handler answers with a [`Response`], success or not, so
//! warp never tries another route after a handler has matched; what warp itself rejects
//! (no such route, wrong method, no or bad token, a body too large) becomes the same
//! `{"error": ...}` shape in [`recover`].

use std::convert::Infallible;

use serde::Serialize;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reject::Rejection;
use warp::reply::Response;

use super::secrets::Secrets;

/// A request the API refuses, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }

    /// A part of borg the request needs is not running or did not answer.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, message)
    }

    /// The error as a JSON response.
    pub fn into_response(self, secrets: &Secrets) -> Response {
        let mut response = json(
            self.status,
            &serde_json::json!({ "error": self.message }),
            secrets,
        );
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

impl warp::reject::Reject for ApiError {}

/// What a handler returns: an answer, or why not.
pub type ApiResult = Result<Response, ApiError>;

/// Turns a handler's result into the response, errors as JSON.
pub fn respond(result: ApiResult, secrets: &Secrets) -> Response {
    result.unwrap_or_else(|e| e.into_response(secrets))
}

/// `value` as a JSON response with `status`, secrets replaced.
pub fn json(status: StatusCode, value: &impl Serialize, secrets: &Secrets) -> Response {
    match serde_json::to_string(value) {
        Ok(text) => text_response(
            status,
            secrets.scrub(&text).into_owned(),
            "application/json",
        ),
        Err(e) => text_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({ "error": format!("the answer does not serialize: {e}") })
                .to_string(),
            "application/json",
        ),
    }
}

/// 200 with `value` as JSON.
pub fn ok(value: &impl Serialize, secrets: &Secrets) -> ApiResult {
    Ok(json(StatusCode::OK, value, secrets))
}

/// A response of `body` with `content_type`.
pub fn text_response(status: StatusCode, body: String, content_type: &'static str) -> Response {
    let mut response = Response::new(body.into());
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Live data: a cached answer is a wrong answer.
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// Every rejection as a JSON error naming the problem.
pub async fn recover(rejection: Rejection, secrets: Secrets) -> Result<Response, Infallible> {
    let error = if let Some(e) = rejection.find::<ApiError>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::not_found("no such route; see the HTTP API section of the README")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "this route does not take that method (reads are GET, actions are POST)",
        )
    } else if let Some(e) = rejection.find::<warp::reject::InvalidQuery>() {
        ApiError::bad_request(format!("the query string cannot be read: {e}"))
    } else if let Some(e) = rejection.find::<warp::reject::InvalidHeader>() {
        ApiError::bad_request(e.to_string())
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the request was refused: {rejection:?}"),
        )
    };
    Ok(error.into_response(&secrets))
}
