//! The `borg` command: `borg run` (the default) starts the daemon; `borg status` asks a running
//! daemon, or reads the store when none runs; `borg version`; `borg config` prints every
//! setting with its current value; `borg doctor` checks a first run's needs; `borg backup` /
//! `borg restore` copy the store out and back; `borg completions` prints shell completions.
//! Every command's `--help` ends with examples.
//!
//! After a self-update (see `borg::self_update`) `borg run` is the new binary, started with
//! `BORG_FALLBACK` naming the previous one: if it cannot start (a setting it refuses, a
//! store it cannot open, a tree that does not come up), it execs the previous binary
//! instead. Once the daemon is up, `BORG_FALLBACK` is no longer looked at.

use std::path::PathBuf;
use std::process::ExitCode;

use borg::config::{Config, VARIABLES};
use borg::self_update::FALLBACK_VAR;
use clap::{CommandFactory, Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "borg",
    version,
    about = "Turns chat messages into work by AI coding agents.",
    after_help = "Examples:
  borg doctor                 check what a first run needs, with a fix for each problem
  borg run                    start the daemon (reads .env here; Ctrl-C stops it in order)
  borg --dir /srv/borg run    use /srv/borg/.env (relative paths in it resolve there)
  borg status                 what the running daemon is doing
  borg backup borg.bak        a consistent copy of the store, also while the daemon runs

Every command has --help with examples."
)]
struct Cli {
    /// Directory holding `.env` (relative paths in it are resolved against it).
    #[arg(long, global = true, default_value = ".")]
    dir: PathBuf,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGINT or SIGTERM (the default).
    #[command(after_help = "Examples:
  borg run
  borg --dir /srv/borg run
  RUST_LOG=borg=debug LOG_FORMAT=json borg run")]
    Run,
    /// Show what a running daemon is doing, or what its store holds.
    #[command(after_help = "Examples:
  borg status
  borg status --json | jq '.actors[] | select(.restarts > 0)'")]
    Status {
        /// Print the raw JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Print the version.
    #[command(after_help = "Example:
  borg version")]
    Version,
    /// Print every setting with its current value and default.
    #[command(after_help = "Examples:
  borg config
  borg --dir /srv/borg config | grep DATA_DIR")]
    Config,
    /// Check everything a first run needs: the claude CLI and a credential, Docker and the
    /// agent image, chat tokens, repositories and test commands, DATA_DIR, the store, the web
    /// port.
    ///
    /// One line per check, each failure with `→ fix:`. Exits 0 only when nothing the current
    /// configuration needs is broken. It changes nothing and sends no chat message.
    #[command(after_help = "Examples:
  borg doctor
  borg --dir /srv/borg doctor
  borg doctor --json | jq '.checks[] | select(.status == \"fail\")'")]
    Doctor {
        /// Print the results as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a consistent copy of the store to FILE, also while the daemon runs.
    ///
    /// With a daemon running, the copy is made by the daemon (it holds the store's lock) in
    /// one read transaction: every snapshot saved before the backup began is in it. Without
    /// one, borg opens the store itself. The copy is written next to FILE and renamed into
    /// place, so FILE is never half-written.
    #[command(after_help = "Examples:
  borg backup /var/backups/borg-$(date +%F).redb
  borg backup --force /var/backups/borg-latest.redb
  borg --dir /srv/borg backup borg.bak")]
    Backup {
        /// The backup file to write.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Put a backup back as the store (stop the daemon first).
    ///
    /// The file is checked first (a borg store of a format this build knows, every record
    /// readable); the current store is kept as `borg.redb.before-restore` in DATA_DIR.
    #[command(after_help = "Examples:
  systemctl stop borg && borg restore /var/backups/borg-2025-01-31.redb && systemctl start borg
  borg restore --force borg.bak      # replace an earlier borg.redb.before-restore")]
    Restore {
        /// The backup file (made by `borg backup`).
        file: PathBuf,
        /// Replace a `borg.redb.before-restore` left by an earlier restore.
        #[arg(long)]
        force: bool,
    },
    /// Print a shell completion script.
    #[command(after_help = "Examples:
  borg completions bash > /etc/bash_completion.d/borg
  borg completions zsh > \"${fpath[1]}/_borg\"
  borg completions fish > ~/.config/fish/completions/borg.fish")]
    Completions {
        /// The shell: bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Create a pipeline task in a running daemon, or show one.
    #[command(
        subcommand,
        after_help = "Examples:
  borg task add --repo app \"Add a health endpoint\"
  borg task show 3"
    )]
    Task(TaskCommand),
    /// List the pipeline's tasks (of a running daemon).
    #[command(after_help = "Examples:
  borg tasks
  borg tasks --json | jq '.[] | select(.status == \"failed\")'")]
    Tasks {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start a repository's release train now: merge its done tasks into main, tested (in a
    /// running daemon).
    #[command(after_help = "Examples:
  borg release
  borg release --repo myapp")]
    Release {
        /// The repository (default: PIPELINE_REPO's).
        #[arg(long)]
        repo: Option<String>,
    },
    /// Build or inspect the agent image (AGENT_IMAGE).
    #[command(
        subcommand,
        after_help = "Examples:
  borg image build
  borg image status"
    )]
    Image(ImageCommand),
    /// Run one task through every phase on a sample repository, with a scripted model
    /// standing in for Claude (no API key needed).
    #[command(after_help = "Examples:
  borg demo
  borg demo --no-docker --workdir /tmp/borg-demo")]
    Demo {
        /// Where to put the sample repository and the demo's data (default: a new
        /// temporary directory).
        #[arg(long)]
        workdir: Option<PathBuf>,
        /// Run agents as plain processes even when a Docker engine is reachable.
        #[arg(long)]
        no_docker: bool,
    },
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Build the agent image from the container/ folder compiled into borg.
    #[command(after_help = "Examples:
  borg image build
  AGENT_IMAGE=borg-agent:test borg image build")]
    Build,
    /// Which image agents use, when it was built, and whether it is current.
    #[command(after_help = "Example:
  borg image status")]
    Status,
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Add a task to a repository's backlog.
    #[command(after_help = "Examples:
  borg task add \"Add a health endpoint\"
  borg task add --repo app \"Add a health endpoint\" --description \"GET /health returns 200\"")]
    Add {
        /// The repository (its name: the WATCHED_REPOS slug or the directory name); default
        /// the primary repository (PIPELINE_REPO).
        #[arg(long)]
        repo: Option<String>,
        /// The task's title.
        title: String,
        /// What to do, in more words.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Show one task: its phase, attempts, history and the reason it stopped.
    #[command(after_help = "Examples:
  borg task show 3
  borg task show 3 --json")]
    Show {
        /// The task's number (`borg tasks` lists them).
        id: u64,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let command = cli.command.unwrap_or(Command::Run);
    match command {
        Command::Version => {
            println!("borg {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "borg", &mut std::io::stdout());
            return ExitCode::SUCCESS;
        }
        _ => {}
    }
    if let Command::Doctor { json } = command {
        return match tokio::runtime::Runtime::new() {
            Ok(runtime) => runtime.block_on(borg::doctor::command(&cli.dir, json)),
            Err(e) => {
                eprintln!("borg: cannot start the async runtime: {e}");
                ExitCode::FAILURE
            }
        };
    }
    // Read once, here: only a start that fails falls back, never a later error.
    let fallback = match command {
        Command::Run => std::env::var_os(FALLBACK_VAR).map(PathBuf::from),
        _ => None,
    };
    let config = match Config::load(&cli.dir) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("borg: {e}");
            if let Some(previous) = &fallback {
                fall_back(previous, &e.to_string());
            }
            return ExitCode::from(e.exit_code());
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("borg: cannot start the async runtime: {e}");
            if let Some(previous) = &fallback {
                fall_back(previous, &format!("cannot start the async runtime: {e}"));
            }
            return ExitCode::FAILURE;
        }
    };
    match command {
        Command::Run => {
            borg::logging::init(config.log_format);
            match runtime.block_on(borg::daemon::run(config)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e}");
                    eprintln!("borg: {e}");
                    if let Some(previous) = fallback.filter(|_| e.before_start()) {
                        fall_back(&previous, &e.to_string());
                    }
                    ExitCode::FAILURE
                }
            }
        }
        Command::Status { json } => runtime.block_on(borg::status::print(&config, json)),
        Command::Config => {
            print_config(&config);
            ExitCode::SUCCESS
        }
        Command::Task(TaskCommand::Add {
            repo,
            title,
            description,
        }) => runtime.block_on(borg::tasks_cli::add(&config, repo, title, description)),
        Command::Task(TaskCommand::Show { id, json }) => {
            runtime.block_on(borg::tasks_cli::show(&config, id, json))
        }
        Command::Image(ImageCommand::Build) => runtime.block_on(borg::image_cli::build(&config)),
        Command::Image(ImageCommand::Status) => runtime.block_on(borg::image_cli::status(&config)),
        Command::Tasks { json } => runtime.block_on(borg::tasks_cli::list(&config, json)),
        Command::Release { repo } => runtime.block_on(borg::release_cli::release(&config, repo)),
        Command::Demo { workdir, no_docker } => {
            runtime.block_on(borg::demo::run(workdir, no_docker))
        }
        Command::Backup { file, force } => {
            runtime.block_on(borg::backup::backup_command(&config, &file, force))
        }
        Command::Restore { file, force } => {
            runtime.block_on(borg::backup::restore_command(&config, &file, force))
        }
        Command::Version | Command::Completions { .. } | Command::Doctor { .. } => {
            unreachable!("handled above")
        }
    }
}

/// This binary, just restarted into by a self-update, cannot start: exec the previous one.
/// Returns only if that fails too.
fn fall_back(previous: &std::path::Path, why: &str) {
    let loud = format!(
        "borg: THE NEW BINARY CANNOT START ({why}); falling back to {}",
        previous.display()
    );
    tracing::error!("{loud}");
    eprintln!("{loud}");
    let err = borg::self_update::fall_back(previous, why);
    tracing::error!(
        "cannot start the previous binary {}: {err}",
        previous.display()
    );
    eprintln!(
        "borg: cannot start the previous binary {} either: {err}",
        previous.display()
    );
}

fn print_config(config: &Config) {
    println!("{config:#?}\n");
    for var in VARIABLES {
        println!(
            "{:<26} default {:<22} {}",
            var.name, var.default, var.meaning
        );
    }
}
