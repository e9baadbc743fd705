//! `borg status`: asks the running daemon over its control socket; when none answers, opens
//! the store itself and lists what it holds.

use std::process::ExitCode;

use crate::config::Config;

/// Prints the status, as a table or as JSON.
pub async fn print(config: &Config, json: bool) -> ExitCode {
    if let Some(report) = crate::control::query(&config.data_dir).await {
        if json {
            println!("{report:#}");
        } else {
            print_report(&report);
        }
        return ExitCode::SUCCESS;
    }
    if !config.data_dir.join(crate::store::FILE_NAME).exists() {
        println!(
            "borg is not running and has no store in {}",
            config.data_dir.display()
        );
        return ExitCode::SUCCESS;
    }
    // Read-only: a status must not change the store (nor fail on a read-only DATA_DIR).
    let data_dir = config.data_dir.clone();
    let listing = match tokio::task::spawn_blocking(move || crate::store::peek(&data_dir)).await {
        Ok(listing) => listing,
        Err(e) => {
            eprintln!("borg: {e}");
            return ExitCode::FAILURE;
        }
    };
    match listing {
        Ok(records) => {
            if json {
                let rows: Vec<serde_json::Value> = records
                    .iter()
                    .map(|r| serde_json::json!({"key": r.key, "incarnation": r.incarnation, "saved_at_ms": r.saved_at_ms, "bytes": r.size}))
                    .collect();
                println!(
                    "{:#}",
                    serde_json::json!({"running": false, "snapshots": rows})
                );
            } else {
                println!(
                    "borg is not running; its store in {} holds {} snapshots",
                    config.data_dir.display(),
                    records.len()
                );
                for r in records {
                    println!(
                        "  {:<40} incarnation {:<4} {} bytes",
                        r.key, r.incarnation, r.size
                    );
                }
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("borg: cannot read the store: {e}");
            ExitCode::FAILURE
        }
    }
}

fn print_report(report: &serde_json::Value) {
    let field = |k: &str| report.get(k).cloned().unwrap_or_default();
    println!(
        "borg {} running (pid {}, up {} s), data in {}",
        field("version").as_str().unwrap_or("?"),
        field("pid"),
        field("uptime_s"),
        field("data_dir").as_str().unwrap_or("?"),
    );
    println!(
        "{:<40} {:<12} {:<11} {:>8} {:>8} {:>8}  breaker",
        "actor", "kind", "status", "mailbox", "handled", "restarts"
    );
    for actor in field("actors").as_array().into_iter().flatten() {
        // serde_json's Display ignores widths, so every cell is made a String first.
        let text = |k: &str| match actor.get(k) {
            Some(serde_json::Value::String(s)) => s.clone(),
            Some(serde_json::Value::Null) | None => "-".into(),
            Some(other) => other.to_string(),
        };
        println!(
            "{:<40} {:<12} {:<11} {:>8} {:>8} {:>8}  {}",
            text("path"),
            text("kind"),
            text("status"),
            text("mailbox_depth"),
            text("handled"),
            text("restarts"),
            text("breaker")
        );
    }
    println!("store: {}", field("store"));
}
