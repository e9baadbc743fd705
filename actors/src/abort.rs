//! [`AbortOnDrop`]: a spawned task that dies with its owner.
//!
//! ractor skips `post_stop` when a handler fails, but it always drops the actor's state; an
//! actor that keeps its background work (an agent run, a pipeline step) in one of these
//! cannot leave that work running beside its restarted successor.

use tokio::task::JoinHandle;

/// A task that is aborted when this handle is dropped.
#[derive(Debug)]
pub struct AbortOnDrop(pub JoinHandle<()>);

impl AbortOnDrop {
    pub fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(future))
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
