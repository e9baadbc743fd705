//! Drives the cargo-fuzz targets in `tests/fuzz-targets/` for `tests/fuzz.rs`: built with the
//! pinned stable toolchain (`--sanitizer none`) into `target/fuzz` (its own target directory,
//! so the build lock of the `cargo test` running this is no obstacle), each run from its
//! committed seeds into a scratch corpus that is thrown away, so a run never changes the
//! repository. A crash leaves its input in `target/fuzz/artifacts/<target>/`.

use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Instant, SystemTime};

/// The fuzz crate, its target directory and a scratch directory for logs and corpora.
pub struct CargoFuzz {
    root: PathBuf,
    fuzz_dir: PathBuf,
    target_dir: PathBuf,
    cargo: OsString,
    scratch: tempfile::TempDir,
}

/// What one target's run did.
pub struct Ran {
    pub runs: u64,
    pub secs: f64,
    /// Inputs in the corpus at the end.
    pub corpus: usize,
}

impl CargoFuzz {
    /// `None` when `cargo fuzz` is not installed.
    pub fn new() -> Option<CargoFuzz> {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let installed = Command::new(&cargo)
            .args(["fuzz", "--version"])
            .output()
            .is_ok_and(|out| out.status.success());
        if !installed {
            return None;
        }
        let target_dir = root.join("target/fuzz");
        std::fs::create_dir_all(&target_dir).unwrap();
        // In memory where there is /dev/shm: the config target writes every input to a file,
        // 30 times faster there than on a busy disk.
        let shm = Path::new("/dev/shm");
        let scratch = if shm.is_dir() {
            tempfile::Builder::new().prefix("borg-fuzz").tempdir_in(shm)
        } else {
            tempfile::tempdir()
        }
        .unwrap();
        Some(CargoFuzz {
            fuzz_dir: root.join("tests/fuzz-targets"),
            root,
            target_dir,
            cargo,
            scratch,
        })
    }

    /// cargo fuzz has no --locked: checks the lock file first, so that a stale one fails
    /// here instead of being rewritten. `Err` holds the end of cargo's output.
    pub fn check_lock(&self) -> Result<(), String> {
        let log = self.log("fetch");
        let mut fetch = Command::new(&self.cargo);
        fetch
            .args(["fetch", "--locked", "--manifest-path"])
            .arg(self.fuzz_dir.join("Cargo.toml"))
            .current_dir(&self.root);
        run_logged(fetch, &log)
            .success()
            .then_some(())
            .ok_or_else(|| tail(&log, 30))
    }

    /// Builds every target. `Err` holds the end of the build's output.
    pub fn build(&self) -> Result<(), String> {
        let log = self.log("build");
        run_logged(self.command("build"), &log)
            .success()
            .then_some(())
            .ok_or_else(|| tail(&log, 60))
    }

    /// The targets' names, sorted.
    pub fn targets(&self) -> Vec<String> {
        let mut targets: Vec<String> = std::fs::read_dir(self.fuzz_dir.join("fuzz_targets"))
            .unwrap()
            .filter_map(|entry| {
                let name = entry.unwrap().file_name().into_string().unwrap();
                name.strip_suffix(".rs").map(str::to_owned)
            })
            .collect();
        targets.sort();
        targets
    }

    /// Runs `target` for `seconds` from its committed seeds plus `extra_seeds`. `Err` says
    /// what failed, with the crash input, the panic, how to reproduce it and libFuzzer's
    /// report.
    pub fn run(&self, target: &str, seconds: u64, extra_seeds: &[Vec<u8>]) -> Result<Ran, String> {
        let corpus = self.scratch.path().join("corpus").join(target);
        std::fs::create_dir_all(&corpus).unwrap();
        for (i, bytes) in extra_seeds.iter().enumerate() {
            std::fs::write(corpus.join(format!("valid-{i}")), bytes).unwrap();
        }
        let artifacts = self.target_dir.join("artifacts").join(target);
        std::fs::create_dir_all(&artifacts).unwrap();
        let log = self.log(target);
        let before = SystemTime::now();
        let started = Instant::now();
        let mut run = self.command("run");
        run.arg(target)
            .arg(&corpus)
            .arg(self.fuzz_dir.join("seeds").join(target))
            .arg("--")
            .arg(format!("-max_total_time={seconds}"))
            // A single input that takes this long is a hang, reported like a crash.
            .arg("-timeout=10")
            // After cargo fuzz's own prefix (in tests/fuzz-targets), so this one wins.
            .arg(format!("-artifact_prefix={}/", artifacts.display()))
            .arg("-print_final_stats=1");
        let status = run_logged(run, &log);
        // cargo fuzz makes an (empty, ignored) artifacts directory beside the targets.
        let _ = std::fs::remove_dir(self.fuzz_dir.join("artifacts").join(target));
        let _ = std::fs::remove_dir(self.fuzz_dir.join("artifacts"));
        let report = std::fs::read_to_string(&log).unwrap_or_default();
        if status.success() {
            return Ok(Ran {
                runs: report
                    .lines()
                    .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
                    .and_then(|n| n.trim().parse().ok())
                    .unwrap_or(0),
                secs: started.elapsed().as_secs_f64(),
                corpus: std::fs::read_dir(&corpus).map_or(0, |d| d.count()),
            });
        }
        let inputs: Vec<String> = std::fs::read_dir(&artifacts)
            .into_iter()
            .flatten()
            .filter_map(Result::ok)
            .filter(|e| {
                e.metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t >= before)
            })
            .map(|e| e.path().display().to_string())
            .collect();
        // libFuzzer's own report ends the log; the panic message is above the backtrace.
        let lines: Vec<&str> = report.lines().collect();
        let panic = lines
            .iter()
            .position(|l| l.contains("panicked at"))
            .map_or(String::new(), |i| {
                lines[i..(i + 2).min(lines.len())].join("\n")
            });
        Err(format!(
            "fuzz target {target} failed ({status}); crash input: {}\n{panic}\nreproduce: \
             CARGO_TARGET_DIR=target/fuzz cargo fuzz run --fuzz-dir tests/fuzz-targets -s none \
             {target} <input>\n{}",
            if inputs.is_empty() {
                "none saved".to_owned()
            } else {
                inputs.join(", ")
            },
            tail(&log, 30)
        ))
    }

    fn log(&self, name: &str) -> PathBuf {
        self.scratch.path().join(format!("{name}.log"))
    }

    /// `cargo fuzz <sub>` on tests/fuzz-targets, in this test's environment less what would
    /// change the nested build: its own target directory; RUSTFLAGS as cargo-fuzz sets them
    /// (the encoded form would win over them); and none of the variables cargo sets for this
    /// test (ring's build script tracks CARGO_MANIFEST_DIR, so with it half the build would
    /// be redone whenever this test and a build by hand take turns).
    fn command(&self, sub: &str) -> Command {
        let mut cmd = Command::new(&self.cargo);
        cmd.args(["fuzz", sub, "--fuzz-dir"])
            .arg(&self.fuzz_dir)
            .args(["--sanitizer", "none"])
            .current_dir(&self.root);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if name.starts_with("CARGO_PKG_")
                || name.starts_with("CARGO_MANIFEST_")
                || [
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_ENCODED_RUSTFLAGS",
                ]
                .contains(&&*name)
            {
                cmd.env_remove(&*name);
            }
        }
        cmd.env("CARGO_TARGET_DIR", &self.target_dir)
            // The config target writes each input to a .env file under TMPDIR.
            .env("TMPDIR", self.scratch.path())
            .stdin(Stdio::null());
        cmd
    }
}

/// Runs `cmd` with its stdout and stderr in `log`.
fn run_logged(mut cmd: Command, log: &Path) -> ExitStatus {
    let out = File::create(log).unwrap();
    cmd.stdout(out.try_clone().unwrap())
        .stderr(out)
        .status()
        .expect("run cargo")
}

/// The last `lines` lines of `log`.
fn tail(log: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
