//! A switch in front of the real Docker engine: a Unix socket of the test's own that passes
//! every connection through to `/var/run/docker.sock` while it is on. Turning it off closes
//! the socket and cuts every connection in the middle, which is exactly what a daemon sees
//! when the engine stops or restarts (for an upgrade, say), without stopping the engine that
//! the other tests and the containers themselves need. Point `DOCKER_HOST` at [`host`].
//!
//! [`host`]: EngineSwitch::host

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::net::{UnixListener, UnixStream};
use tokio::task::AbortHandle;

/// The real engine's socket.
pub const ENGINE_SOCKET: &str = "/var/run/docker.sock";

pub struct EngineSwitch {
    socket: PathBuf,
    /// The accept loop and every connection it passes through, while on.
    live: Arc<Mutex<Vec<AbortHandle>>>,
}

impl EngineSwitch {
    /// A switch at `dir/docker.sock`, on.
    pub fn on(dir: &Path) -> EngineSwitch {
        let switch = EngineSwitch {
            socket: dir.join("docker.sock"),
            live: Arc::default(),
        };
        switch.turn_on();
        switch
    }

    /// `DOCKER_HOST` for the daemon under test.
    pub fn host(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn turn_on(&self) {
        let _ = std::fs::remove_file(&self.socket);
        let listener = UnixListener::bind(&self.socket).expect("bind the switch's socket");
        let live = self.live.clone();
        let accept = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let pass = tokio::spawn(async move {
                    if let Ok(mut engine) = UnixStream::connect(ENGINE_SOCKET).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut engine).await;
                    }
                });
                live.lock().unwrap().push(pass.abort_handle());
            }
        });
        self.live.lock().unwrap().push(accept.abort_handle());
    }

    /// Closes the socket and cuts every connection: the engine is gone for the daemon.
    pub fn turn_off(&self) {
        for task in self.live.lock().unwrap().drain(..) {
            task.abort();
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

impl Drop for EngineSwitch {
    fn drop(&mut self) {
        self.turn_off();
    }
}
