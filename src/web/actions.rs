//! The API's actions: create, cancel and retry tasks; restart an actor; force a breaker.
//!
//! Bodies are JSON objects read by [`super::body`] rather than by warp, so a bad one gets a
//! 400 that says what is wrong with it (`missing field `title``, `expected a string`); an
//! empty body counts as `{}`, fine for actions whose fields are all optional.
//!
//! **Retry** creates a new task with the failed (or blocked) task's repository, title and
//! description, and says so: a task's attempts, history and branch stay as evidence of what
//! went wrong, and the phase machine has no way back from `failed` by design.
//!
//! **Restart** stops the actor by its shutdown mode and starts it again from its spec (OTP's
//! `terminate_child` + `restart_child` on its parent supervisor): state that lives in the
//! store comes back, nothing else. The store and the root cannot be restarted while borg
//! runs; restarting this server answers first (202) and restarts it right after.

use actors::pipeline::desk::{CreateError, DeskMsg, create_task};
use actors::pipeline::phase::Status;
use serde::Deserialize;
use serde_json::json;
use supervisors::SupervisorError;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::http::StatusCode;
use warp::reply::Response;

use super::WebContext;
use super::api::{desk_ref, get_task, task_id};
use super::body::{Body, parse, read_body};
use super::error::{ApiError, ApiResult, json, ok, respond};

/// Longer than the desk's own wait on a repository creating a task (as the control socket).
const CREATE_MS: u64 = 70_000;

pub fn routes(ctx: WebContext) -> BoxedFilter<(Response,)> {
    let body = || warp::post().and(warp::body::stream()).then(read_body);
    let c = ctx.clone();
    let create = warp::path!("api" / "tasks")
        .and(body())
        .then(move |b: Body| {
            let c = c.clone();
            async move { respond(create(&c, &b).await, &c.secrets) }
        });
    let c = ctx.clone();
    let cancel = warp::path!("api" / "tasks" / String / "cancel")
        .and(body())
        .then(move |id: String, b: Body| {
            let c = c.clone();
            async move { respond(cancel(&c, &id, &b).await, &c.secrets) }
        });
    let c = ctx.clone();
    let retry = warp::path!("api" / "tasks" / String / "retry")
        .and(body())
        .then(move |id: String, b: Body| {
            let c = c.clone();
            async move { respond(retry(&c, &id, &b).await, &c.secrets) }
        });
    let c = ctx.clone();
    let restart = warp::path!("api" / "actors" / ..)
        .and(warp::path::tail())
        .and(body())
        .then(move |tail: warp::path::Tail, b: Body| {
            let c = c.clone();
            async move { respond(restart(&c, tail.as_str(), &b).await, &c.secrets) }
        });
    let c = ctx;
    let breaker = warp::path!("api" / "breakers" / ..)
        .and(warp::path::tail())
        .and(body())
        .then(move |tail: warp::path::Tail, b: Body| {
            let c = c.clone();
            async move { respond(breaker(&c, tail.as_str(), &b).await, &c.secrets) }
        });
    create
        .or(cancel)
        .unify()
        .or(retry)
        .unify()
        .or(restart)
        .unify()
        .or(breaker)
        .unify()
        .boxed()
}

/// The body of an action that takes no fields.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Empty {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTask {
    #[serde(default)]
    repo: Option<String>,
    title: String,
    #[serde(default)]
    description: String,
}

async fn create(ctx: &WebContext, body: &Body) -> ApiResult {
    let new: NewTask = parse(body)?;
    let task = create_task(new.repo, new.title, new.description, "web".into())
        .await
        .map_err(not_created)?;
    Ok(json(
        StatusCode::CREATED,
        &json!({ "task": task }),
        &ctx.secrets,
    ))
}

/// A task the desk did not create, as the API answers it.
fn not_created(e: CreateError) -> ApiError {
    match e {
        // The desk's refusals name the problem (no title, unknown repository).
        CreateError::Refused(why) => ApiError::bad_request(why),
        CreateError::NotRunning | CreateError::NoAnswer(_) => ApiError::unavailable(e.to_string()),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cancel {
    #[serde(default)]
    reason: Option<String>,
}

async fn cancel(ctx: &WebContext, id: &str, body: &Body) -> ApiResult {
    let id = task_id(id)?;
    let Cancel { reason } = parse(body)?;
    let task = get_task(id).await?;
    if task.status.is_terminal() {
        return Err(ApiError::conflict(format!(
            "task #{id} is {} already",
            task.status
        )));
    }
    let reason = reason
        .map(|r| r.trim().to_owned())
        .filter(|r| !r.is_empty())
        .unwrap_or_else(|| "cancelled from the dashboard".into());
    let cancelled = ractor::call_t!(desk_ref()?, DeskMsg::Cancel, CREATE_MS, id, reason);
    match cancelled {
        Ok(Ok(())) => ok(&json!({ "ok": true, "task": id }), &ctx.secrets),
        Ok(Err(why)) => Err(ApiError::conflict(why)),
        Err(e) => Err(ApiError::unavailable(format!(
            "the pipeline did not answer: {e}"
        ))),
    }
}

async fn retry(ctx: &WebContext, id: &str, body: &Body) -> ApiResult {
    let id = task_id(id)?;
    let Empty {} = parse(body)?;
    let old = get_task(id).await?;
    if !matches!(old.status, Status::Failed | Status::Blocked) {
        return Err(ApiError::conflict(format!(
            "task #{id} is {}; only failed or blocked tasks can be retried",
            old.status
        )));
    }
    let task = create_task(
        Some(old.task.repo.clone()),
        old.task.title.clone(),
        old.task.description.clone(),
        format!("web (retry of #{id})"),
    )
    .await
    .map_err(not_created)?;
    let note = format!(
        "created task #{} with the repository, title and description of #{id}, which stays {} \
         with its history",
        task.id, old.status
    );
    Ok(json(
        StatusCode::CREATED,
        &json!({ "task": task, "retry_of": id, "note": note }),
        &ctx.secrets,
    ))
}

async fn restart(ctx: &WebContext, tail: &str, body: &Body) -> ApiResult {
    let raw = tail.strip_suffix("/restart").ok_or_else(|| {
        ApiError::not_found("actions on an actor: POST /api/actors/<path>/restart")
    })?;
    let Empty {} = parse(body)?;
    let path = super::paths::decode(raw)?;
    if path == format!("{}/store", ctx.root_path) {
        return Err(ApiError::conflict(
            "the store cannot be restarted while borg runs; restart borg instead",
        ));
    }
    let (parent, id) = super::paths::parent_of(ctx, &path).await?;
    match ctx.introspection.get(&path).map(|a| a.status) {
        Some(supervisors::Status::Parked) => {
            return Err(supervisor_error(&path, SupervisorError::Parked(id)));
        }
        Some(supervisors::Status::Restarting) => {
            return Err(supervisor_error(&path, SupervisorError::Restarting(id)));
        }
        _ => {}
    }
    let restart = async move {
        parent.terminate_child(&id).await?;
        parent.restart_child(&id).await.map(|_| ())
    };
    if path == ctx.own_path || ctx.own_path.starts_with(&format!("{path}/")) {
        // Stopping this server waits for open requests, this one included: answer first.
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if let Err(e) = restart.await {
                tracing::warn!("restarting the web server failed: {e}");
            }
        });
        return Ok(json(
            StatusCode::ACCEPTED,
            &json!({ "ok": true, "restarting": path, "note": "this server restarts now" }),
            &ctx.secrets,
        ));
    }
    restart.await.map_err(|e| supervisor_error(&path, e))?;
    tracing::info!("{path} restarted from the dashboard");
    ok(&json!({ "ok": true, "restarted": path }), &ctx.secrets)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Breaker {
    state: BreakerChoice,
}

#[derive(Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
enum BreakerChoice {
    Open,
    Closed,
}

async fn breaker(ctx: &WebContext, tail: &str, body: &Body) -> ApiResult {
    let path = super::paths::decode(tail)?;
    let Breaker { state } = parse(body)?;
    let (parent, id) = super::paths::parent_of(ctx, &path).await?;
    let open = matches!(state, BreakerChoice::Open);
    parent
        .force_breaker(&id, open)
        .await
        .map_err(|e| supervisor_error(&path, e))?;
    let state = if open { "forced_open" } else { "closed" };
    tracing::info!("breaker of {path} {state} from the dashboard");
    ok(
        &json!({ "ok": true, "actor": path, "breaker": state }),
        &ctx.secrets,
    )
}

fn supervisor_error(path: &str, e: SupervisorError) -> ApiError {
    match e {
        SupervisorError::NotFound(_) => {
            ApiError::not_found(format!("no actor {path} (it stopped meanwhile)"))
        }
        SupervisorError::Parked(_) => ApiError::conflict(format!(
            "{path} is parked by its circuit breaker; close the breaker instead \
             (POST /api/breakers/<path> {{\"state\":\"closed\"}})"
        )),
        SupervisorError::Restarting(_) => {
            ApiError::conflict(format!("{path} is restarting already; try again shortly"))
        }
        SupervisorError::Unavailable(why) => {
            ApiError::unavailable(format!("the supervisor of {path} did not answer: {why}"))
        }
        other => ApiError::conflict(format!("{path}: {other}")),
    }
}
