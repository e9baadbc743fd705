//! Unit tests that keep [`VARIABLES`] honest: every documented variable is read, every
//! read variable is documented, and the documented defaults and ranges are the real ones.

use std::cell::RefCell;
use std::collections::HashMap;

use super::{Config, ConfigError, VARIABLES, vars};

/// The names `from_lookup` asks for, in order, when `values` are set.
fn looked_up(values: &HashMap<&str, &str>) -> Vec<String> {
    let names = RefCell::new(Vec::new());
    let _ = Config::from_lookup(|name| {
        names.borrow_mut().push(name.to_owned());
        values.get(name).map(|v| (*v).to_owned())
    });
    names.into_inner()
}

#[test]
fn every_documented_variable_is_read_once_and_nothing_else() {
    let names = looked_up(&HashMap::new());
    for doc in VARIABLES {
        let reads = names.iter().filter(|n| *n == doc.name).count();
        assert_eq!(
            reads, 1,
            "{} is documented but read {reads} times",
            doc.name
        );
    }
    for name in &names {
        assert!(
            vars::variable(name).is_some(),
            "{name} is read but not documented"
        );
    }
    assert_eq!(names.len(), VARIABLES.len());
}

#[test]
fn variable_names_are_unique_and_documented() {
    for (i, doc) in VARIABLES.iter().enumerate() {
        assert!(
            !doc.allowed.is_empty() && !doc.meaning.is_empty(),
            "{}",
            doc.name
        );
        assert!(
            VARIABLES[..i].iter().all(|d| d.name != doc.name),
            "{} is listed twice",
            doc.name
        );
    }
}

#[test]
fn literal_defaults_mean_the_same_as_unset() {
    let defaults = Config::default();
    for doc in VARIABLES.iter().filter(|d| d.has_literal_default()) {
        let given = Config::from_lookup(|name| (name == doc.name).then(|| doc.default.to_owned()));
        assert_eq!(given.as_ref(), Ok(&defaults), "{}", doc.name);
    }
}

/// Checks that `name` accepts exactly `min..=max` and that its documentation says so.
fn check_range(name: &str, min: u64, max: u64) {
    let doc = vars::doc(name);
    let range = format!("({min} to {max})");
    assert!(doc.allowed.contains(&range), "{name}: {:?}", doc.allowed);
    let with = |value: String| Config::from_lookup(|n| (n == name).then(|| value.clone()));
    assert!(with(min.to_string()).is_ok(), "{name}={min}");
    assert!(with(max.to_string()).is_ok(), "{name}={max}");
    let above = with((max + 1).to_string()).expect_err(name);
    assert!(above.to_string().contains(&range), "{above}");
    if min > 0 {
        assert!(with((min - 1).to_string()).is_err(), "{name}={}", min - 1);
    }
}

#[test]
fn numeric_ranges_match_their_documentation() {
    check_range("RELEASE_INTERVAL_MINS", 1, 10_080);
    check_range("COLLECTION_WINDOW_MS", 0, 600_000);
    check_range("COOLDOWN_MS", 0, 86_400_000);
    check_range("AGENT_TIMEOUT_S", 1, 86_400);
    check_range("MAX_CONCURRENT_AGENTS", 1, 64);
    check_range("RATE_LIMIT_PER_MINUTE", 1, 1_000);
    check_range("WEB_PORT", 1, 65_535);
    check_range("BORG_SHUTDOWN_TIMEOUT_S", 1, 3_600);
}

#[test]
fn errors_quote_the_documented_allowed_values() {
    for doc in VARIABLES {
        let err = Config::from_lookup(|n| (n == doc.name).then(|| "not valid here".to_owned()));
        if let Err(ConfigError::Invalid { var, expected, .. }) = err {
            assert_eq!(var, doc.name);
            assert_eq!(expected, doc.allowed);
        }
    }
}
