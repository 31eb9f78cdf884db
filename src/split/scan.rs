//! A validating JSON scanner that finds document boundaries and one top-level field's value
//! without building a tree: the fast path of the batch rewrite.
//!
//! It accepts exactly what `serde_json` accepts, or gives up ([`Invalid`]); the caller then
//! asks `serde_json` for the verdict and Meilisearch's exact error message. Giving up is always
//! safe, so the scanner rejects anything unusual (deep nesting, surrogate escapes) rather than
//! second-guess `serde_json` on it.

/// The input is not valid JSON, or not something this scanner vouches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Invalid;

/// Nesting the scanner follows before deferring to `serde_json` (whose limit is 128).
const MAX_DEPTH: usize = 100;

/// One top-level object found by the scanner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectSpan {
    /// The object, `{` to `}` inclusive.
    pub start: usize,
    pub end: usize,
    /// Whether the object has no member (`{}`), so a spliced member needs no comma.
    pub empty: bool,
    /// The raw value of the looked-up key, if present (byte range).
    pub value: Option<(usize, usize)>,
    /// How many times the looked-up key appears (JSON allows duplicates; Meilisearch keeps
    /// the last one, and so do we).
    pub value_count: u32,
    /// Whether the object has a member named like the reserved key.
    pub has_reserved: bool,
}

pub struct Scanner<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

const fn repeat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}
const LO: u64 = repeat(0x01);
const HI: u64 = repeat(0x80);

/// Whether any byte of `w` is a quote, a backslash or a control character.
#[inline(always)]
fn needs_attention(w: u64) -> u64 {
    let has_zero = |x: u64| x.wrapping_sub(LO) & !x & HI;
    let quote = has_zero(w ^ repeat(b'"'));
    let backslash = has_zero(w ^ repeat(b'\\'));
    let control = w.wrapping_sub(repeat(0x20)) & !w & HI;
    quote | backslash | control
}

impl<'a> Scanner<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Scanner { buf, pos: 0 }
    }

    #[inline]
    pub fn skip_ws(&mut self) {
        while let Some(&b) = self.buf.get(self.pos) {
            if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                self.pos += 1;
            } else {
                break;
            }
        }
    }

    #[inline]
    pub fn peek(&self) -> Option<u8> {
        self.buf.get(self.pos).copied()
    }

    #[inline]
    fn expect(&mut self, b: u8) -> Result<(), Invalid> {
        if self.peek() == Some(b) {
            self.pos += 1;
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Skips a string whose opening quote is at `pos`; returns its content range and whether
    /// it holds escapes.
    #[inline]
    pub fn string(&mut self) -> Result<(usize, usize, bool), Invalid> {
        self.expect(b'"')?;
        let start = self.pos;
        let mut escaped = false;
        let buf = self.buf;
        loop {
            // Eight bytes at a time until a quote, backslash or control byte shows up.
            while self.pos + 8 <= buf.len() {
                let w = u64::from_le_bytes(
                    buf[self.pos..self.pos + 8]
                        .try_into()
                        .map_err(|_| Invalid)?,
                );
                let hit = needs_attention(w);
                if hit != 0 {
                    self.pos += (hit.trailing_zeros() / 8) as usize;
                    break;
                }
                self.pos += 8;
            }
            let Some(&b) = buf.get(self.pos) else {
                return Err(Invalid);
            };
            match b {
                b'"' => {
                    let end = self.pos;
                    self.pos += 1;
                    return Ok((start, end, escaped));
                }
                b'\\' => {
                    escaped = true;
                    self.pos += 1;
                    match buf.get(self.pos) {
                        Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => {
                            self.pos += 1
                        }
                        Some(b'u') => {
                            let hex = buf.get(self.pos + 1..self.pos + 5).ok_or(Invalid)?;
                            if !hex.iter().all(u8::is_ascii_hexdigit) {
                                return Err(Invalid);
                            }
                            // Surrogates need pairing rules: leave them to serde_json.
                            if matches!(hex[0], b'd' | b'D')
                                && matches!(hex[1], b'8'..=b'9' | b'a'..=b'f' | b'A'..=b'F')
                            {
                                return Err(Invalid);
                            }
                            self.pos += 5;
                        }
                        _ => return Err(Invalid),
                    }
                }
                b if b < 0x20 => return Err(Invalid),
                _ => self.pos += 1,
            }
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.pos;
        while self.peek().is_some_and(|b| b.is_ascii_digit()) {
            self.pos += 1;
        }
        self.pos - start
    }

    /// Skips a number, checking JSON's grammar; returns whether it is an integer literal.
    fn number(&mut self) -> Result<bool, Invalid> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Invalid),
        }
        let mut integer = true;
        if self.peek() == Some(b'.') {
            self.pos += 1;
            integer = false;
            if self.digits() == 0 {
                return Err(Invalid);
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            integer = false;
            if matches!(self.peek(), Some(b'+' | b'-')) {
                self.pos += 1;
            }
            if self.digits() == 0 {
                return Err(Invalid);
            }
        }
        Ok(integer)
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), Invalid> {
        if self.buf[self.pos..].starts_with(word) {
            self.pos += word.len();
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// Skips any value.
    pub fn value(&mut self, depth: usize) -> Result<(), Invalid> {
        if depth > MAX_DEPTH {
            return Err(Invalid);
        }
        match self.peek().ok_or(Invalid)? {
            b'"' => self.string().map(|_| ()),
            b'{' => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b'}') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    self.string()?;
                    self.skip_ws();
                    self.expect(b':')?;
                    self.skip_ws();
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b'}') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(Invalid),
                    }
                }
            }
            b'[' => {
                self.pos += 1;
                self.skip_ws();
                if self.peek() == Some(b']') {
                    self.pos += 1;
                    return Ok(());
                }
                loop {
                    self.skip_ws();
                    self.value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.pos += 1,
                        Some(b']') => {
                            self.pos += 1;
                            return Ok(());
                        }
                        _ => return Err(Invalid),
                    }
                }
            }
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'n' => self.literal(b"null"),
            _ => self.number().map(|_| ()),
        }
    }

    /// Scans a top-level object at `pos`, noting the value of `key` and whether the member
    /// named in `reserved` is present. Keys with escapes are compared after unescaping.
    pub fn object(&mut self, key: Option<&str>, reserved: &[&str]) -> Result<ObjectSpan, Invalid> {
        let start = self.pos;
        self.expect(b'{')?;
        let mut span = ObjectSpan {
            start,
            end: 0,
            empty: false,
            value: None,
            value_count: 0,
            has_reserved: false,
        };
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            span.end = self.pos;
            span.empty = true;
            return Ok(span);
        }
        loop {
            self.skip_ws();
            let (ks, ke, escaped) = self.string()?;
            let name = &self.buf[ks..ke];
            let (is_key, is_reserved) = if escaped {
                let unescaped: String =
                    serde_json::from_slice(&self.buf[ks - 1..ke + 1]).map_err(|_| Invalid)?;
                (
                    key.is_some_and(|k| k == unescaped),
                    reserved.contains(&unescaped.as_str()),
                )
            } else {
                (
                    key.is_some_and(|k| k.as_bytes() == name),
                    reserved.iter().any(|r| r.as_bytes() == name),
                )
            };
            span.has_reserved |= is_reserved;
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            let vs = self.pos;
            self.value(1)?;
            if is_key {
                span.value = Some((vs, self.pos));
                span.value_count += 1;
            }
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    span.end = self.pos;
                    return Ok(span);
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// The top-level member names of the object at `pos`, in order (for primary-key
    /// inference); leaves `pos` after the object.
    pub fn object_keys(&mut self) -> Result<Vec<String>, Invalid> {
        self.expect(b'{')?;
        let mut keys = Vec::new();
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(keys);
        }
        loop {
            self.skip_ws();
            let (ks, ke, escaped) = self.string()?;
            let name = if escaped {
                serde_json::from_slice(&self.buf[ks - 1..ke + 1]).map_err(|_| Invalid)?
            } else {
                std::str::from_utf8(&self.buf[ks..ke])
                    .map_err(|_| Invalid)?
                    .to_string()
            };
            keys.push(name);
            self.skip_ws();
            self.expect(b':')?;
            self.skip_ws();
            self.value(1)?;
            self.skip_ws();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(keys);
                }
                _ => return Err(Invalid),
            }
        }
    }

    /// Whether the raw value at `range` is an integer literal (as opposed to a float).
    pub fn is_integer_literal(raw: &[u8]) -> bool {
        let mut s = Scanner::new(raw);
        matches!(s.peek(), Some(b'-' | b'0'..=b'9')) && s.number() == Ok(true) && s.pos == raw.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(s: &str) -> bool {
        let mut sc = Scanner::new(s.as_bytes());
        sc.skip_ws();
        let ok = sc.value(0).is_ok();
        sc.skip_ws();
        ok && sc.pos == s.len()
    }

    #[test]
    fn accepts_valid_json() {
        for s in [
            r#"{"a":1,"b":[1,2.5,-3e4,{"c":null}],"d":"x\"y\\z\u00e9","e":true,"f":false}"#,
            r#"[]"#,
            r#"{}"#,
            "\"héllo wörld, long enough to take the eight-byte path\"",
            r#"-0.0e+1"#,
        ] {
            assert!(valid(s), "{s}");
        }
    }

    #[test]
    fn rejects_invalid_json() {
        for s in [
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":tru}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1,}"#,
            r#"[1,]"#,
            "\"tab\tinside\"",
            r#""bad \x escape""#,
            r#""lone \ud800 surrogate""#,
            r#"{"a":"unterminated"#,
            r#"+1"#,
        ] {
            assert!(!valid(s), "{s}");
        }
        let deep = "[".repeat(200) + &"]".repeat(200);
        assert!(!valid(&deep), "deep nesting is deferred to serde_json");
    }

    #[test]
    fn finds_a_key_and_the_reserved_member() {
        let doc = r#"{"title":"x","i\u0064":"42","_miroir_shard":"!!!!"}"#;
        let mut sc = Scanner::new(doc.as_bytes());
        let span = sc.object(Some("id"), &["_miroir_shard"]).unwrap();
        let (vs, ve) = span.value.unwrap();
        assert_eq!(&doc[vs..ve], "\"42\"");
        assert!(span.has_reserved);
        assert_eq!((span.start, span.end), (0, doc.len()));
        assert!(Scanner::is_integer_literal(b"-12"));
        assert!(!Scanner::is_integer_literal(b"1.0"));
        assert!(!Scanner::is_integer_literal(b"\"1\""));
    }

    proptest::proptest! {
        /// The scanner never accepts what serde_json rejects.
        #[test]
        fn never_more_permissive_than_serde(s in "[\\[\\]{}\":,0-9a-z\\\\. \\-eE+\u{e9}]{0,40}") {
            if valid(&s) {
                proptest::prop_assert!(serde_json::from_str::<serde_json::Value>(&s).is_ok(), "{}", s);
            }
        }
    }
}
