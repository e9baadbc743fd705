//! What the subtrees' wiring shares: the registered names by which actors find their
//! siblings, and the spec of a dynamic supervisor. A leaf module, so `tree`, `chat` and
//! `pipeline` can all use it without depending on each other.

use std::time::Duration;

use supervisors::supervisor::SupervisorArgs;
use supervisors::{ChildSpec, Intensity, Shutdown, StartCtx, Supervisor, SupervisorSpec};

/// The agent slots (`MAX_CONCURRENT_AGENTS`), shared by chat and pipeline.
pub const SLOTS_NAME: &str = "borg:agent-slots";
/// The chat router, through which the pipeline announces phase changes.
pub const ROUTER_NAME: &str = "borg:chat:router";

/// A supervisor of dynamic children (chat groups, tasks) registered as `name`, so its
/// siblings find it again after a restart. Its children fail alone and each has its own
/// breaker, so its restart limit is generous.
pub fn dynamic_supervisor(id: &str, name: String) -> ChildSpec {
    ChildSpec::new(id, move |ctx: StartCtx| {
        let name = name.clone();
        async move {
            let args = SupervisorArgs {
                spec: SupervisorSpec {
                    intensity: Intensity {
                        max_restarts: 50,
                        period: Duration::from_secs(10),
                    },
                    ..SupervisorSpec::default()
                },
                path: ctx.path.clone(),
                introspection: ctx.introspection.clone(),
            };
            ctx.spawn_named(Some(name), Supervisor, args)
                .await
                .map(Some)
        }
    })
    .kind("supervisor")
    .shutdown(Shutdown::Infinity)
}
