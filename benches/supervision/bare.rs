//! The baseline: hand-written ractor supervisors (one_for_one and one_for_all) that restart
//! a child with `spawn_linked` on `ActorFailed`, the least a user of bare ractor would write.

use super::*;

// ---------------------------------------------------------------------------------------------
// The bare-ractor baseline supervisor: the minimum a hand-written one needs.

pub(crate) struct HandSup;

pub(crate) struct HandArgs {
    pub(crate) n: usize,
    pub(crate) one_for_all: bool,
    pub(crate) announce: Option<Announce>,
}

pub(crate) struct HandState {
    pub(crate) children: Vec<ActorCell>,
    pub(crate) one_for_all: bool,
    pub(crate) announce: Option<Announce>,
}

pub(crate) enum HandMsg {
    /// The running incarnation of child `i`.
    Current(usize, RpcReplyPort<Option<ActorCell>>),
    /// Spawns one more linked child (the baseline of `start_child`).
    Spawn(RpcReplyPort<ActorCell>),
}

impl HandState {
    pub(crate) async fn spawn_child(
        &self,
        myself: &ActorRef<HandMsg>,
        idx: usize,
    ) -> Result<ActorCell, ActorProcessingErr> {
        let counter = Counter {
            idx,
            announce: self.announce.clone(),
        };
        let (r, _) = Actor::spawn_linked(None, counter, (), myself.get_cell()).await?;
        Ok(r.get_cell())
    }
}

impl Actor for HandSup {
    type Msg = HandMsg;
    type State = HandState;
    type Arguments = HandArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<HandMsg>,
        args: HandArgs,
    ) -> Result<HandState, ActorProcessingErr> {
        let mut state = HandState {
            children: Vec::with_capacity(args.n),
            one_for_all: args.one_for_all,
            announce: args.announce,
        };
        for i in 0..args.n {
            let cell = state.spawn_child(&myself, i).await?;
            state.children.push(cell);
        }
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<HandMsg>,
        msg: HandMsg,
        state: &mut HandState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            HandMsg::Current(i, reply) => {
                let _ = reply.send(state.children.get(i).cloned());
            }
            HandMsg::Spawn(reply) => {
                let cell = state.spawn_child(&myself, state.children.len()).await?;
                state.children.push(cell.clone());
                let _ = reply.send(cell);
            }
        }
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<HandMsg>,
        event: SupervisionEvent,
        state: &mut HandState,
    ) -> Result<(), ActorProcessingErr> {
        let SupervisionEvent::ActorFailed(cell, _) = event else {
            return Ok(());
        };
        let id = cell.get_id();
        let Some(failed) = state.children.iter().position(|c| c.get_id() == id) else {
            return Ok(());
        };
        if state.one_for_all {
            for j in (0..state.children.len()).rev() {
                if j != failed {
                    let _ = state.children[j]
                        .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(5)))
                        .await;
                }
            }
            for j in 0..state.children.len() {
                state.children[j] = state.spawn_child(&myself, j).await?;
            }
        } else {
            state.children[failed] = state.spawn_child(&myself, failed).await?;
        }
        Ok(())
    }
}
