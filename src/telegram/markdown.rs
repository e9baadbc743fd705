//! Agent Markdown → Telegram HTML.
//!
//! Agents write CommonMark-ish Markdown. Telegram's own MarkdownV2 rejects a message for any
//! unescaped `.`, `-`, `(` … outside an entity, so converting into it is fragile; its HTML mode
//! only needs `<`, `>` and `&` escaped. This converter covers what agents actually use (fenced
//! and inline code, bold, italic, strikethrough, links, headings, bullets) and leaves anything
//! it does not recognise as literal text. Every tag it opens it closes, in order, so its output
//! is well formed; if Telegram still refuses it (an odd link, say), the transport falls back
//! to sending the original text as plain.

/// Converts Markdown to the HTML subset Telegram accepts (`parse_mode = HTML`).
pub fn markdown_to_html(md: &str) -> String {
    let mut out = String::with_capacity(md.len() + md.len() / 8);
    // An open fenced code block: its language and the lines collected so far.
    let mut fence: Option<(&str, Vec<&str>)> = None;
    let mut first = true;
    for line in md.split('\n') {
        let trimmed = line.trim_start();
        if let Some(info) = trimmed.strip_prefix("```") {
            match fence.take() {
                Some((lang, body)) => code_block(&mut out, &mut first, lang, &body),
                None => fence = Some((info.trim(), Vec::new())),
            }
            continue;
        }
        if let Some((_, body)) = &mut fence {
            body.push(line);
            continue;
        }
        if !std::mem::take(&mut first) {
            out.push('\n');
        }
        block_line(&mut out, line);
    }
    // An unclosed fence (a truncated answer) still renders as code rather than vanishing.
    if let Some((lang, body)) = fence {
        code_block(&mut out, &mut first, lang, &body);
    }
    out
}

fn code_block(out: &mut String, first: &mut bool, lang: &str, body: &[&str]) {
    if !std::mem::take(first) {
        out.push('\n');
    }
    let lang = lang.split_whitespace().next().unwrap_or("");
    if lang.is_empty() {
        out.push_str("<pre>");
    } else {
        out.push_str("<pre><code class=\"language-");
        escape_attr(out, lang);
        out.push_str("\">");
    }
    escape(out, &body.join("\n"));
    out.push_str(if lang.is_empty() {
        "</pre>"
    } else {
        "</code></pre>"
    });
}

/// One line outside code blocks: headings become bold, bullets become "•".
fn block_line(out: &mut String, line: &str) {
    let indent = &line[..line.len() - line.trim_start().len()];
    let body = line.trim_start();
    let hashes = body.bytes().take_while(|&b| b == b'#').count();
    if (1..=6).contains(&hashes) && body[hashes..].starts_with(' ') {
        out.push_str("<b>");
        inline(out, body[hashes..].trim());
        out.push_str("</b>");
        return;
    }
    for bullet in ["- ", "* ", "+ "] {
        if let Some(item) = body.strip_prefix(bullet) {
            out.push_str(indent);
            out.push_str("• ");
            inline(out, item);
            return;
        }
    }
    inline(out, line);
}

/// Inline spans of one line. Spans never cross lines, which keeps unmatched markers local.
fn inline(out: &mut String, s: &str) {
    let mut i = 0;
    while let Some(c) = s[i..].chars().next() {
        if let Some(used) = span(out, s, i) {
            i += used;
        } else {
            escape_char(out, c);
            i += c.len_utf8();
        }
    }
}

/// Tries to render a span starting at byte `i`; returns the bytes it consumed.
fn span(out: &mut String, s: &str, i: usize) -> Option<usize> {
    let rest = &s[i..];
    match rest.as_bytes()[0] {
        b'\\' => {
            let next = rest[1..]
                .chars()
                .next()
                .filter(char::is_ascii_punctuation)?;
            escape_char(out, next);
            Some(2)
        }
        b'`' => Some(code_span(out, rest)),
        b'*' | b'_' | b'~' => emphasis(out, s, i),
        b'[' => link(out, rest),
        _ => None,
    }
}

/// `` `code` `` or ``` ``co`de`` ```; an unmatched run of backticks is literal.
fn code_span(out: &mut String, rest: &str) -> usize {
    let ticks = rest.bytes().take_while(|&b| b == b'`').count();
    let fence = &rest[..ticks];
    match rest[ticks..].find(fence) {
        Some(len) if !rest[ticks..ticks + len].trim().is_empty() => {
            out.push_str("<code>");
            escape(out, &rest[ticks..ticks + len]);
            out.push_str("</code>");
            2 * ticks + len
        }
        _ => {
            out.push_str(fence);
            ticks
        }
    }
}

/// `**bold**`, `__bold__`, `~~strike~~`, `*italic*`, `_italic_`. Underscores inside words
/// (`snake_case_name`) are not emphasis, as in CommonMark.
fn emphasis(out: &mut String, s: &str, i: usize) -> Option<usize> {
    let rest = &s[i..];
    let (delim, tag) = [
        ("**", "b"),
        ("__", "b"),
        ("~~", "s"),
        ("*", "i"),
        ("_", "i"),
    ]
    .into_iter()
    .find(|(d, _)| rest.starts_with(d))?;
    let underscore = delim.starts_with('_');
    if underscore
        && s[..i]
            .chars()
            .next_back()
            .is_some_and(char::is_alphanumeric)
    {
        return None;
    }
    let after = &rest[delim.len()..];
    let first = after.chars().next().filter(|c| !c.is_whitespace())?;
    let mut from = first.len_utf8();
    loop {
        let pos = from + after[from..].find(delim)?;
        let content = &after[..pos];
        let next = after[pos + delim.len()..].chars().next();
        let blocked = content.ends_with(char::is_whitespace)
            || (underscore && next.is_some_and(char::is_alphanumeric));
        if !blocked {
            out.push('<');
            out.push_str(tag);
            out.push('>');
            inline(out, content);
            out.push_str("</");
            out.push_str(tag);
            out.push('>');
            return Some(delim.len() + pos + delim.len());
        }
        from = pos + delim.len();
    }
}

/// `[text](url)`.
fn link(out: &mut String, rest: &str) -> Option<usize> {
    let close = rest.find("](")?;
    let text = &rest[1..close];
    let url_start = close + 2;
    let url_len = rest[url_start..].find(')')?;
    let url = &rest[url_start..url_start + url_len];
    if text.is_empty() || url.is_empty() || url.contains(char::is_whitespace) {
        return None;
    }
    out.push_str("<a href=\"");
    escape_attr(out, url);
    out.push_str("\">");
    inline(out, text);
    out.push_str("</a>");
    Some(url_start + url_len + 1)
}

fn escape(out: &mut String, s: &str) {
    s.chars().for_each(|c| escape_char(out, c));
}

fn escape_char(out: &mut String, c: char) {
    match c {
        '<' => out.push_str("&lt;"),
        '>' => out.push_str("&gt;"),
        '&' => out.push_str("&amp;"),
        c => out.push(c),
    }
}

fn escape_attr(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("&quot;"),
            c => escape_char(out, c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::markdown_to_html as html;

    #[test]
    fn plain_text_is_only_escaped() {
        assert_eq!(html("a < b && c > d"), "a &lt; b &amp;&amp; c &gt; d");
        assert_eq!(
            html("version 1.2 (beta) - done!"),
            "version 1.2 (beta) - done!"
        );
        assert_eq!(html("line one\nline two"), "line one\nline two");
    }

    #[test]
    fn inline_spans() {
        assert_eq!(html("**bold** and *it*"), "<b>bold</b> and <i>it</i>");
        assert_eq!(html("__b__ _i_ ~~gone~~"), "<b>b</b> <i>i</i> <s>gone</s>");
        assert_eq!(
            html("run `cargo <test>`"),
            "run <code>cargo &lt;test&gt;</code>"
        );
        assert_eq!(html("``a`b``"), "<code>a`b</code>");
        assert_eq!(html("**bold `code`**"), "<b>bold <code>code</code></b>");
        assert_eq!(
            html("see [the docs](https://x.org/a?b=1&c=\"2\")"),
            "see <a href=\"https://x.org/a?b=1&amp;c=&quot;2&quot;\">the docs</a>"
        );
    }

    #[test]
    fn unmatched_markers_stay_literal() {
        assert_eq!(html("2 * 3 = 6"), "2 * 3 = 6");
        assert_eq!(html("**not closed"), "**not closed");
        assert_eq!(html("snake_case_name and _x"), "snake_case_name and _x");
        assert_eq!(html("a ` lone tick"), "a ` lone tick");
        assert_eq!(html("[text] (not a link)"), "[text] (not a link)");
        assert_eq!(html(r"\*literal\*"), "*literal*");
    }

    #[test]
    fn blocks() {
        assert_eq!(html("# Title\ntext"), "<b>Title</b>\ntext");
        assert_eq!(html("- one\n  * two"), "• one\n  • two");
        assert_eq!(
            html("before\n```rust\nlet x = a < b;\n```\nafter"),
            "before\n<pre><code class=\"language-rust\">let x = a &lt; b;</code></pre>\nafter"
        );
        assert_eq!(html("```\n**not bold**\n```"), "<pre>**not bold**</pre>");
        assert_eq!(html("```\nunclosed"), "<pre>unclosed</pre>");
    }

    #[test]
    fn unicode_survives() {
        assert_eq!(html("**שלום** 😀 _مرحبا_"), "<b>שלום</b> 😀 <i>مرحبا</i>");
    }

    #[test]
    fn tags_always_balance() {
        let nasty = [
            "***",
            "**a*b**c*",
            "_a __b_ c__",
            "[a](b) [c](",
            "`*`*",
            "~~~",
            "*a\nb*",
            "# ",
            "- ",
            "**[x](y)**",
            "_*_*_",
            "\\",
            "``",
            "[](x)",
        ];
        for md in nasty {
            let out = html(md);
            for tag in ["b", "i", "s", "code", "pre", "a"] {
                let opens = out.matches(&format!("<{tag}>")).count()
                    + out.matches(&format!("<{tag} ")).count();
                let closes = out.matches(&format!("</{tag}>")).count();
                assert_eq!(opens, closes, "{md:?} → {out:?}");
            }
        }
    }
}
