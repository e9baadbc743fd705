//! The live streams: `/api/events` (the tree's lifecycle events), `/api/logs` (log lines) and
//! `/api/tasks/<id>/stream` (a task's agent output: what it already produced, then live).
//!
//! Events and logs have one pump each per server: it alone reads the source's broadcast,
//! renders each item once and fans the frame out ([`Fanout`]), so the actor that emits an
//! event wakes one reader however many pages watch. A task stream has a forwarder of its own
//! per client (there is rarely more than one per task). `Last-Event-ID` (sent by a
//! reconnecting `EventSource`) limits the replay of events and logs to what came after it.

use std::sync::{Arc, Mutex};

use actors::pipeline::task::output;
use supervisors::{Event, EventRecord};
use tokio::sync::{broadcast, watch};
use tokio::task::JoinHandle;
use warp::Filter;
use warp::filters::BoxedFilter;
use warp::hyper::body::Bytes;
use warp::reply::Response;

use super::WebContext;
use super::error::{ApiError, respond};
use super::secrets::Secrets;
use super::sse::{self, Fanout, Frame};
use crate::logging::feed::{LogLine, feed};

/// The streams of one server: its pumps, and the switch that ends every stream.
#[derive(Clone)]
pub struct Streams {
    inner: Arc<StreamsInner>,
}

struct StreamsInner {
    events: Fanout,
    logs: Fanout,
    stop: watch::Sender<bool>,
    pumps: Mutex<Vec<JoinHandle<()>>>,
}

impl Default for Streams {
    fn default() -> Self {
        Self {
            inner: Arc::new(StreamsInner {
                events: Fanout::default(),
                logs: Fanout::default(),
                stop: watch::channel(false).0,
                pumps: Mutex::new(Vec::new()),
            }),
        }
    }
}

impl Streams {
    /// Starts the pumps (once per server).
    pub fn start(&self, ctx: &WebContext) {
        let secrets = ctx.secrets.clone();
        let events = pump(
            ctx.introspection.subscribe(),
            self.inner.events.clone(),
            self.inner.stop.subscribe(),
            move |r: &EventRecord| event_frame(r, &secrets),
        );
        let secrets = ctx.secrets.clone();
        let (_, lines) = feed().follow();
        let logs = pump(
            lines,
            self.inner.logs.clone(),
            self.inner.stop.subscribe(),
            move |l: &Arc<LogLine>| log_frame(l, &secrets),
        );
        let (fanouts, mut stop) = (
            [self.inner.events.clone(), self.inner.logs.clone()],
            self.inner.stop.subscribe(),
        );
        let keep_alive = tokio::spawn(async move {
            let mut tick = tokio::time::interval(sse::KEEP_ALIVE);
            loop {
                tokio::select! {
                    _ = tick.tick() => fanouts.iter().for_each(Fanout::keep_alive),
                    _ = stop.wait_for(|s| *s) => return,
                }
            }
        });
        let mut pumps = self.inner.pumps.lock().unwrap_or_else(|p| p.into_inner());
        pumps.extend([events, logs, keep_alive]);
    }

    /// Ends every stream (after the frames each holds) and stops the pumps.
    pub fn close(&self) {
        let _ = self.inner.stop.send(true);
        self.inner.events.close();
        self.inner.logs.close();
        let pumps = self.inner.pumps.lock().unwrap_or_else(|p| p.into_inner());
        pumps.iter().for_each(JoinHandle::abort);
    }

    /// The lifecycle events' fan-out (the benchmark watches its clients).
    pub fn events(&self) -> &Fanout {
        &self.inner.events
    }
}

/// Moves items from `source` to `fanout`, each rendered once, until told to stop.
fn pump<T: Clone + Send + 'static>(
    mut source: broadcast::Receiver<T>,
    fanout: Fanout,
    mut stop: watch::Receiver<bool>,
    render: impl Fn(&T) -> Frame + Send + 'static,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let item = tokio::select! {
                item = source.recv() => item,
                _ = stop.wait_for(|s| *s) => return,
            };
            match item {
                // Rendering costs nothing worth saving when nobody watches; skipping it
                // keeps a burst cheap.
                Ok(_) if fanout.is_empty() => {}
                Ok(item) => fanout.send(&render(&item)),
                Err(broadcast::error::RecvError::Lagged(_)) => fanout.lag_all(),
                Err(broadcast::error::RecvError::Closed) => return,
            }
        }
    })
}

pub fn routes(ctx: WebContext) -> BoxedFilter<(Response,)> {
    let last_id = || {
        warp::header::optional::<String>("last-event-id")
            .map(|id: Option<String>| id.and_then(|id| id.trim().parse::<u64>().ok()))
    };
    let c = ctx.clone();
    let events = warp::path!("api" / "events")
        .and(warp::get())
        .and(last_id())
        .map(move |after: Option<u64>| respond(events(&c, after), &c.secrets));
    let c = ctx.clone();
    let logs = warp::path!("api" / "logs")
        .and(warp::get())
        .and(last_id())
        .map(move |after: Option<u64>| respond(logs(&c, after), &c.secrets));
    let c = ctx;
    let task = warp::path!("api" / "tasks" / String / "stream")
        .and(warp::get())
        .then(move |id: String| {
            let c = c.clone();
            async move { respond(task(&c, &id).await, &c.secrets) }
        });
    events.or(logs).unify().or(task).unify().boxed()
}

/// `/api/events`: live lifecycle events; after a reconnect, the recent ones it missed.
fn events(ctx: &WebContext, after: Option<u64>) -> Result<Response, ApiError> {
    let (introspection, secrets) = (ctx.introspection.clone(), ctx.secrets.clone());
    let stream = ctx.streams.inner.events.subscribe(move || {
        let Some(after) = after else {
            return (Vec::new(), 0);
        };
        let recent = introspection.recent_events();
        let last = recent.last().map_or(after, |r| r.seq.max(after));
        let frames = recent
            .iter()
            .filter(|r| r.seq > after)
            .map(|r| event_frame(r, &secrets).bytes)
            .collect();
        (frames, last)
    })?;
    Ok(sse::response(stream))
}

/// `/api/logs`: the recent lines (those after `Last-Event-ID` on a reconnect), then live.
fn logs(ctx: &WebContext, after: Option<u64>) -> Result<Response, ApiError> {
    let secrets = ctx.secrets.clone();
    let stream = ctx.streams.inner.logs.subscribe(move || {
        let recent = feed().recent();
        let last = recent.last().map_or(0, |l| l.seq).max(after.unwrap_or(0));
        let frames = recent
            .iter()
            .filter(|l| l.seq > after.unwrap_or(0))
            .map(|l| log_frame(l, &secrets).bytes)
            .collect();
        (frames, last)
    })?;
    Ok(sse::response(stream))
}

/// `/api/tasks/<id>/stream`: the task's recent output, then every new line.
async fn task(ctx: &WebContext, id: &str) -> Result<Response, ApiError> {
    let id = super::api::task_id(id)?;
    // The task must exist: following creates its entry in the output hub.
    super::api::get_task(id).await?;
    let (recent, mut live) = output::follow(id);
    let secrets = ctx.secrets.clone();
    let replayed = recent.lines.last().map_or(0, |l| l.seq);
    let frames: Vec<Bytes> = recent
        .lines
        .iter()
        .map(|l| output_frame(l, &secrets).bytes)
        .collect();
    let (client, stream) = sse::client(frames, replayed)?;
    let mut stop = ctx.streams.inner.stop.subscribe();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(sse::KEEP_ALIVE);
        tick.reset();
        loop {
            let frame = tokio::select! {
                line = live.recv() => match line {
                    Ok(line) => output_frame(&line, &secrets),
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        client.lag();
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                },
                _ = tick.tick() => sse::keep_alive_frame(),
                _ = client.closed() => return,
                _ = stop.wait_for(|s| *s) => return,
            };
            if !client.deliver(frame) {
                return;
            }
        }
    });
    Ok(sse::response(stream))
}

/// The SSE name of an event: its type (`started`, `failed`, `restarted`, `stopped`,
/// `escalated`, `breaker`).
fn event_name(event: &Event) -> &'static str {
    match event {
        Event::Started { .. } => "started",
        Event::Failed { .. } => "failed",
        Event::Restarted { .. } => "restarted",
        Event::Stopped { .. } => "stopped",
        Event::Escalated { .. } => "escalated",
        Event::Breaker { .. } => "breaker",
    }
}

/// An event as a frame: `data` is the [`EventRecord`] (`seq`, `at_ms`, `event`).
pub fn event_frame(record: &EventRecord, secrets: &Secrets) -> Frame {
    let data = serde_json::to_string(record).unwrap_or_default();
    sse::frame(record.seq, event_name(&record.event), &secrets.scrub(&data))
}

fn log_frame(line: &LogLine, secrets: &Secrets) -> Frame {
    let data = serde_json::to_string(line).unwrap_or_default();
    sse::frame(line.seq, "log", &secrets.scrub(&data))
}

fn output_frame(line: &output::OutputLine, secrets: &Secrets) -> Frame {
    let data = serde_json::to_string(line).unwrap_or_default();
    sse::frame(line.seq, "output", &secrets.scrub(&data))
}
