//! Chat commands: `/register`, `/status`, `/task <title>` and the rest of the original borg's.

/// A command someone typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Register,
    Unregister,
    Status,
    Version,
    Groups,
    /// `/task <title>`, the description on the following lines.
    Task {
        title: String,
        description: String,
    },
    Tasks,
    Pipeline,
    /// `/release [repo]`: start a release train now.
    Release {
        repo: Option<String>,
    },
    ChatId,
    Ping,
    /// `/help` and `/start`.
    Help,
    /// Anything else that starts with `/`: answered with help.
    Unknown(String),
}

impl Command {
    /// Parses `text` if it is a command. `/cmd@somebot` is a command only when `somebot` is
    /// `bot_username` (Telegram addresses commands to one bot in groups).
    pub fn parse(text: &str, bot_username: Option<&str>) -> Option<Command> {
        let text = text.trim_start();
        let rest = text.strip_prefix('/')?;
        let (head, tail) = match rest.find(char::is_whitespace) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (name, addressee) = match head.split_once('@') {
            Some((name, to)) => (name, Some(to)),
            None => (head, None),
        };
        if let (Some(to), Some(me)) = (addressee, bot_username)
            && !to.eq_ignore_ascii_case(me)
        {
            return None;
        }
        if name.is_empty() {
            return None;
        }
        Some(match name.to_ascii_lowercase().as_str() {
            "register" => Command::Register,
            "unregister" => Command::Unregister,
            "status" => Command::Status,
            "version" => Command::Version,
            "groups" => Command::Groups,
            "task" => {
                let tail = tail.trim_start_matches([' ', '\t']);
                let (title, description) = match tail.split_once('\n') {
                    Some((t, d)) => (t.trim(), d.trim()),
                    None => (tail.trim(), ""),
                };
                Command::Task {
                    title: title.to_owned(),
                    description: description.to_owned(),
                }
            }
            "tasks" => Command::Tasks,
            "pipeline" => Command::Pipeline,
            "release" => Command::Release {
                repo: tail.split_whitespace().next().map(str::to_owned),
            },
            "chatid" => Command::ChatId,
            "ping" => Command::Ping,
            "help" | "start" => Command::Help,
            other => Command::Unknown(other.to_owned()),
        })
    }

    /// Whether only admins may run it.
    pub fn admin_only(&self) -> bool {
        matches!(
            self,
            Command::Register
                | Command::Unregister
                | Command::Task { .. }
                | Command::Release { .. }
        )
    }

    /// Whether it answers in a chat that is not registered.
    pub fn allowed_unregistered(&self) -> bool {
        matches!(
            self,
            Command::ChatId | Command::Ping | Command::Help | Command::Register
        )
    }
}

/// The `/help` text.
pub fn help(assistant: &str) -> String {
    format!(
        "Mention @{assistant} to talk to me; I read the recent messages and answer.\n\
         /register – let me work in this chat (admins)\n\
         /unregister – stop working in this chat (admins)\n\
         /status – what I am doing\n\
         /groups – the chats I work in\n\
         /task [repo:NAME] <title> – a pipeline task; details on the next lines (admins)\n\
         /tasks – recent pipeline tasks\n\
         /pipeline – the pipeline's settings\n\
         /release [repo] – merge the finished tasks into main now (admins)\n\
         /version, /chatid, /ping, /help"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_command_and_its_bot_suffix() {
        let cases = [
            ("/register", Command::Register),
            ("/UNREGISTER", Command::Unregister),
            ("/status@borg_bot", Command::Status),
            ("/version", Command::Version),
            ("/groups", Command::Groups),
            ("/tasks", Command::Tasks),
            ("/pipeline", Command::Pipeline),
            ("/release", Command::Release { repo: None }),
            (
                "/release app",
                Command::Release {
                    repo: Some("app".into()),
                },
            ),
            ("/chatid", Command::ChatId),
            ("/ping", Command::Ping),
            ("/help", Command::Help),
            ("/start", Command::Help),
            ("/frobnicate now", Command::Unknown("frobnicate".into())),
        ];
        for (text, want) in cases {
            assert_eq!(Command::parse(text, Some("borg_bot")), Some(want), "{text}");
        }
    }

    #[test]
    fn task_takes_title_and_multiline_description() {
        assert_eq!(
            Command::parse(
                "/task Fix the login\nIt fails on empty passwords.\nSee logs.",
                None
            ),
            Some(Command::Task {
                title: "Fix the login".into(),
                description: "It fails on empty passwords.\nSee logs.".into()
            })
        );
        assert_eq!(
            Command::parse("/task", None),
            Some(Command::Task {
                title: String::new(),
                description: String::new()
            })
        );
    }

    #[test]
    fn not_commands() {
        for text in ["hello", "", "/", " / x", "/status@other_bot", "a /status"] {
            assert_eq!(Command::parse(text, Some("borg_bot")), None, "{text:?}");
        }
    }
}
