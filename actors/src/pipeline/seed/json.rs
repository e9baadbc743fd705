//! A strict reader for the small part of JSON a seeding answer may hold: objects, arrays and
//! strings. The actors crate has no JSON library, and this subset is all it needs; numbers,
//! literals, repeated keys and deep nesting are errors, so an answer means one thing or
//! nothing.

use std::collections::BTreeSet;

/// Reads `text`, which must be one JSON value and nothing else (blanks aside).
pub fn read(text: &str) -> Result<Json, String> {
    let mut reader = Reader { s: text, at: 0 };
    let value = reader.value(0)?;
    reader.blank();
    if reader.at < text.len() {
        return Err(format!(
            "text after the JSON object (at byte {})",
            reader.at
        ));
    }
    Ok(value)
}

/// The part of JSON the answer may hold: objects (keys in order), arrays and strings.
#[derive(Debug, PartialEq)]
pub enum Json {
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

/// The values of `keys` in `value`, which must be an object with exactly these keys.
pub fn fields<const N: usize>(value: Json, keys: [&str; N], at: &str) -> Result<[Json; N], String> {
    let Json::Obj(mut fields) = value else {
        return Err(format!("{at} must be a JSON object"));
    };
    if let Some((key, _)) = fields.iter().find(|(k, _)| !keys.contains(&k.as_str())) {
        return Err(format!(
            "{at}: unknown key {key:?} (allowed: {})",
            keys.join(", ")
        ));
    }
    let mut values = Vec::with_capacity(N);
    for key in keys {
        let i = fields
            .iter()
            .position(|(k, _)| k == key)
            .ok_or_else(|| format!("{at}: the key {key:?} is missing"))?;
        values.push(fields.swap_remove(i).1);
    }
    values
        .try_into()
        .map_err(|_| format!("{at}: the keys could not be read"))
}

/// Reads [`Json`] from `s`, strictly: duplicate keys, numbers, literals and nesting deeper
/// than a few levels are errors.
struct Reader<'a> {
    s: &'a str,
    at: usize,
}

impl Reader<'_> {
    fn blank(&mut self) {
        let rest = &self.s[self.at..];
        self.at += rest.len() - rest.trim_start_matches([' ', '\t', '\n', '\r']).len();
    }

    fn next(&mut self) -> Option<char> {
        let c = self.s[self.at..].chars().next()?;
        self.at += c.len_utf8();
        Some(c)
    }

    fn expect(&mut self, want: char) -> Result<(), String> {
        self.blank();
        match self.next() {
            Some(c) if c == want => Ok(()),
            found => Err(self.unexpected(found, &format!("`{want}`"))),
        }
    }

    fn unexpected(&self, found: Option<char>, wanted: &str) -> String {
        match found {
            Some(c) => format!(
                "invalid JSON: `{c}` at byte {} where {wanted} belongs",
                self.at - c.len_utf8()
            ),
            None => format!("invalid JSON: the text ends where {wanted} belongs"),
        }
    }

    fn value(&mut self, depth: usize) -> Result<Json, String> {
        if depth > 4 {
            return Err("the JSON is nested too deeply".into());
        }
        self.blank();
        match self.next() {
            Some('"') => self.string().map(Json::Str),
            Some('[') => self.list(']', |r| r.value(depth + 1)).map(Json::Arr),
            Some('{') => {
                let fields = self.list('}', |r| {
                    r.expect('"')?;
                    let key = r.string()?;
                    r.expect(':')?;
                    Ok((key, r.value(depth + 1)?))
                })?;
                let keys: BTreeSet<&str> = fields.iter().map(|(k, _)| k.as_str()).collect();
                if keys.len() < fields.len() {
                    return Err("invalid JSON: an object repeats a key".into());
                }
                Ok(Json::Obj(fields))
            }
            found => Err(self.unexpected(found, "a string, array or object")),
        }
    }

    /// Comma-separated items up to `close` (the opening bracket already read).
    fn list<T>(
        &mut self,
        close: char,
        mut item: impl FnMut(&mut Self) -> Result<T, String>,
    ) -> Result<Vec<T>, String> {
        let mut items = Vec::new();
        self.blank();
        if self.s[self.at..].starts_with(close) {
            self.at += 1;
            return Ok(items);
        }
        loop {
            items.push(item(self)?);
            self.blank();
            match self.next() {
                Some(',') => {}
                Some(c) if c == close => return Ok(items),
                found => return Err(self.unexpected(found, &format!("`,` or `{close}`"))),
            }
        }
    }

    /// The rest of a string (the opening quote already read).
    fn string(&mut self) -> Result<String, String> {
        let mut out = String::new();
        loop {
            match self.next() {
                Some('"') => return Ok(out),
                Some('\\') => match self.next() {
                    Some('u') => out.push(self.unicode()?),
                    Some(c @ ('"' | '\\' | '/')) => out.push(c),
                    Some('n') => out.push('\n'),
                    Some('t') => out.push('\t'),
                    Some('r') => out.push('\r'),
                    Some('b') => out.push('\u{8}'),
                    Some('f') => out.push('\u{c}'),
                    found => return Err(self.unexpected(found, "an escape")),
                },
                Some(c) if c >= ' ' => out.push(c),
                found => return Err(self.unexpected(found, "string text or `\"`")),
            }
        }
    }

    /// The character of a `\uXXXX` escape (with its low surrogate, if any).
    fn unicode(&mut self) -> Result<char, String> {
        let high = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&high) && self.s[self.at..].starts_with("\\u") {
            self.at += 2;
            let low = self.hex4()?;
            if !(0xDC00..0xE000).contains(&low) {
                return Err(format!(
                    "invalid JSON: a lone surrogate before byte {}",
                    self.at
                ));
            }
            0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00)
        } else {
            high
        };
        char::from_u32(code)
            .ok_or_else(|| format!("invalid JSON: bad \\u escape before byte {}", self.at))
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self.s.get(self.at..self.at + 4).unwrap_or("");
        let code = u32::from_str_radix(digits, 16)
            .map_err(|_| format!("invalid JSON: bad \\u escape at byte {}", self.at))?;
        self.at += 4;
        Ok(code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Json {
        Json::Str(text.into())
    }

    #[test]
    fn reads_objects_arrays_and_strings() {
        let value = read(r#" {"a": ["x", {}], "b": "y"} "#).unwrap();
        let want = Json::Obj(vec![
            ("a".into(), Json::Arr(vec![s("x"), Json::Obj(vec![])])),
            ("b".into(), s("y")),
        ]);
        assert_eq!(value, want);
    }

    #[test]
    fn reads_escapes_and_surrogate_pairs() {
        let value = read(r#""caf\u00e9 \"q\" a\/b\n\t\ud83d\ude00""#).unwrap();
        assert_eq!(value, s("café \"q\" a/b\n\t😀"));
        assert!(read(r#""\ud83d""#).is_err(), "a lone surrogate");
        assert!(
            read(r#""\ud83d\u0041""#).is_err(),
            "a high surrogate without its low"
        );
        assert!(read(r#""\x""#).is_err());
        assert!(read("\"raw\ncontrol\"").is_err());
    }

    #[test]
    fn refuses_what_the_answer_never_holds() {
        for text in [
            "1",
            "true",
            "null",
            "{\"a\": 1}",
            "[[[[[[\"deep\"]]]]]]",
            "{\"a\":\"x\",}",
        ] {
            assert!(read(text).is_err(), "{text}");
        }
        assert!(read("{} {}").unwrap_err().contains("text after"));
        assert!(
            read(r#"{"a":"x","a":"y"}"#)
                .unwrap_err()
                .contains("repeats a key")
        );
        assert!(read("").unwrap_err().contains("the text ends"));
    }

    #[test]
    fn fields_takes_exactly_the_named_keys() {
        let obj = || read(r#"{"b": "2", "a": "1"}"#).unwrap();
        assert_eq!(fields(obj(), ["a", "b"], "it"), Ok([s("1"), s("2")]));
        assert!(
            fields(obj(), ["a"], "it")
                .unwrap_err()
                .contains("unknown key \"b\"")
        );
        assert!(
            fields(obj(), ["a", "b", "c"], "it")
                .unwrap_err()
                .contains("\"c\" is missing")
        );
        assert!(
            fields(s("x"), ["a"], "it")
                .unwrap_err()
                .contains("it must be a JSON object")
        );
    }
}
