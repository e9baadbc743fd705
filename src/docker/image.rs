//! The agent image: its build context made in memory ([`BuildContext`]), the build through
//! the classic builder ([`build_agent_image`]) and what the engine has ([`image_status`]).
//!
//! The context is `container/` (without its Markdown, and without `daemon/`, which holds the
//! files that deploy borg itself) as a tar made deterministic (sorted
//! entries, no timestamps or owners, modes reduced to 0644/0755), plus `extra-ca/` holding the CA certificates the
//! caller adds ([`host_extra_ca_certs`]: a machine behind a TLS-inspecting proxy needs its
//! own to reach npm during the build). The image is labelled with a hash of those exact
//! bytes ([`CONTEXT_HASH_LABEL`]), so comparing the label with [`BuildContext::hash`] tells
//! whether an image is current without building. The hash is FNV-1a 128: it detects change,
//! it is not meant to resist forgery (whoever can edit `container/` owns the image anyway).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use bollard::Docker;
use bollard::query_parameters::BuildImageOptionsBuilder;
use futures_util::StreamExt;

use super::{DockerError, digest, engine_error};

/// The image label holding the hash of the context it was built from.
pub const CONTEXT_HASH_LABEL: &str = "borg.context-hash";
/// Where Debian keeps locally added CA certificates (`update-ca-certificates` reads it).
const LOCAL_CA_DIR: &str = "/usr/local/share/ca-certificates";
/// How much of the failing step's output a build error keeps.
const BUILD_OUTPUT_TAIL: usize = 6 << 10;
/// The subfolder of `container/` with borg's own deployment files (its unit, Dockerfile and
/// Compose file): beside the agent image's context, not part of it.
const DEPLOYMENT_DIR: &str = "daemon";

/// `container/` as compiled in: every file but documentation, sorted, with its mode.
const EMBEDDED: &[(&str, u32, &[u8])] = &[
    (
        "Dockerfile",
        0o644,
        include_bytes!("../../container/Dockerfile"),
    ),
    (
        "entrypoint.sh",
        0o755,
        include_bytes!("../../container/entrypoint.sh"),
    ),
    (
        "make-base-image.sh",
        0o755,
        include_bytes!("../../container/make-base-image.sh"),
    ),
];

/// A build context in memory and its hash.
#[derive(Debug, Clone)]
pub struct BuildContext {
    tar: Vec<u8>,
    hash: String,
}

impl BuildContext {
    /// Every regular file under `dir` (symlinks followed) but documentation (`*.md`, which
    /// no build reads, so editing it does not make the image stale) and the top-level
    /// `daemon/` folder (borg's own deployment files), plus `extra_ca_certs` under
    /// `extra-ca/` (named `*.crt`, which is all `update-ca-certificates` reads).
    pub fn from_dir(dir: &Path, extra_ca_certs: &[PathBuf]) -> Result<Self, DockerError> {
        let cannot = |what: &Path, err: std::io::Error| {
            DockerError::Other(format!(
                "cannot read the image build context {}: {err}",
                what.display()
            ))
        };
        let mut names = Vec::new();
        collect_files(dir, dir, &mut names).map_err(|e| cannot(dir, e))?;
        names.retain(|f| f.extension().is_none_or(|e| e != "md") && !f.starts_with(DEPLOYMENT_DIR));
        names.sort();
        let mut files = Vec::new();
        for relative in &names {
            let path = dir.join(relative);
            let data = std::fs::read(&path).map_err(|e| cannot(&path, e))?;
            let meta = std::fs::metadata(&path).map_err(|e| cannot(&path, e))?;
            let executable = std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o111;
            let mode = if executable != 0 { 0o755 } else { 0o644 };
            files.push((relative.to_string_lossy().into_owned(), mode, data));
        }
        Self::from_files(&files, extra_ca_certs)
    }

    /// The `container/` folder this binary was built with (embedded at compile time), so
    /// `borg image build` works from an installed binary. Byte for byte the same context as
    /// [`from_dir`](Self::from_dir) on the source tree's `container/`, hence the same hash.
    pub fn embedded(extra_ca_certs: &[PathBuf]) -> Result<Self, DockerError> {
        let files: Vec<(String, u32, Vec<u8>)> = EMBEDDED
            .iter()
            .map(|(name, mode, data)| (name.to_string(), *mode, data.to_vec()))
            .collect();
        Self::from_files(&files, extra_ca_certs)
    }

    /// `files` (name, mode, bytes) in the given order, then `extra_ca_certs` under
    /// `extra-ca/` (named `*.crt`, which is all `update-ca-certificates` reads).
    fn from_files(
        files: &[(String, u32, Vec<u8>)],
        extra_ca_certs: &[PathBuf],
    ) -> Result<Self, DockerError> {
        let cannot = |what: &str, err: std::io::Error| {
            DockerError::Other(format!(
                "cannot make the image build context ({what}): {err}"
            ))
        };
        let mut tar = tar::Builder::new(Vec::new());
        for (name, mode, data) in files {
            append(&mut tar, name, *mode, data).map_err(|e| cannot(name, e))?;
        }
        // Always present, so `COPY extra-ca/` works with no certificate at all.
        let mut dir_header = tar::Header::new_gnu();
        dir_header.set_entry_type(tar::EntryType::Directory);
        dir_header.set_mode(0o755);
        dir_header.set_size(0);
        dir_header.set_mtime(0);
        tar.append_data(&mut dir_header, "extra-ca/", std::io::empty())
            .map_err(|e| cannot("extra-ca/", e))?;
        for (i, cert) in extra_ca_certs.iter().enumerate() {
            let shown = cert.display().to_string();
            let data = std::fs::read(cert).map_err(|e| cannot(&shown, e))?;
            let stem = cert
                .file_stem()
                .map_or("ca".into(), |s| s.to_string_lossy());
            append(
                &mut tar,
                &format!("extra-ca/{i:02}-{stem}.crt"),
                0o644,
                &data,
            )
            .map_err(|e| cannot(&shown, e))?;
        }
        let tar = tar.into_inner().map_err(|e| cannot("tar", e))?;
        let hash = digest(&tar);
        Ok(Self { tar, hash })
    }

    /// Hex digest of the context's bytes, as the image's [`CONTEXT_HASH_LABEL`] carries it.
    pub fn hash(&self) -> &str {
        &self.hash
    }
}

/// Shorthand for [`BuildContext::from_dir`]`(..).hash()`.
pub fn context_hash(dir: &Path, extra_ca_certs: &[PathBuf]) -> Result<String, DockerError> {
    Ok(BuildContext::from_dir(dir, extra_ca_certs)?.hash)
}

/// The CA certificates added to this machine by hand (`/usr/local/share/ca-certificates`,
/// `*.crt`, sorted): the ones an image built here needs to reach what this machine reaches.
pub fn host_extra_ca_certs() -> Vec<PathBuf> {
    let mut found = Vec::new();
    let root = Path::new(LOCAL_CA_DIR);
    let _ = collect_files(root, root, &mut found);
    let mut certs: Vec<PathBuf> = found
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "crt"))
        .map(|p| root.join(p))
        .collect();
    certs.sort();
    certs
}

/// What the engine has under a tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageStatus {
    pub id: String,
    /// When it was built (RFC 3339, as the engine says it).
    pub created: Option<String>,
    /// The hash of the context it was built from; `None` for an image borg did not build.
    pub context_hash: Option<String>,
}

/// The image under `tag`, or `None` when the engine has none.
pub async fn image_status(docker: &Docker, tag: &str) -> Result<Option<ImageStatus>, DockerError> {
    match docker.inspect_image(tag).await {
        Ok(image) => Ok(Some(ImageStatus {
            id: image.id.unwrap_or_default(),
            created: image.created.map(|c| c.to_string()),
            context_hash: image
                .config
                .and_then(|c| c.labels)
                .and_then(|mut labels| labels.remove(CONTEXT_HASH_LABEL)),
        })),
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => Ok(None),
        Err(err) => Err(DockerError::Other(engine_error(
            &format!("inspecting image {tag}"),
            &err,
        ))),
    }
}

/// Builds `context` as `tag` with the classic builder (no registry is contacted: `FROM` must
/// name an image the engine has), labelled with the context's hash. `progress` gets each
/// line the build prints. A failed build is a [`DockerError::Build`] naming the step that
/// failed and holding the end of that step's output.
pub async fn build_agent_image(
    docker: &Docker,
    context: &BuildContext,
    tag: &str,
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(), DockerError> {
    let labels = HashMap::from([(CONTEXT_HASH_LABEL, context.hash.as_str())]);
    let options = BuildImageOptionsBuilder::default()
        .dockerfile("Dockerfile")
        .t(tag)
        .rm(true)
        .forcerm(true)
        .labels(&labels)
        .build();
    let body = bollard::body_full(context.tar.clone().into());
    let mut stream = docker.build_image(options, None, Some(body));
    let mut step: Option<String> = None;
    let mut output = String::new();
    while let Some(item) = stream.next().await {
        let info = match item {
            Ok(info) => info,
            Err(err) => {
                return Err(DockerError::Build {
                    step,
                    message: engine_error(&format!("building {tag}"), &err),
                    output: tail(&output),
                });
            }
        };
        if let Some(text) = info.stream.as_deref().or(info.status.as_deref()) {
            for line in text.lines() {
                progress(line);
                // Classic builder: "Step 8/15 : RUN npm install ..." starts a step.
                if let Some((_, instruction)) = line
                    .strip_prefix("Step ")
                    .and_then(|rest| rest.split_once(" : "))
                {
                    step = Some(instruction.to_owned());
                    output.clear();
                } else {
                    output.push_str(line);
                    output.push('\n');
                    if output.len() > 2 * BUILD_OUTPUT_TAIL {
                        output = tail(&output);
                    }
                }
            }
        }
        if let Some(message) = info.error_detail.and_then(|d| d.message) {
            return Err(DockerError::Build {
                step,
                message,
                output: tail(&output),
            });
        }
    }
    Ok(())
}

/// The last [`BUILD_OUTPUT_TAIL`] bytes of `text`, cut at a character boundary.
fn tail(text: &str) -> String {
    let mut start = text.len().saturating_sub(BUILD_OUTPUT_TAIL);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    text[start..].to_owned()
}

fn append(
    tar: &mut tar::Builder<Vec<u8>>,
    name: &str,
    mode: u32,
    data: &[u8],
) -> std::io::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(mode);
    header.set_size(data.len() as u64);
    header.set_mtime(0);
    header.set_uid(0);
    header.set_gid(0);
    tar.append_data(&mut header, name, data)
}

/// Paths of the regular files under `dir`, relative to `base`, following symlinks.
fn collect_files(base: &Path, dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let meta = std::fs::metadata(&path)?;
        if meta.is_dir() {
            collect_files(base, &path, out)?;
        } else if meta.is_file()
            && let Ok(relative) = path.strip_prefix(base)
        {
            out.push(relative.to_owned());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_context_is_the_source_trees_container_folder() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("container");
        assert_eq!(
            BuildContext::embedded(&[]).unwrap().hash(),
            BuildContext::from_dir(&dir, &[]).unwrap().hash(),
            "a file was added to container/ but not to EMBEDDED (or a mode differs)"
        );
    }

    #[test]
    fn the_hash_follows_contents_and_modes_but_not_timestamps() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/a.sh"), "echo a\n").unwrap();
        std::fs::write(dir.path().join("README.md"), "docs").unwrap();
        let first = context_hash(dir.path(), &[]).unwrap();
        std::fs::write(dir.path().join("README.md"), "other docs").unwrap();
        assert_eq!(
            context_hash(dir.path(), &[]).unwrap(),
            first,
            "docs are not context"
        );
        // Rewritten with the same bytes later: same hash.
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("sub/a.sh"), "echo a\n").unwrap();
        assert_eq!(context_hash(dir.path(), &[]).unwrap(), first);
        let exec = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        std::fs::set_permissions(dir.path().join("sub/a.sh"), exec).unwrap();
        let executable = context_hash(dir.path(), &[]).unwrap();
        assert_ne!(executable, first, "the mode is part of the context");
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch \n").unwrap();
        assert_ne!(context_hash(dir.path(), &[]).unwrap(), executable);
        let elsewhere = tempfile::tempdir().unwrap();
        let ca = elsewhere.path().join("extra.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let with_ca = BuildContext::from_dir(dir.path(), std::slice::from_ref(&ca)).unwrap();
        assert_ne!(with_ca.hash(), context_hash(dir.path(), &[]).unwrap());
        let names: Vec<String> = tar::Archive::new(with_ca.tar.as_slice())
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().display().to_string())
            .collect();
        assert_eq!(
            names,
            [
                "Dockerfile",
                "sub/a.sh",
                "extra-ca/",
                "extra-ca/00-extra.crt"
            ]
        );
    }

    #[test]
    fn borgs_own_deployment_files_are_not_agent_image_context() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        let before = context_hash(dir.path(), &[]).unwrap();
        std::fs::create_dir(dir.path().join(DEPLOYMENT_DIR)).unwrap();
        std::fs::write(dir.path().join("daemon/borg.service"), "[Service]\n").unwrap();
        assert_eq!(context_hash(dir.path(), &[]).unwrap(), before);
        // Only the top-level folder: a `daemon/` deeper down is context like any other.
        std::fs::create_dir_all(dir.path().join("sub/daemon")).unwrap();
        std::fs::write(dir.path().join("sub/daemon/a.sh"), "echo a\n").unwrap();
        assert_ne!(context_hash(dir.path(), &[]).unwrap(), before);
    }

    #[test]
    fn a_build_error_tail_is_bounded_and_cut_on_a_character() {
        let long = format!("é{}", "x".repeat(BUILD_OUTPUT_TAIL));
        let cut = tail(&long);
        assert!(cut.len() <= BUILD_OUTPUT_TAIL && cut.ends_with('x'));
    }
}
