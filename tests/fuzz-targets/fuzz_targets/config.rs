//! The config parser: any `.env` file (dotenv syntax, else the original borg's rules), through
//! `Config::load_with_env` as the daemon reads it, and the same lines as `NAME=value` pairs
//! straight into `Config::from_lookup`, so every variable's parser sees any value.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use borg::config::{Config, VARIABLES};
use libfuzzer_sys::fuzz_target;

/// A directory of this process's own under `TMPDIR` (tests/fuzz.rs points that at a scratch
/// directory it removes) for the `.env` file each input is written to.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("borg-fuzz-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("make the fuzz directory");
        dir
    })
}

fn check(result: Result<Config, borg::config::ConfigError>) {
    if let Err(e) = result {
        let message = e.to_string();
        assert!(!message.is_empty());
        if let Some(var) = e.var() {
            assert!(message.contains(var), "the error names {var}: {message}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let dir = dir();
    std::fs::write(dir.join(".env"), data).expect("write .env");
    check(Config::load_with_env(dir, |_| None));

    let text = String::from_utf8_lossy(data);
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|line| line.split_once('='))
        .filter(|(name, _)| VARIABLES.iter().any(|v| v.name == *name))
        .collect();
    check(Config::from_lookup(|name| {
        pairs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| (*v).to_owned())
    }));
});
