//! Which host paths borg will bind-mount into a container: [`MountPolicy`].
//!
//! A mount is the one way host data reaches an agent, so every mount is checked before a
//! container is created, and a refused one fails the run with the path and the rule
//! ([`RefusedMount`]) instead of being skipped with a warning. A path is refused when it:
//!
//! 1. is not absolute, or has a `..` component (what it names depends on symlinks and the
//!    current directory, and reads like an attempt to climb out), or is not UTF-8 (the
//!    Engine API takes paths as text);
//! 2. does not exist (it is resolved through symlinks, and the resolved path is what the
//!    remaining rules judge and what gets mounted);
//! 3. is a socket, or is a directory holding a container engine's socket (a mounted engine
//!    socket is root on the host);
//! 4. is, or is under, a credentials store ([`SENSITIVE_NAMES`]: `.ssh`, `.aws`, `.env`,
//!    `.git-credentials`, …), as written or once resolved;
//! 5. directly holds one of the credential directories (it looks like someone's home);
//! 6. is not inside one of the allowed roots (DATA_DIR and the repositories), once resolved
//!    (a missing path outside them is refused as outside).
//!
//! The run's own home and workdir are created when missing ([`MountPolicy::create_and_check`]),
//! but only after the rules that need no file system, and only inside the roots: a refused
//! path is never made to exist.

use std::fmt;
use std::path::{Component, Path, PathBuf};

/// Names of credential stores: a path with one of these as a component is never mounted.
/// `.env` also covers `.env.local`, `.env.production` and the like.
pub const SENSITIVE_NAMES: &[&str] = &[
    ".ssh",
    ".aws",
    ".gnupg",
    ".kube",
    ".docker",
    ".azure",
    ".env",
    ".git-credentials",
    ".netrc",
    "credentials.json",
    ".pgpass",
    ".npmrc",
    ".pypirc",
];

/// Credential directories whose presence right inside a directory marks it as a user's home.
const HOME_MARKERS: &[&str] = &[".ssh", ".aws", ".gnupg", ".kube", ".docker"];

/// Where container engines keep their API sockets.
const ENGINE_SOCKETS: &[&str] = &[
    "/var/run/docker.sock",
    "/run/docker.sock",
    "/run/containerd/containerd.sock",
    "/run/podman/podman.sock",
];

/// Why a mount was refused (the module doc lists the rules).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountRule {
    NotAbsolute,
    ParentComponent,
    /// The Engine API takes paths as text.
    NotUnicode,
    /// It cannot be resolved; the I/O error.
    Missing(String),
    Socket,
    /// The engine socket inside it.
    HoldsEngineSocket(PathBuf),
    /// The credentials store it is or is under.
    Sensitive(String),
    /// The credential directory it holds.
    LooksLikeAHome(String),
    /// The allowed roots, as configured.
    OutsideAllowedRoots(Vec<PathBuf>),
    /// A home or workdir that exists but is not a directory.
    NotADirectory,
}

impl fmt::Display for MountRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotAbsolute => f.write_str("a mount must be an absolute path"),
            Self::ParentComponent => f.write_str("a mount may not contain `..`"),
            Self::NotUnicode => f.write_str("the Docker API takes only UTF-8 paths"),
            Self::Missing(err) => write!(f, "it cannot be resolved ({err})"),
            Self::Socket => {
                f.write_str("sockets are never mounted (a Docker socket is root on the host)")
            }
            Self::HoldsEngineSocket(socket) => write!(
                f,
                "it holds the container engine's socket {} (root on the host)",
                socket.display()
            ),
            Self::Sensitive(name) => {
                write!(f, "it is or is under `{name}`, which holds credentials")
            }
            Self::LooksLikeAHome(name) => write!(
                f,
                "it holds `{name}` and so looks like a user's home with credentials"
            ),
            Self::NotADirectory => f.write_str("it is not a directory"),
            Self::OutsideAllowedRoots(roots) if roots.is_empty() => {
                f.write_str("no directory is allowed for mounts (the allowed roots are empty)")
            }
            Self::OutsideAllowedRoots(roots) => {
                let roots: Vec<String> = roots.iter().map(|r| r.display().to_string()).collect();
                write!(
                    f,
                    "it is outside the allowed roots ({}): only DATA_DIR and the \
                     repositories may be mounted",
                    roots.join(", ")
                )
            }
        }
    }
}

/// A mount borg refused: the path as given and the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedMount {
    pub path: PathBuf,
    pub rule: MountRule,
}

impl fmt::Display for RefusedMount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "refused to mount {}: {}", self.path.display(), self.rule)
    }
}

impl std::error::Error for RefusedMount {}

/// The mount rules with their allowed roots.
#[derive(Debug, Clone)]
pub struct MountPolicy {
    allowed_roots: Vec<PathBuf>,
}

impl MountPolicy {
    pub fn new(allowed_roots: &[PathBuf]) -> Self {
        Self {
            allowed_roots: allowed_roots.to_vec(),
        }
    }

    /// Checks `path` (see the module doc) and returns what to mount: the path resolved
    /// through symlinks. Touches the file system (it resolves paths), so call it off the
    /// async workers when that matters.
    pub fn check(&self, path: &Path) -> Result<PathBuf, RefusedMount> {
        let refuse = |rule| RefusedMount {
            path: path.to_owned(),
            rule,
        };
        check_shape(path).map_err(refuse)?;
        let resolved = match path.canonicalize() {
            Ok(resolved) => resolved,
            Err(_) if !self.lexically_inside(path) => {
                return Err(refuse(self.outside()));
            }
            Err(err) => return Err(refuse(MountRule::Missing(err.to_string()))),
        };
        if let Some(name) = sensitive_component(&resolved) {
            return Err(refuse(MountRule::Sensitive(name)));
        }
        if resolved.to_str().is_none() {
            return Err(refuse(MountRule::NotUnicode));
        }
        let meta =
            std::fs::metadata(&resolved).map_err(|e| refuse(MountRule::Missing(e.to_string())))?;
        if std::os::unix::fs::FileTypeExt::is_socket(&meta.file_type()) {
            return Err(refuse(MountRule::Socket));
        }
        for socket in engine_sockets() {
            if socket.starts_with(&resolved) {
                return Err(refuse(MountRule::HoldsEngineSocket(socket)));
            }
        }
        if meta.is_dir()
            && let Some(marker) = HOME_MARKERS.iter().find(|m| resolved.join(m).exists())
        {
            return Err(refuse(MountRule::LooksLikeAHome((*marker).to_owned())));
        }
        let inside = self
            .allowed_roots
            .iter()
            .filter_map(|root| root.canonicalize().ok())
            .any(|root| resolved.starts_with(root));
        if !inside {
            return Err(refuse(self.outside()));
        }
        Ok(resolved)
    }

    fn outside(&self) -> MountRule {
        MountRule::OutsideAllowedRoots(self.allowed_roots.clone())
    }

    /// Whether `path` as written is under a root (as configured or resolved): what can be
    /// said of a path that does not exist yet.
    fn lexically_inside(&self, path: &Path) -> bool {
        self.allowed_roots.iter().any(|root| {
            path.starts_with(root) || root.canonicalize().is_ok_and(|r| path.starts_with(r))
        })
    }

    /// For a directory the run owns (its home, its workdir): the rules that need no file
    /// system first, so a refused path is never created; then creates it when missing and
    /// [`Self::check`]s it. The message of an `Err` names the path and the rule.
    pub fn create_and_check(&self, dir: &Path) -> Result<PathBuf, String> {
        check_shape(dir).map_err(|rule| {
            RefusedMount {
                path: dir.to_owned(),
                rule,
            }
            .to_string()
        })?;
        // Only what is missing, and only inside the roots: an existing file or socket is the
        // check's to judge, and nothing is ever created outside.
        if std::fs::symlink_metadata(dir).is_err() {
            if !self.lexically_inside(dir) {
                let refused = RefusedMount {
                    path: dir.to_owned(),
                    rule: self.outside(),
                };
                return Err(refused.to_string());
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let resolved = self.check(dir).map_err(|refused| refused.to_string())?;
        if !resolved.is_dir() {
            let refused = RefusedMount {
                path: dir.to_owned(),
                rule: MountRule::NotADirectory,
            };
            return Err(refused.to_string());
        }
        Ok(resolved)
    }
}

/// The rules that look at the path as written: absolute, no `..`, no credentials store.
fn check_shape(path: &Path) -> Result<(), MountRule> {
    if !path.is_absolute() {
        return Err(MountRule::NotAbsolute);
    }
    if path.components().any(|c| c == Component::ParentDir) {
        return Err(MountRule::ParentComponent);
    }
    if path.to_str().is_none() {
        return Err(MountRule::NotUnicode);
    }
    match sensitive_component(path) {
        Some(name) => Err(MountRule::Sensitive(name)),
        None => Ok(()),
    }
}

/// The first component of `path` that names a credentials store.
fn sensitive_component(path: &Path) -> Option<String> {
    path.components().find_map(|c| {
        let name = c.as_os_str().to_str()?;
        let hit = SENSITIVE_NAMES.contains(&name) || name.starts_with(".env.");
        hit.then(|| name.to_owned())
    })
}

/// The engine sockets that exist here, resolved, plus the one `DOCKER_HOST` names.
fn engine_sockets() -> Vec<PathBuf> {
    let from_env = std::env::var("DOCKER_HOST")
        .ok()
        .and_then(|h| h.strip_prefix("unix://").map(PathBuf::from));
    ENGINE_SOCKETS
        .iter()
        .map(PathBuf::from)
        .chain(from_env)
        .filter_map(|s| s.canonicalize().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(policy: &MountPolicy, path: &Path) -> MountRule {
        match policy.check(path) {
            Ok(resolved) => panic!("{} was allowed as {}", path.display(), resolved.display()),
            Err(refused) => {
                assert!(refused.to_string().contains(&path.display().to_string()));
                refused.rule
            }
        }
    }

    #[test]
    fn each_rule_refuses_and_a_plain_directory_under_a_root_passes() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().canonicalize().unwrap();
        let policy = MountPolicy::new(std::slice::from_ref(&base));
        let work = base.join("work");
        std::fs::create_dir_all(&work).unwrap();
        assert_eq!(policy.check(&work), Ok(work.clone()));

        assert_eq!(rule(&policy, Path::new("work")), MountRule::NotAbsolute);
        let odd =
            base.join(<std::ffi::OsStr as std::os::unix::ffi::OsStrExt>::from_bytes(b"bad\xff"));
        assert_eq!(rule(&policy, &odd), MountRule::NotUnicode);
        assert_eq!(
            rule(&policy, &work.join("../work")),
            MountRule::ParentComponent
        );
        for name in [
            ".ssh",
            ".aws",
            ".gnupg",
            ".kube",
            ".docker",
            ".env",
            ".env.local",
        ] {
            let dir = base.join(name);
            std::fs::create_dir_all(dir.join("inside")).unwrap();
            assert_eq!(rule(&policy, &dir), MountRule::Sensitive(name.into()));
            assert_eq!(
                rule(&policy, &dir.join("inside")),
                MountRule::Sensitive(name.into())
            );
        }
        for name in [".git-credentials", ".netrc", "credentials.json"] {
            std::fs::write(base.join(name), "secret").unwrap();
            assert_eq!(
                rule(&policy, &base.join(name)),
                MountRule::Sensitive(name.into())
            );
        }
        // base itself now holds .ssh and friends.
        assert_eq!(
            rule(&policy, &base),
            MountRule::LooksLikeAHome(".ssh".into())
        );
        assert!(matches!(
            rule(&policy, &base.join("missing")),
            MountRule::Missing(_)
        ));
        let outside = tempfile::tempdir().unwrap();
        assert!(matches!(
            rule(&policy, outside.path()),
            MountRule::OutsideAllowedRoots(_)
        ));
        assert!(matches!(
            rule(&MountPolicy::new(&[]), &work),
            MountRule::OutsideAllowedRoots(roots) if roots.is_empty()
        ));
    }

    #[test]
    fn symlinks_are_judged_by_where_they_lead() {
        let root = tempfile::tempdir().unwrap();
        let base = root.path().canonicalize().unwrap();
        let policy = MountPolicy::new(&[base.join("allowed")]);
        std::fs::create_dir_all(base.join("allowed")).unwrap();
        std::fs::create_dir_all(base.join("secret/.aws")).unwrap();
        std::os::unix::fs::symlink(base.join("secret/.aws"), base.join("allowed/innocent"))
            .unwrap();
        assert_eq!(
            rule(&policy, &base.join("allowed/innocent")),
            MountRule::Sensitive(".aws".into())
        );
        std::os::unix::fs::symlink(base.join("secret"), base.join("allowed/escape")).unwrap();
        assert!(matches!(
            rule(&policy, &base.join("allowed/escape")),
            MountRule::OutsideAllowedRoots(_) | MountRule::LooksLikeAHome(_)
        ));
    }

    #[test]
    fn the_engine_socket_and_its_directory_are_refused() {
        let everything = MountPolicy::new(&[PathBuf::from("/")]);
        let Some(socket) = engine_sockets().into_iter().next() else {
            let why = "no container engine socket on this machine to try the rule on";
            assert_ne!(
                std::env::var("BORG_TEST_STRICT").as_deref(),
                Ok("1"),
                "{why}"
            );
            eprintln!("\n!!!!!!!! SKIPPED: {why} !!!!!!!!\n");
            return;
        };
        assert_eq!(rule(&everything, &socket), MountRule::Socket);
        let dir = socket.parent().unwrap();
        assert!(matches!(
            rule(&everything, dir),
            MountRule::HoldsEngineSocket(_)
        ));
    }
}
