//! [`AbortOnDrop`]: a spawned task that dies with its owner.
//!
//! ractor skips `post_stop` when a handler fails, but it always drops the actor's state; an
//! actor that keeps its background work (an agent run, a pipeline step) in one of these
//! cannot leave that work running beside its restarted successor.

use tokio::task::JoinHandle;

/// A task that is aborted when this handle is dropped.
#[derive(Debug)]
pub struct AbortOnDrop<T = ()>(pub JoinHandle<T>);

impl AbortOnDrop {
    pub fn spawn(future: impl Future<Output = ()> + Send + 'static) -> Self {
        Self(tokio::spawn(future))
    }
}

impl<T: Send + 'static> AbortOnDrop<T> {
    pub fn spawn_with(future: impl Future<Output = T> + Send + 'static) -> Self {
        Self(tokio::spawn(future))
    }

    /// Waits for the task's result (an error if it panicked or was aborted).
    pub async fn join(mut self) -> Result<T, tokio::task::JoinError> {
        (&mut self.0).await
    }
}

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}
