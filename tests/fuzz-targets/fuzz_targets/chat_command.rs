//! The chat command parser: any message text, addressed to a bot or not.
#![no_main]

use actors::chat::command::Command;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for bot in [Some("borg_bot"), None] {
        if let Some(Command::Task { title, .. }) = Command::parse(&text, bot) {
            assert!(!title.contains('\n'), "a title is one line: {title:?}");
        }
    }
});
