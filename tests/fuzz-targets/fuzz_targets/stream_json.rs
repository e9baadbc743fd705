//! The stream-json reader: any bytes on claude's stdout, line by line, into the accumulator.
#![no_main]

use borg::claude::StreamAccumulator;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The runner reads stdout as lossy UTF-8 lines, as here.
    let text = String::from_utf8_lossy(data);
    let mut acc = StreamAccumulator::new();
    for line in text.lines() {
        let _ = borg::claude::stream::parse_line(line);
        let _ = acc.push_line(line);
    }
    let exit = data.first().map(|b| i32::from(*b) - 1);
    let stderr_tail: String = text.chars().take(64).collect();
    let outcome = acc.finish(exit, &stderr_tail);
    if let Some(error) = outcome.error {
        assert!(
            !error.to_string().is_empty(),
            "an error says what went wrong"
        );
    }
});
