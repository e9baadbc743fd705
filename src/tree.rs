//! The daemon's supervision tree, drawn in one place. ARCHITECTURE.md shows the same tree.
//!
//! ```text
//! root (one_for_one)
//! ├── store       owns the redb writer; started first, so it stops last
//! ├── control     the control socket `borg status` talks to
//! ├── chat        (one_for_one) chat transports and group actors
//! └── pipeline    (one_for_one) repositories, tasks, release trains
//! ```
//!
//! `chat` and `pipeline` start empty: the chat and pipeline features add their children.

use std::time::{Duration, Instant};

use ractor::{Actor, ActorProcessingErr, ActorRef};
use supervisors::{
    Backoff, ChildSpec, Intensity, Introspection, Shutdown, Strategy, SupervisorSpec,
};

use crate::control::{ControlArgs, ControlSocket};
use crate::store::Store;

/// What the tree is built from.
pub struct TreeArgs {
    pub data_dir: std::path::PathBuf,
    pub store: Store,
    pub introspection: Introspection,
    pub started: Instant,
}

/// The root supervisor's spec.
pub fn root_spec(args: TreeArgs) -> SupervisorSpec {
    let store = args.store.clone();
    let control = ControlArgs {
        data_dir: args.data_dir,
        introspection: args.introspection,
        store: args.store,
        started: args.started,
    };
    SupervisorSpec {
        strategy: Strategy::OneForOne,
        // A little more forgiving than OTP's 1 in 5 s: the root failing takes the daemon down.
        intensity: Intensity {
            max_restarts: 3,
            period: Duration::from_secs(5),
        },
        children: vec![
            ChildSpec::actor("store", move || (StoreKeeper, store.clone()))
                .kind("store")
                // Closing the store waits for the last group commit to be durable.
                .shutdown(Shutdown::Infinity),
            ChildSpec::actor("control", move || (ControlSocket, control.clone()))
                .kind("control")
                .backoff(Backoff::default()),
            ChildSpec::supervisor("chat", SupervisorSpec::default()),
            ChildSpec::supervisor("pipeline", SupervisorSpec::default()),
        ],
    }
}

/// Keeps the store open for as long as the tree runs. As the first child it is stopped last,
/// after every actor that could still write a snapshot; stopping it flushes and closes the
/// database.
pub struct StoreKeeper;

impl Actor for StoreKeeper {
    type Msg = ();
    type State = Store;
    type Arguments = Store;

    async fn pre_start(&self, _: ActorRef<()>, store: Store) -> Result<Store, ActorProcessingErr> {
        Ok(store)
    }

    async fn post_stop(
        &self,
        _: ActorRef<()>,
        store: &mut Store,
    ) -> Result<(), ActorProcessingErr> {
        store.close().await;
        Ok(())
    }
}
