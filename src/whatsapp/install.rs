//! Installing the bridge: the scripts (compiled into borg), its `package.json` pinning Baileys,
//! and the packages themselves, fetched by npm the first time (and after a borg upgrade that
//! changes a pinned version).
//!
//! Everything lives in one directory beside the auth state (`WHATSAPP_AUTH_DIR/../
//! whatsapp-bridge`), which borg owns: the scripts and `package.json` are rewritten when they
//! differ from this build's, and `npm install` runs when `node_modules` does not hold exactly
//! the pinned versions. npm runs with `--ignore-scripts` (no package gets to run code at
//! install time) and a cleared environment plus an allow-list, so borg's tokens never reach
//! it; install takes a minute or so and is bounded by a timeout.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use super::process::{Launch, ProcessGroup, allowed_env};
use super::{BridgeProgram, WhatsAppConfig};

/// The Baileys release the bridge is written against. Pinned exactly: Baileys changes its API
/// and behaviour in patch releases. (npm's `latest` tag points at 6.17.16, an older line
/// published out of order; 6.7.x is the maintained one.)
pub const BAILEYS_VERSION: &str = "6.7.24";
/// Draws the pairing QR code as text for the terminal.
pub const QRCODE_TERMINAL_VERSION: &str = "0.12.0";

/// The bridge script, written to `bridge.mjs` in the bridge directory.
pub const BRIDGE_SCRIPT: &str = include_str!("bridge.mjs");
/// The script's file name in the bridge directory.
pub const SCRIPT_NAME: &str = "bridge.mjs";
/// The stand-in for WhatsApp that `bridge.mjs --self-test` loads from beside itself.
const SELF_TEST_SCRIPT: &str = include_str!("selftest.mjs");
/// Every file of the bridge: name and content.
const SCRIPTS: [(&str, &str); 2] = [
    (SCRIPT_NAME, BRIDGE_SCRIPT),
    ("selftest.mjs", SELF_TEST_SCRIPT),
];

/// Writes the bridge's scripts into `dir` (which must exist); returns the main script's path.
/// For running it elsewhere, such as the contract test's `--self-test`.
pub fn write_scripts(dir: &Path) -> std::io::Result<PathBuf> {
    for (name, content) in SCRIPTS {
        std::fs::write(dir.join(name), content)?;
    }
    Ok(dir.join(SCRIPT_NAME))
}

/// The `package.json` that pins the bridge's packages.
pub fn package_json() -> String {
    let json = serde_json::json!({
        "name": "borg-whatsapp-bridge",
        "private": true,
        "description": "Written by borg; rewritten at every start. Do not edit.",
        "type": "module",
        "dependencies": {
            "@whiskeysockets/baileys": BAILEYS_VERSION,
            "qrcode-terminal": QRCODE_TERMINAL_VERSION,
        }
    });
    format!("{json:#}\n")
}

/// Why the bridge could not be installed, phrased so the user knows what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstallError(pub String);

impl std::fmt::Display for InstallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for InstallError {}

/// Writes the script and `package.json` into `dir` and installs the packages if needed.
/// Returns the script's path and whether npm ran.
pub async fn prepare(
    dir: &Path,
    npm: &Path,
    timeout: Duration,
) -> Result<(PathBuf, bool), InstallError> {
    let io = |what: &str, e: std::io::Error| {
        InstallError(format!("cannot {what} in {}: {e}", dir.display()))
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io("create the WhatsApp bridge directory", e))?;
    write_if_changed(&dir.join("package.json"), &package_json())
        .await
        .map_err(|e| io("write package.json", e))?;
    for (name, content) in SCRIPTS {
        write_if_changed(&dir.join(name), content)
            .await
            .map_err(|e| io("write the bridge script", e))?;
    }
    let script = dir.join(SCRIPT_NAME);
    if installed(dir).await {
        return Ok((script, false));
    }
    tracing::info!(
        dir = %dir.display(),
        baileys = BAILEYS_VERSION,
        "installing the WhatsApp bridge's packages with npm (the first time takes a minute or two)"
    );
    npm_install(dir, npm, timeout).await?;
    if !installed(dir).await {
        return Err(InstallError(format!(
            "npm finished, but {} still does not hold @whiskeysockets/baileys@{BAILEYS_VERSION} \
             and qrcode-terminal@{QRCODE_TERMINAL_VERSION}; install them by hand: \
             cd {} && npm install",
            dir.join("node_modules").display(),
            dir.display()
        )));
    }
    tracing::info!(dir = %dir.display(), "the WhatsApp bridge's packages are installed");
    Ok((script, true))
}

/// Makes the auth directory and, for borg's own script, installs the bridge.
pub async fn launch(config: &WhatsAppConfig) -> Result<Launch, String> {
    create_private_dir(&config.auth_dir).await.map_err(|e| {
        format!(
            "cannot create WHATSAPP_AUTH_DIR {}: {e}",
            config.auth_dir.display()
        )
    })?;
    Ok(match &config.bridge {
        BridgeProgram::Node { node, npm, dir } => {
            let (script, _) = prepare(dir, npm, config.install_timeout)
                .await
                .map_err(|e| e.to_string())?;
            Launch {
                program: node.clone(),
                args: vec![script.display().to_string()],
                auth_dir: config.auth_dir.clone(),
                cwd: Some(dir.clone()),
            }
        }
        BridgeProgram::Command { program, args } => Launch {
            program: program.clone(),
            args: args.clone(),
            auth_dir: config.auth_dir.clone(),
            cwd: None,
        },
    })
}

/// The session's keys are in there: only borg's user may read them.
async fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Writes `content` unless the file holds it already (keeps mtimes, and npm, quiet).
async fn write_if_changed(path: &Path, content: &str) -> std::io::Result<()> {
    match tokio::fs::read(path).await {
        Ok(old) if old == content.as_bytes() => Ok(()),
        _ => tokio::fs::write(path, content).await,
    }
}

/// Whether `node_modules` holds exactly the pinned versions.
async fn installed(dir: &Path) -> bool {
    let version_of = |package: &str| {
        let path = dir.join("node_modules").join(package).join("package.json");
        async move {
            let text = tokio::fs::read_to_string(path).await.ok()?;
            let json: serde_json::Value = serde_json::from_str(&text).ok()?;
            json.get("version")?.as_str().map(str::to_owned)
        }
    };
    version_of("@whiskeysockets/baileys").await.as_deref() == Some(BAILEYS_VERSION)
        && version_of("qrcode-terminal").await.as_deref() == Some(QRCODE_TERMINAL_VERSION)
}

/// How much of npm's output an error quotes: its end, where npm says what went wrong.
const NPM_OUTPUT_TAIL: usize = 2000;

async fn npm_install(dir: &Path, npm: &Path, timeout: Duration) -> Result<(), InstallError> {
    let mut command = Command::new(npm);
    command
        .args([
            "install",
            "--omit=dev",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
        ])
        .current_dir(dir)
        .env_clear()
        // npm's own settings (registry, proxy, cache) come as npm_config_* variables.
        .envs(allowed_env().chain(
            std::env::vars().filter(|(k, _)| k.to_ascii_lowercase().starts_with("npm_config_")),
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| {
        InstallError(format!(
            "cannot run npm ({}: {e}); the WhatsApp bridge needs Node.js 20 or newer with npm: \
             install them, or set WHATSAPP_NPM to npm's path",
            npm.display()
        ))
    })?;
    // From here on, leaving this function any way (timeout, the actor stopping) kills npm and
    // whatever it started.
    let _group = child.id().map(ProcessGroup::new);
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let collect = async {
        let mut text = Vec::new();
        if let Some(out) = out.as_mut() {
            let _ = out.read_to_end(&mut text).await;
        }
        if let Some(err) = err.as_mut() {
            let _ = err.read_to_end(&mut text).await;
        }
        (child.wait().await, text)
    };
    let (status, output) = tokio::time::timeout(timeout, collect).await.map_err(|_| {
        InstallError(format!(
            "npm install in {} did not finish within {timeout:?}; check access to the npm \
             registry (and to github.com, where a Baileys dependency lives)",
            dir.display()
        ))
    })?;
    let status = status.map_err(|e| InstallError(format!("waiting for npm failed: {e}")))?;
    if status.success() {
        return Ok(());
    }
    let output = String::from_utf8_lossy(&output);
    let tail = tail(output.trim(), NPM_OUTPUT_TAIL);
    Err(InstallError(format!(
        "npm install of @whiskeysockets/baileys@{BAILEYS_VERSION} in {} failed ({status}); \
         check access to the npm registry and github.com, and that git is installed \
         (a Baileys dependency comes from GitHub). npm said: {tail}",
        dir.display()
    )))
}

fn tail(text: &str, max: usize) -> &str {
    let mut start = text.len().saturating_sub(max);
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    /// A stand-in for npm that records its arguments and "installs" the given versions.
    fn fake_npm(dir: &Path, baileys: &str, exit: i32) -> PathBuf {
        let path = dir.join("fake-npm");
        let script = format!(
            "#!/bin/sh\necho \"$@\" >> \"$PWD/npm-calls\"\n\
             mkdir -p node_modules/@whiskeysockets/baileys node_modules/qrcode-terminal\n\
             echo '{{\"version\":\"{baileys}\"}}' > node_modules/@whiskeysockets/baileys/package.json\n\
             echo '{{\"version\":\"{QRCODE_TERMINAL_VERSION}\"}}' > node_modules/qrcode-terminal/package.json\n\
             echo 'npm ERR! something went wrong' >&2\nexit {exit}\n"
        );
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[tokio::test]
    async fn npm_runs_once_then_the_install_is_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let npm = fake_npm(tmp.path(), BAILEYS_VERSION, 0);
        let dir = tmp.path().join("bridge");
        let (script, ran) = prepare(&dir, &npm, Duration::from_secs(30)).await.unwrap();
        assert!(ran);
        assert_eq!(std::fs::read_to_string(&script).unwrap(), BRIDGE_SCRIPT);
        let calls = std::fs::read_to_string(dir.join("npm-calls")).unwrap();
        assert!(
            calls.starts_with("install ") && calls.contains("--ignore-scripts"),
            "{calls}"
        );
        let package: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("package.json")).unwrap())
                .unwrap();
        assert_eq!(
            package["dependencies"]["@whiskeysockets/baileys"],
            BAILEYS_VERSION
        );

        let (_, ran) = prepare(&dir, &npm, Duration::from_secs(30)).await.unwrap();
        assert!(!ran, "the pinned versions are there already");
        assert_eq!(
            std::fs::read_to_string(dir.join("npm-calls"))
                .unwrap()
                .lines()
                .count(),
            1
        );
    }

    #[tokio::test]
    async fn failures_name_what_to_fix() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = prepare(
            &tmp.path().join("a"),
            Path::new("/nonexistent/npm"),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
        assert!(missing.0.contains("WHATSAPP_NPM"), "{missing}");

        let failing = fake_npm(tmp.path(), BAILEYS_VERSION, 1);
        let err = prepare(&tmp.path().join("b"), &failing, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(err.0.contains("npm ERR! something went wrong"), "{err}");

        let wrong = fake_npm(tmp.path(), "6.0.0", 0);
        let err = prepare(&tmp.path().join("c"), &wrong, Duration::from_secs(30))
            .await
            .unwrap_err();
        assert!(err.0.contains("install them by hand"), "{err}");
    }
}
