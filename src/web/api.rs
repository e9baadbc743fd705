//! The read side of the API: status, the actor tree, tasks, the release queue, chat groups.
//!
//! Tasks come from the pipeline's desk (`borg:pipeline`), exactly as the control socket's
//! `tasks`/`task` requests get them; the tree from the introspection registry, as `borg
//! status` gets it ([`crate::control::report`]).

use std::collections::BTreeMap;

use actors::chat::group::{GroupMsg, GroupStatus};
use actors::pipeline::desk::{DeskMsg, desk};
use actors::pipeline::phase::Status;
use actors::pipeline::repo::TaskSummary;
use actors::pipeline::task::output;
use actors::pipeline::task::state::TaskSnapshot;
use actors::pipeline::train::{TrainMsg, train_actor_name};
use actors::slots::{SlotUsage, SlotsMsg};
use ractor::ActorRef;
use serde::Serialize;
use serde_json::json;
use supervisors::{ActorInfo, SupervisorRef};
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::reply::Response;

use super::WebContext;
use super::error::{ApiError, ApiResult, ok, respond};
use super::filter::TaskFilter;
use crate::control::{ControlArgs, report};
use crate::wiring::SLOTS_NAME;

/// How long a read waits for an actor's answer.
pub const ASK_MS: u64 = 10_000;
const PIPELINE_DOWN: &str = "the pipeline is not running (set PIPELINE_REPO to a git repository)";

pub fn routes(ctx: WebContext) -> BoxedFilter<(Response,)> {
    let get = |c: &WebContext| (warp::get(), c.clone());
    let (method, c) = get(&ctx);
    let status = warp::path!("api" / "status").and(method).then(move || {
        let c = c.clone();
        async move { respond(status(&c).await, &c.secrets) }
    });
    let (method, c) = get(&ctx);
    let actors = warp::path!("api" / "actors")
        .and(method)
        .map(move || respond(actors(&c), &c.secrets));
    let (method, c) = get(&ctx);
    let actor = warp::path!("api" / "actors" / ..)
        .and(warp::path::tail())
        .and(method)
        .map(move |tail: warp::path::Tail| respond(actor(&c, tail.as_str()), &c.secrets));
    let (method, c) = get(&ctx);
    let tasks = warp::path!("api" / "tasks")
        .and(method)
        .and(warp::query::<Vec<(String, String)>>())
        .then(move |query: Vec<(String, String)>| {
            let c = c.clone();
            async move { respond(tasks(&c, query).await, &c.secrets) }
        });
    let (method, c) = get(&ctx);
    let task = warp::path!("api" / "tasks" / String)
        .and(method)
        .then(move |id: String| {
            let c = c.clone();
            async move { respond(task(&c, &id).await, &c.secrets) }
        });
    let (method, c) = get(&ctx);
    let queue = warp::path!("api" / "queue").and(method).then(move || {
        let c = c.clone();
        async move { respond(queue(&c).await, &c.secrets) }
    });
    let (method, c) = get(&ctx);
    let groups = warp::path!("api" / "groups").and(method).then(move || {
        let c = c.clone();
        async move { respond(groups(&c).await, &c.secrets) }
    });
    status
        .or(actors)
        .unify()
        .or(actor)
        .unify()
        .or(tasks)
        .unify()
        .or(task)
        .unify()
        .or(queue)
        .unify()
        .or(groups)
        .unify()
        .boxed()
}

/// The running desk.
pub fn desk_ref() -> Result<ActorRef<DeskMsg>, ApiError> {
    desk().ok_or_else(|| ApiError::unavailable(PIPELINE_DOWN))
}

/// A task id from a URL segment.
pub fn task_id(raw: &str) -> Result<u64, ApiError> {
    raw.parse().map_err(|_| {
        ApiError::bad_request(format!(
            "{raw:?} is not a task id (a whole number, e.g. 12)"
        ))
    })
}

/// The task's saved state, or 404.
pub async fn get_task(id: u64) -> Result<TaskSnapshot, ApiError> {
    match ractor::call_t!(desk_ref()?, DeskMsg::Get, ASK_MS, id) {
        Ok(Some(task)) => Ok(task),
        Ok(None) => Err(ApiError::not_found(format!("no task #{id}"))),
        Err(e) => Err(ApiError::unavailable(format!(
            "the pipeline did not answer: {e}"
        ))),
    }
}

/// Every task of every repository, by id.
pub async fn list_tasks() -> Result<Vec<TaskSummary>, ApiError> {
    ractor::call_t!(desk_ref()?, DeskMsg::List, ASK_MS)
        .map_err(|e| ApiError::unavailable(format!("the pipeline did not answer: {e}")))
}

async fn repos() -> Vec<String> {
    match desk() {
        Some(desk) => ractor::call_t!(desk, DeskMsg::Repos, ASK_MS).unwrap_or_default(),
        None => Vec::new(),
    }
}

pub(super) async fn slots() -> Option<SlotUsage> {
    let slots: ActorRef<SlotsMsg> = ractor::registry::where_is(SLOTS_NAME)?.into();
    ractor::call_t!(slots, SlotsMsg::Usage, ASK_MS).ok()
}

/// The WhatsApp channel as `/api/status` shows it: the QR code only while pairing.
fn whatsapp(link: &crate::whatsapp::WhatsAppLink) -> serde_json::Value {
    let status = link.status();
    let qr = status
        .qr
        .filter(|_| status.phase == crate::whatsapp::Phase::Pairing);
    json!({
        "phase": format!("{:?}", status.phase).to_lowercase(),
        "qr": qr.map(|q| json!({"code": q.code, "terminal": q.terminal, "at_ms": q.at_ms})),
        "me": status.me,
        "last_error": status.last_error,
    })
}

async fn status(ctx: &WebContext) -> ApiResult {
    let control = ControlArgs {
        data_dir: ctx.config.data_dir.clone(),
        introspection: ctx.introspection.clone(),
        store: ctx.store.clone(),
        started: ctx.started,
    };
    let report = report(&control);
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    for actor in &report.actors {
        let status = serde_json::to_value(actor.status).unwrap_or_default();
        *by_status
            .entry(status.as_str().unwrap_or("?").to_owned())
            .or_default() += 1;
    }
    let groups = report.actors.iter().filter(|a| a.kind == "group").count();
    ok(
        &json!({
            "version": report.version,
            "pid": report.pid,
            "uptime_s": report.uptime_s,
            "data_dir": report.data_dir,
            "model": ctx.config.claude_model,
            "sandbox": ctx.sandbox,
            "repos": repos().await,
            "groups": groups,
            "agents": slots().await,
            "actors": { "total": report.actors.len(), "by_status": by_status },
            "store": report.store,
            "web": { "auth": ctx.config.web_token.is_some() },
            "whatsapp": ctx.whatsapp.as_ref().map(whatsapp),
        }),
        &ctx.secrets,
    )
}

/// Failure texts can quote anything (a URL with a token in it): scrubbed one by one, which
/// costs far less than scanning the whole answer of a large tree.
fn scrubbed(ctx: &WebContext, mut actor: ActorInfo) -> ActorInfo {
    if let Some(failure) = actor.last_failure.as_mut() {
        ctx.secrets.scrub_owned(failure);
    }
    actor
}

fn actors(ctx: &WebContext) -> ApiResult {
    #[derive(Serialize)]
    struct Actors {
        count: usize,
        actors: Vec<ActorInfo>,
    }
    let actors: Vec<ActorInfo> = ctx
        .introspection
        .list()
        .into_iter()
        .map(|a| scrubbed(ctx, a))
        .collect();
    let body = serde_json::to_string(&Actors {
        count: actors.len(),
        actors,
    })
    .map_err(|e| ApiError::unavailable(e.to_string()))?;
    // Already scrubbed field by field.
    Ok(super::error::text_response(
        warp::http::StatusCode::OK,
        body,
        "application/json",
    ))
}

fn actor(ctx: &WebContext, raw: &str) -> ApiResult {
    let path = super::paths::decode(raw)?;
    match ctx.introspection.get(&path) {
        Some(actor) => ok(&json!({ "actor": scrubbed(ctx, actor) }), &ctx.secrets),
        None => Err(ApiError::not_found(format!(
            "no actor {path}; GET /api/actors lists them"
        ))),
    }
}

async fn tasks(ctx: &WebContext, query: Vec<(String, String)>) -> ApiResult {
    let filter = TaskFilter::parse(&query)?;
    let all = list_tasks().await?;
    let total = all.len();
    let mut tasks: Vec<TaskSummary> = all.into_iter().filter(|t| filter.keeps(t)).collect();
    let matched = tasks.len();
    if let Some(limit) = filter.limit {
        // The newest ones.
        tasks.drain(..tasks.len().saturating_sub(limit));
    }
    ok(
        &json!({ "tasks": tasks, "matched": matched, "total": total }),
        &ctx.secrets,
    )
}

async fn task(ctx: &WebContext, id: &str) -> ApiResult {
    let id = task_id(id)?;
    let task = get_task(id).await?;
    let recent = output::recent(id).unwrap_or_default();
    ok(
        &json!({
            "task": task,
            "output": {
                "lines": recent.lines.iter().map(|l| &**l).collect::<Vec<_>>(),
                "dropped": recent.dropped,
            },
        }),
        &ctx.secrets,
    )
}

async fn queue(ctx: &WebContext) -> ApiResult {
    let tasks = list_tasks().await?;
    let mut repos = Vec::new();
    for repo in self::repos().await {
        // In the order a train takes them: the order they finished.
        let mut done: Vec<&TaskSummary> = tasks
            .iter()
            .filter(|t| t.repo == repo && t.status == Status::Done)
            .collect();
        done.sort_by_key(|t| (t.updated_ms, t.id));
        let train = match ractor::registry::where_is(train_actor_name(&repo)) {
            Some(train) => {
                let train: ActorRef<TrainMsg> = train.into();
                ractor::call_t!(train, TrainMsg::Get, ASK_MS).ok()
            }
            None => None,
        };
        repos.push(json!({ "repo": repo, "queue": done, "train": train }));
    }
    ok(&json!({ "repos": repos }), &ctx.secrets)
}

async fn groups(ctx: &WebContext) -> ApiResult {
    let groups_path = format!("{}/chat/groups", ctx.root_path);
    let mut out = Vec::new();
    if let Some(supervisor) = supervisor_at(ctx, &groups_path).await {
        let children = supervisor
            .which_children()
            .await
            .map_err(|e| ApiError::unavailable(format!("the chat groups did not answer: {e}")))?;
        for child in children {
            let status: Option<GroupStatus> = match child.actor {
                Some(cell) => {
                    let group: ActorRef<GroupMsg> = cell.into();
                    ractor::call_t!(group, GroupMsg::Status, 2_000).ok()
                }
                None => None,
            };
            let path = format!("{groups_path}/{}", child.id);
            let actor = ctx.introspection.get(&path).map(|a| scrubbed(ctx, a));
            out.push(json!({ "id": child.id, "group": status, "actor": actor }));
        }
    }
    ok(&json!({ "groups": out }), &ctx.secrets)
}

/// The supervisor at `path`, if it runs.
async fn supervisor_at(ctx: &WebContext, path: &str) -> Option<SupervisorRef> {
    let (parent, id) = super::paths::parent_of(ctx, path).await.ok()?;
    let cell = parent.child(&id).await.ok()??;
    Some(SupervisorRef::new(cell.into()))
}
