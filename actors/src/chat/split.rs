//! Splitting a long text into messages a platform accepts.
//!
//! Lengths are counted in UTF-16 code units because that is what Telegram counts (its 4096
//! limit, its entity offsets). A UTF-16 count is never smaller than a count of chars, so a chunk
//! that fits by this measure also fits a platform that counts characters (Discord, WhatsApp).
//!
//! Chunks are cut after a newline when one fits, after a space inside an over-long line, and
//! between chars as a last resort. A char is never cut, so neither is a UTF-8 sequence nor a
//! surrogate pair; the cut also avoids separating an emoji from a joiner, variation selector
//! or skin-tone modifier when it can.

/// The length of `text` in UTF-16 code units, the unit Telegram measures messages in.
pub fn utf16_len(text: &str) -> usize {
    text.chars().map(char::len_utf16).sum()
}

/// Splits `text` into chunks of at most `max_units` UTF-16 code units each. The chunks
/// concatenate back to `text` exactly (newlines stay at the end of the chunk they close).
///
/// An empty text gives no chunks. A single char wider than `max_units` (an emoji when
/// `max_units` is 1) gets a chunk of its own rather than being cut.
///
/// ```
/// use actors::chat::split::split_message;
/// let chunks = split_message("first line\nsecond line\n", 12);
/// assert_eq!(chunks, ["first line\n", "second line\n"]);
/// ```
pub fn split_message(text: &str, max_units: usize) -> Vec<String> {
    let mut chunks = Vec::new();
    let mut rest = text;
    while !rest.is_empty() {
        let cut = cut_point(rest, max_units);
        chunks.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    chunks
}

/// A transport's guard: splitting is its caller's job, but a text over `max_units` becomes
/// several messages (with a warning naming `chat`) instead of the platform's refusal.
pub fn parts_within(chat: &impl std::fmt::Display, text: &str, max_units: usize) -> Vec<String> {
    let units = utf16_len(text);
    if units <= max_units {
        return vec![text.to_owned()];
    }
    tracing::warn!(%chat, units, "text over the limit; splitting");
    split_message(text, max_units)
}

/// The byte index at which the first chunk of `rest` ends (`rest.len()` if all of it fits).
fn cut_point(rest: &str, max_units: usize) -> usize {
    // `limit`: the longest prefix that fits, always on a char boundary.
    let mut units = 0;
    let mut limit = rest.len();
    for (i, c) in rest.char_indices() {
        units += c.len_utf16();
        if units > max_units {
            limit = i;
            break;
        }
    }
    if limit == rest.len() {
        return limit;
    }
    let head = &rest[..limit];
    if let Some(nl) = head.rfind('\n') {
        return nl + 1;
    }
    // A space only helps if it leaves a reasonably full chunk; otherwise one giant word would
    // turn into a string of tiny messages.
    if let Some((i, c)) = head.char_indices().rev().find(|(_, c)| c.is_whitespace())
        && i + c.len_utf8() >= limit / 2
    {
        return i + c.len_utf8();
    }
    let mut cut = limit;
    while cut > 0 && !can_break_at(rest, cut) {
        cut = prev_boundary(rest, cut);
    }
    match cut {
        // One cluster longer than the limit: cut it at the limit after all.
        0 if limit > 0 => limit,
        // Not even one char fits: give it its own chunk so the loop makes progress.
        0 => rest.chars().next().map_or(rest.len(), char::len_utf8),
        cut => cut,
    }
}

fn prev_boundary(s: &str, i: usize) -> usize {
    s[..i].char_indices().next_back().map_or(0, |(j, _)| j)
}

/// Whether cutting between the char before `i` and the char at `i` keeps what the reader sees
/// as one symbol together.
fn can_break_at(s: &str, i: usize) -> bool {
    let before = s[..i].chars().next_back();
    let after = s[i..].chars().next();
    !(before == Some(ZWJ) || after.is_some_and(extends_previous))
}

const ZWJ: char = '\u{200D}';

/// Chars that modify the one before them: joiners, variation selectors, skin tones,
/// combining marks and the tag characters of subdivision flags.
fn extends_previous(c: char) -> bool {
    matches!(c,
        ZWJ
        | '\u{FE00}'..='\u{FE0F}'
        | '\u{1F3FB}'..='\u{1F3FF}'
        | '\u{0300}'..='\u{036F}'
        | '\u{20D0}'..='\u{20FF}'
        | '\u{E0020}'..='\u{E007F}')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every chunk fits, none is empty, and together they are the text.
    fn check(text: &str, max: usize) -> Vec<String> {
        let chunks = split_message(text, max);
        assert_eq!(chunks.concat(), text, "chunks must rebuild the text");
        for chunk in &chunks {
            assert!(!chunk.is_empty());
            let single_wide_char = chunk.chars().count() == 1;
            assert!(
                utf16_len(chunk) <= max || single_wide_char,
                "chunk {chunk:?} is {} units, limit {max}",
                utf16_len(chunk)
            );
        }
        chunks
    }

    #[test]
    fn short_text_is_one_chunk_and_empty_text_none() {
        assert_eq!(check("hello", 4096), ["hello"]);
        assert_eq!(check("exactly5", 8), ["exactly5"]);
        assert!(split_message("", 10).is_empty());
    }

    #[test]
    fn packs_whole_lines_and_breaks_after_newlines() {
        let text = "aaa\nbbb\nccc\nddd\n";
        assert_eq!(check(text, 8), ["aaa\nbbb\n", "ccc\nddd\n"]);
        assert_eq!(check(text, 5), ["aaa\n", "bbb\n", "ccc\n", "ddd\n"]);
    }

    #[test]
    fn a_giant_line_breaks_at_spaces_then_between_chars() {
        assert_eq!(check("alpha beta gamma", 11), ["alpha beta ", "gamma"]);
        let word = "x".repeat(25);
        assert_eq!(
            check(&word, 10),
            ["x".repeat(10), "x".repeat(10), "x".repeat(5)]
        );
        // A space near the start is not worth a tiny chunk.
        assert_eq!(check("a bcdefghijkl", 8), ["a bcdefg", "hijkl"]);
    }

    #[test]
    fn never_cuts_a_surrogate_pair() {
        // Each 😀 is two UTF-16 units; an odd limit would cut the second in half.
        assert_eq!(check("😀😀😀", 3), ["😀", "😀", "😀"]);
        assert_eq!(check("a😀b😀", 2), ["a", "😀", "b", "😀"]);
        // Too narrow for even one emoji: each still arrives whole.
        assert_eq!(check("😀😀", 1), ["😀", "😀"]);
    }

    #[test]
    fn keeps_joined_emoji_together_when_they_fit() {
        let family = "👨\u{200D}👩\u{200D}👧"; // 8 units
        assert_eq!(check(&format!("ab{family}"), 9), ["ab", family]);
        let thumbs = "👍\u{1F3FD}"; // thumbs up, medium skin tone
        assert_eq!(check(&format!("abc{thumbs}"), 5), ["abc", thumbs]);
        let accented = "e\u{0301}"; // é as e + combining acute
        assert_eq!(check(&format!("abc{accented}"), 4), ["abc", accented]);
        // A cluster longer than the limit is cut rather than looping forever.
        check(family, 3);
    }

    #[test]
    fn rtl_text_splits_on_lines_and_chars() {
        let hebrew = "שלום עולם\nמה שלומך היום?\n";
        let chunks = check(hebrew, 12);
        assert_eq!(chunks, ["שלום עולם\n", "מה שלומך ", "היום?\n"]);
        let arabic = "مرحبا".repeat(10);
        let chunks = check(&arabic, 7);
        assert!(
            chunks
                .iter()
                .all(|c| c.chars().all(|ch| "مرحبا".contains(ch)))
        );
    }

    #[test]
    fn mixed_texts_always_rebuild_and_fit() {
        // A small deterministic generator instead of a property-test dependency.
        let alphabet = [
            "a", " ", "\n", "é", "😀", "ש", "م", "\u{200D}", "\u{FE0F}", "字", "🇩🇪", "\r\n",
        ];
        let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
        for round in 0..400 {
            let mut text = String::new();
            for _ in 0..(round % 60) {
                seed = seed
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                text.push_str(alphabet[(seed >> 33) as usize % alphabet.len()]);
            }
            for max in [1, 2, 3, 5, 8, 13, 4096] {
                check(&text, max);
            }
        }
    }

    #[test]
    fn telegram_sized_text_splits_under_the_limit() {
        let line = "Zeile mit Umlauten äöü und Emoji 🎉\n";
        let text = line.repeat(300);
        let chunks = check(&text, 4096);
        assert!(chunks.len() >= 3);
        assert!(
            chunks.iter().all(|c| c.ends_with('\n')),
            "cuts fall on lines"
        );
    }
}
