//! The `WATCHED_REPOS` parser: any value of the variable.
#![no_main]

use borg::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let value = String::from_utf8_lossy(data).into_owned();
    match Config::from_lookup(|name| (name == "WATCHED_REPOS").then(|| value.clone())) {
        Ok(config) => {
            for repo in &config.watched_repos {
                assert!(!repo.path.as_os_str().is_empty(), "{value:?}");
            }
        }
        Err(e) => assert!(e.to_string().contains("WATCHED_REPOS"), "{e}"),
    }
});
