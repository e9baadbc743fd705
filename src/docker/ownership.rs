//! Who a container runs as ([`RunAs`]) and handing the mounted directories to that user and
//! back ([`hand_over`]).
//!
//! Containers never run as root. When borg is not root they run as borg's own uid:gid, and
//! the mounts need nothing. When borg is root they run as [`AGENT_UID`]:[`AGENT_GID`] (the
//! image's `agent`), so the worktree and home are handed to that id before the run, for the
//! agent to write them, and back to root after it, because the host's git refuses to work in
//! a repository owned by someone else ("dubious ownership").

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// The image's `agent` user (container/Dockerfile).
pub const AGENT_UID: u32 = 1000;
pub const AGENT_GID: u32 = 1000;

/// The user a container runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// borg's own ids when the mounts must be handed over (borg is root) and back.
    pub hand_back_to: Option<(u32, u32)>,
}

impl RunAs {
    /// Decided from borg's effective ids.
    pub fn for_this_process() -> io::Result<Self> {
        let (uid, gid) = effective_ids()?;
        Ok(Self::for_ids(uid, gid))
    }

    pub fn for_ids(uid: u32, gid: u32) -> Self {
        if uid == 0 {
            Self {
                uid: AGENT_UID,
                gid: AGENT_GID,
                hand_back_to: Some((uid, gid)),
            }
        } else {
            Self {
                uid,
                gid,
                hand_back_to: None,
            }
        }
    }

    /// `Config.User` of the container.
    pub fn user(&self) -> String {
        format!("{}:{}", self.uid, self.gid)
    }

    /// Gives `paths` (recursively) to the container's user, when borg is root.
    pub fn hand_over(&self, paths: &[PathBuf]) -> io::Result<()> {
        if self.hand_back_to.is_some() {
            for path in paths {
                hand_over(path, self.uid, self.gid)?;
            }
        }
        Ok(())
    }

    /// Gives `paths` back to borg after the run (when they were handed over). Failures are
    /// logged: the run is over and there is nobody to tell but the log.
    pub fn hand_back(&self, paths: &[PathBuf]) {
        if let Some((uid, gid)) = self.hand_back_to {
            for path in paths {
                if let Err(err) = hand_over(path, uid, gid) {
                    tracing::error!(path = %path.display(), %err,
                        "cannot give a container's mount back to borg; git may refuse it");
                }
            }
        }
    }
}

/// borg's effective uid and gid. std has no call for them; `/proc/self` belongs to them.
fn effective_ids() -> io::Result<(u32, u32)> {
    let meta = std::fs::metadata("/proc/self")?;
    Ok((meta.uid(), meta.gid()))
}

/// Sets the owner of `root` and everything under it to `uid:gid`, without following
/// symlinks (a link the agent planted must not hand over its target) and touching only
/// entries that differ, so a tree that is already right costs one walk of `stat`s. Entries
/// that vanish during the walk are skipped.
pub fn hand_over(root: &Path, uid: u32, gid: u32) -> io::Result<()> {
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
            Err(err) => return Err(with_path(err, &path)),
        };
        if meta.uid() != uid || meta.gid() != gid {
            match std::os::unix::fs::lchown(&path, Some(uid), Some(gid)) {
                Ok(()) => {}
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(with_path(err, &path)),
            }
        }
        if meta.is_dir() {
            let entries = match std::fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(err) if err.kind() == io::ErrorKind::NotFound => continue,
                Err(err) => return Err(with_path(err, &path)),
            };
            for entry in entries {
                pending.push(entry.map_err(|e| with_path(e, &path))?.path());
            }
        }
    }
    Ok(())
}

fn with_path(err: io::Error, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{}: {err}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_runs_containers_as_the_agent_and_others_as_themselves() {
        assert_eq!(
            RunAs::for_ids(0, 0),
            RunAs {
                uid: 1000,
                gid: 1000,
                hand_back_to: Some((0, 0))
            }
        );
        let user = RunAs::for_ids(1234, 99);
        assert_eq!((user.user(), user.hand_back_to), ("1234:99".into(), None));
    }

    #[test]
    fn a_tree_is_handed_over_and_back_without_following_links() {
        let (uid, gid) = effective_ids().unwrap();
        if uid != 0 {
            eprintln!("not root: chown to another user cannot be tried here");
            return;
        }
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let tree = root.path().join("tree");
        std::fs::create_dir_all(tree.join("a/b")).unwrap();
        std::fs::write(tree.join("a/b/file"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), tree.join("link")).unwrap();
        hand_over(&tree, 1000, 1000).unwrap();
        for p in ["", "a", "a/b", "a/b/file", "link"] {
            let meta = std::fs::symlink_metadata(tree.join(p)).unwrap();
            assert_eq!((meta.uid(), meta.gid()), (1000, 1000), "{p}");
        }
        let target = std::fs::metadata(outside.path()).unwrap();
        assert_eq!(target.uid(), 0, "the link's target was not followed");
        RunAs::for_ids(0, 0).hand_back(std::slice::from_ref(&tree));
        let meta = std::fs::metadata(tree.join("a/b/file")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    }
}
