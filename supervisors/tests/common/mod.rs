//! A test worker whose life can be steered from the test, and helpers to wait for the tree.

#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, RpcReplyPort};
use supervisors::{ChildSpec, SupervisorRef};

/// Shared knobs and records of every worker in one test.
#[derive(Clone, Default)]
pub struct Lab {
    /// Lifecycle records: `stop:<name>` from post_stop, `drop:<name>` when the state is dropped.
    pub log: Arc<Mutex<Vec<String>>>,
    /// Workers whose state is alive right now (incremented in pre_start, decremented on drop).
    pub alive: Arc<AtomicUsize>,
    /// Names whose next starts fail.
    pub failing: Arc<Mutex<Vec<String>>>,
    /// Starts attempted, by all workers.
    pub starts: Arc<AtomicUsize>,
}

impl Lab {
    pub fn fail_starts(&self, name: &str, fail: bool) {
        let mut f = self.failing.lock().unwrap();
        f.retain(|n| n != name);
        if fail {
            f.push(name.to_owned());
        }
    }

    pub fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }

    /// A permanent worker spec named `name`.
    pub fn spec(&self, name: &str) -> ChildSpec {
        let lab = self.clone();
        let name = name.to_owned();
        ChildSpec::actor(name.clone(), move || {
            (
                Worker,
                WorkerArgs {
                    name: name.clone(),
                    lab: lab.clone(),
                },
            )
        })
    }
}

pub enum WorkerMsg {
    Ping(RpcReplyPort<ActorId>),
    Panic,
    Fail,
    /// Exit normally (`stop` with a reason), like OTP's `exit(normal)`.
    ExitNormal,
    /// Stay busy in the handler (and so ignore stop requests) for this long.
    Busy(Duration),
}

pub struct Worker;

pub struct WorkerArgs {
    pub name: String,
    pub lab: Lab,
}

pub struct WorkerState {
    name: String,
    lab: Lab,
    _alive: AliveGuard,
}

struct AliveGuard {
    name: String,
    lab: Lab,
}

impl Drop for AliveGuard {
    fn drop(&mut self) {
        self.lab.alive.fetch_sub(1, Ordering::SeqCst);
        self.lab
            .log
            .lock()
            .unwrap()
            .push(format!("drop:{}", self.name));
    }
}

impl Actor for Worker {
    type Msg = WorkerMsg;
    type State = WorkerState;
    type Arguments = WorkerArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<WorkerMsg>,
        args: WorkerArgs,
    ) -> Result<WorkerState, ActorProcessingErr> {
        args.lab.starts.fetch_add(1, Ordering::SeqCst);
        if args.lab.failing.lock().unwrap().contains(&args.name) {
            return Err(format!("{} refuses to start", args.name).into());
        }
        args.lab.alive.fetch_add(1, Ordering::SeqCst);
        Ok(WorkerState {
            _alive: AliveGuard {
                name: args.name.clone(),
                lab: args.lab.clone(),
            },
            name: args.name,
            lab: args.lab,
        })
    }

    async fn post_stop(
        &self,
        _myself: ActorRef<WorkerMsg>,
        state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        state
            .lab
            .log
            .lock()
            .unwrap()
            .push(format!("stop:{}", state.name));
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<WorkerMsg>,
        msg: WorkerMsg,
        _state: &mut WorkerState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            WorkerMsg::Ping(reply) => {
                let _ = reply.send(myself.get_id());
            }
            WorkerMsg::Panic => panic!("worker told to panic"),
            WorkerMsg::Fail => return Err("worker told to fail".into()),
            WorkerMsg::ExitNormal => myself.stop(Some("normal".into())),
            WorkerMsg::Busy(d) => tokio::time::sleep(d).await,
        }
        Ok(())
    }
}

/// Silences the panic messages the tests provoke on purpose.
pub fn quiet_panics() {
    std::panic::set_hook(Box::new(|_| {}));
}

/// Polls `check` until it holds, or fails the test after 5 s.
pub async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The running incarnation of child `id`.
pub async fn cell_of(sup: &SupervisorRef, id: &str) -> Option<ActorCell> {
    sup.child(id).await.unwrap()
}

/// The actor id of child `id`, waiting until it runs.
pub async fn id_of(sup: &SupervisorRef, id: &str) -> ActorId {
    wait_for_incarnation(sup, id, None).await
}

/// Waits until child `id` runs as an incarnation other than `old`, and returns it.
pub async fn replaced(sup: &SupervisorRef, id: &str, old: ActorId) -> ActorId {
    wait_for_incarnation(sup, id, Some(old)).await
}

async fn wait_for_incarnation(sup: &SupervisorRef, id: &str, not: Option<ActorId>) -> ActorId {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(cell) = cell_of(sup, id).await
            && Some(cell.get_id()) != not
        {
            return cell.get_id();
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {id} to run (other than {not:?})"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sends `msg` to child `id`.
pub async fn tell(sup: &SupervisorRef, id: &str, msg: WorkerMsg) {
    let cell = cell_of(sup, id).await.expect("child is running");
    let actor: ActorRef<WorkerMsg> = cell.into();
    actor.cast(msg).unwrap();
}

/// A flag that a test can flip from inside an actor.
pub fn flag() -> Arc<AtomicBool> {
    Arc::new(AtomicBool::new(false))
}
