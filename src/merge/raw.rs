//! Fast, non-validating walks over JSON the nodes wrote (valid by construction): member and
//! element boundaries, and splicing members out of an object without re-serializing it.

use memchr::memchr2;

/// The end (exclusive) of the string whose opening quote is at `pos`.
pub fn string_end(buf: &[u8], mut pos: usize) -> usize {
    pos += 1;
    // Most strings (keys, short values) end within a few bytes: a plain loop first, the
    // vectorized search only for long ones.
    let short = (pos + 24).min(buf.len());
    while pos < short {
        match buf[pos] {
            b'"' => return pos + 1,
            b'\\' => pos += 2,
            _ => pos += 1,
        }
    }
    while let Some(i) = memchr2(b'"', b'\\', &buf[pos.min(buf.len())..]) {
        pos += i;
        if buf[pos] == b'\\' {
            pos += 2;
        } else {
            return pos + 1;
        }
    }
    buf.len()
}

pub fn skip_ws(buf: &[u8], mut pos: usize) -> usize {
    while pos < buf.len() && matches!(buf[pos], b' ' | b'\n' | b'\r' | b'\t') {
        pos += 1;
    }
    pos
}

/// The end (exclusive) of the value starting at `pos`.
pub fn value_end(buf: &[u8], pos: usize) -> usize {
    match buf.get(pos) {
        Some(b'"') => string_end(buf, pos),
        Some(b'{') => container_end(buf, pos + 1, b'{', b'}', 1),
        Some(b'[') => container_end(buf, pos + 1, b'[', b']', 1),
        _ => {
            let mut i = pos;
            while i < buf.len()
                && !matches!(buf[i], b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t')
            {
                i += 1;
            }
            i
        }
    }
}

/// The end of a container whose inside starts at `pos`, `depth` levels deep. Only this
/// container's own brackets count (brackets of the other kind cannot unbalance it). Outside
/// strings JSON is mostly punctuation a byte or two apart, so a plain loop finds the next
/// quote or bracket sooner than a vectorized search; strings are skipped by [`string_end`].
pub fn container_end(buf: &[u8], mut pos: usize, open: u8, close: u8, mut depth: usize) -> usize {
    while let Some(&b) = buf.get(pos) {
        if b == b'"' {
            pos = string_end(buf, pos);
            continue;
        }
        if b == open {
            depth += 1;
        } else if b == close {
            depth -= 1;
            if depth == 0 {
                return pos + 1;
            }
        }
        pos += 1;
    }
    buf.len()
}

/// Where the string ending with the quote at `close` opens (a quote preceded by an even
/// number of backslashes).
fn string_start(buf: &[u8], close: usize) -> Option<usize> {
    let mut end = close;
    while let Some(q) = memchr::memrchr(b'"', &buf[..end]) {
        let backslashes = buf[..q].iter().rev().take_while(|&&b| b == b'\\').count();
        if backslashes % 2 == 0 {
            return Some(q);
        }
        end = q;
    }
    None
}

fn rskip_ws(buf: &[u8], mut end: usize) -> usize {
    while end > 0 && matches!(buf[end - 1], b' ' | b'\n' | b'\r' | b'\t') {
        end -= 1;
    }
    end
}

/// The start of the value ending at `end` (exclusive), read backwards; `None` for anything
/// unexpected.
fn value_start(buf: &[u8], end: usize) -> Option<usize> {
    match buf.get(end.checked_sub(1)?)? {
        b'"' => string_start(buf, end - 1),
        b'}' | b']' => {
            let (open, close) = if buf[end - 1] == b'}' {
                (b'{', b'}')
            } else {
                (b'[', b']')
            };
            let mut depth = 0usize;
            let mut i = end;
            while i > 0 {
                i -= 1;
                match buf[i] {
                    b'"' => i = string_start(buf, i)?,
                    b if b == close => depth += 1,
                    b if b == open => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(i);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        _ => {
            let mut i = end;
            while i > 0
                && !matches!(
                    buf[i - 1],
                    b':' | b',' | b'[' | b'{' | b' ' | b'\n' | b'\r' | b'\t'
                )
            {
                i -= 1;
            }
            Some(i)
        }
    }
}

/// The top-level members of a search answer shaped as Meilisearch writes it (`hits` first),
/// read from the end so the hits array is never scanned. Returns the members in order and
/// where the first hit may start; `None` if the answer has another shape.
pub fn search_answer_members(buf: &[u8]) -> Option<(Vec<Member>, usize)> {
    const PREFIX: &[u8] = b"{\"hits\":[";
    let start = skip_ws(buf, 0);
    if !buf[start..].starts_with(PREFIX) {
        return None;
    }
    let array = start + PREFIX.len() - 1;
    let mut end = rskip_ws(buf, buf.len());
    if end == 0 || buf[end - 1] != b'}' {
        return None;
    }
    end -= 1;
    let mut out = Vec::new();
    loop {
        end = rskip_ws(buf, end);
        let last = *buf.get(end.checked_sub(1)?)?;
        // An array that is not all numbers (a query vector is) can only be the hits.
        let numeric = last == b']' && {
            let run = buf[..end - 1]
                .iter()
                .rev()
                .take_while(|b| b"0123456789.-+eE, \n\r\t".contains(b))
                .count();
            buf.get(end - 2 - run.min(end - 2)) == Some(&b'[') || end - 1 == array + 1
        };
        let vs = if last == b']' && (!numeric || end - 1 == array + 1) {
            array
        } else {
            value_start(buf, end)?
        };
        let colon = rskip_ws(buf, vs);
        if buf.get(colon.checked_sub(1)?)? != &b':' {
            return None;
        }
        let key_end = rskip_ws(buf, colon - 1);
        if buf.get(key_end.checked_sub(1)?)? != &b'"' {
            return None;
        }
        let key_start = string_start(buf, key_end - 1)?;
        out.push(Member {
            start: key_start,
            key: (key_start + 1, key_end - 1),
            value: (vs, end),
        });
        let before = rskip_ws(buf, key_start);
        match buf.get(before.checked_sub(1)?)? {
            b',' => end = before - 1,
            b'{' if before - 1 == start => break,
            _ => return None,
        }
    }
    out.reverse();
    if out.first().map(|m| &buf[m.key.0..m.key.1]) != Some(&b"hits"[..]) {
        return None;
    }
    Some((out, array + 1))
}

/// One member of an object: key (without quotes, escapes kept) and value range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Member {
    /// From the key's opening quote.
    pub start: usize,
    pub key: (usize, usize),
    pub value: (usize, usize),
}

/// The members of the object at `pos` (which must be `{`), in order.
pub fn members(buf: &[u8], pos: usize) -> Vec<Member> {
    members_and_end(buf, pos).0
}

/// The members of the object at `pos` and the object's end (exclusive), in one pass.
pub fn members_and_end(buf: &[u8], pos: usize) -> (Vec<Member>, usize) {
    let mut out = Vec::new();
    let mut i = skip_ws(buf, pos + 1);
    while i < buf.len() && buf[i] == b'"' {
        let key_end = string_end(buf, i);
        let colon = skip_ws(buf, key_end);
        let vs = skip_ws(buf, colon + 1);
        let ve = value_end(buf, vs);
        out.push(Member {
            start: i,
            key: (i + 1, key_end - 1),
            value: (vs, ve),
        });
        i = skip_ws(buf, ve);
        if i < buf.len() && buf[i] == b',' {
            i = skip_ws(buf, i + 1);
        } else {
            break;
        }
    }
    // `i` is at the closing brace.
    (out, (i + 1).min(buf.len()))
}

/// The elements of the array at `pos` (which must be `[`), as ranges.
pub fn elements(buf: &[u8], pos: usize) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut i = skip_ws(buf, pos + 1);
    while i < buf.len() && buf[i] != b']' {
        let end = value_end(buf, i);
        out.push((i, end));
        i = skip_ws(buf, end);
        if i < buf.len() && buf[i] == b',' {
            i = skip_ws(buf, i + 1);
        } else {
            break;
        }
    }
    out
}

/// Copies the object `buf[range]` into `out` without the members named in `drop`, and with
/// `nested(key)` applied to the value of members it names (e.g. the tag inside `_formatted`).
pub fn write_object_without(
    buf: &[u8],
    range: (usize, usize),
    drop: &dyn Fn(&[u8]) -> bool,
    nested: &dyn Fn(&[u8]) -> bool,
    out: &mut Vec<u8>,
) {
    write_members_without(buf, range, &members(buf, range.0), drop, nested, out);
}

/// [`write_object_without`] for an object whose members `ms` are already known.
pub fn write_members_without(
    buf: &[u8],
    range: (usize, usize),
    ms: &[Member],
    drop: &dyn Fn(&[u8]) -> bool,
    nested: &dyn Fn(&[u8]) -> bool,
    out: &mut Vec<u8>,
) {
    if ms
        .iter()
        .all(|m| !drop(&buf[m.key.0..m.key.1]) && !nested(&buf[m.key.0..m.key.1]))
    {
        out.extend_from_slice(&buf[range.0..range.1]);
        return;
    }
    // Runs of kept members are copied whole, with the separators between them.
    out.push(b'{');
    let mut first = true;
    let mut run: Option<(usize, usize)> = None;
    let flush = |run: &mut Option<(usize, usize)>, first: &mut bool, out: &mut Vec<u8>| {
        if let Some((start, end)) = run.take() {
            if !*first {
                out.push(b',');
            }
            *first = false;
            out.extend_from_slice(&buf[start..end]);
        }
    };
    for m in ms {
        let key = &buf[m.key.0..m.key.1];
        if drop(key) {
            flush(&mut run, &mut first, out);
            continue;
        }
        if nested(key) && buf.get(m.value.0) == Some(&b'{') {
            flush(&mut run, &mut first, out);
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&buf[m.start..m.value.0]);
            write_object_without(buf, m.value, drop, &|_| false, out);
            continue;
        }
        run = Some((run.map_or(m.start, |r| r.0), m.value.1));
    }
    flush(&mut run, &mut first, out);
    out.push(b'}');
}

/// The range of `results[i]` in a node's plain multi-search answer.
pub fn result_ranges(buf: &[u8]) -> Vec<(usize, usize)> {
    let start = buf
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    members(buf, start)
        .into_iter()
        .find(|m| &buf[m.key.0..m.key.1] == b"results")
        .map(|m| elements(buf, m.value.0))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_members_and_elements() {
        let doc = br#"{"a": 1, "b" : {"c": [1, "x]\"y", {"d": null}]}, "e":"\\", "f": -1.5e3}"#;
        let ms = members(doc, 0);
        let keys: Vec<&[u8]> = ms.iter().map(|m| &doc[m.key.0..m.key.1]).collect();
        assert_eq!(keys, [&b"a"[..], b"b", b"e", b"f"]);
        assert_eq!(
            &doc[ms[1].value.0..ms[1].value.1],
            br#"{"c": [1, "x]\"y", {"d": null}]}"#
        );
        assert_eq!(&doc[ms[3].value.0..ms[3].value.1], b"-1.5e3");
        let arr = br#"[ {"a":1}, [2], "3" ]"#;
        let els: Vec<&[u8]> = elements(arr, 0)
            .into_iter()
            .map(|(s, e)| &arr[s..e])
            .collect();
        assert_eq!(els, [&br#"{"a":1}"#[..], b"[2]", br#""3""#]);
        assert!(elements(b"[]", 0).is_empty());
        assert!(members(b"{}", 0).is_empty());
    }

    #[test]
    fn answers_read_from_the_end_match_a_forward_read() {
        for answer in [
            &br#"{"hits":[{"id":1,"t":"a\"]}"},{"id":2}],"query":"q\\","processingTimeMs":1,"limit":20,"offset":0,"estimatedTotalHits":2,"facetDistribution":{"c":{"x":1}},"requestUid":"u"}"#[..],
            br#"{"hits":[],"query":"","queryVector":[0.5,-1e-3],"processingTimeMs":0,"requestUid":"u"}"#,
            br#"{"hits":[{"v":[1,2]}],"query":"","processingTimeMs":0}"#,
        ] {
            let (members, first) = search_answer_members(answer).expect("parsed");
            assert_eq!(members, super::members(answer, 0), "{}", String::from_utf8_lossy(answer));
            assert_eq!(first, 9);
        }
        assert!(search_answer_members(br#"{"query":"x","hits":[]}"#).is_none());
    }

    #[test]
    fn splices_members_out_recursively() {
        let hit = br#"{"id":1,"_miroir_shard":"!!!!","title":"t","_formatted":{"id":"1","_miroir_shard":"!!!!","title":"<em>t</em>"},"_rankingScore":0.5}"#;
        let mut out = Vec::new();
        let drop = |k: &[u8]| k == b"_miroir_shard" || k == b"_rankingScore";
        write_object_without(
            hit,
            (0, hit.len()),
            &drop,
            &|k| k == b"_formatted",
            &mut out,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"id":1,"title":"t","_formatted":{"id":"1","title":"<em>t</em>"}}"#
        );
        let mut untouched = Vec::new();
        write_object_without(br#"{"id":2}"#, (0, 8), &drop, &|_| false, &mut untouched);
        assert_eq!(untouched, br#"{"id":2}"#);
    }
}
