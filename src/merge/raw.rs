//! Fast, non-validating walks over JSON the nodes wrote (valid by construction): member and
//! element boundaries, and splicing members out of an object without re-serializing it.

use memchr::memchr2;

/// The end (exclusive) of the string whose opening quote is at `pos`.
fn string_end(buf: &[u8], mut pos: usize) -> usize {
    pos += 1;
    while let Some(i) = memchr2(b'"', b'\\', &buf[pos..]) {
        pos += i;
        if buf[pos] == b'\\' {
            pos += 2;
        } else {
            return pos + 1;
        }
    }
    buf.len()
}

fn skip_ws(buf: &[u8], mut pos: usize) -> usize {
    while pos < buf.len() && matches!(buf[pos], b' ' | b'\n' | b'\r' | b'\t') {
        pos += 1;
    }
    pos
}

/// The end (exclusive) of the value starting at `pos`.
pub fn value_end(buf: &[u8], pos: usize) -> usize {
    match buf.get(pos) {
        Some(b'"') => string_end(buf, pos),
        Some(b'{' | b'[') => {
            let mut depth = 0usize;
            let mut i = pos;
            while i < buf.len() {
                match buf[i] {
                    b'"' => {
                        i = string_end(buf, i);
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return i + 1;
                        }
                    }
                    _ => {}
                }
                i += 1;
            }
            buf.len()
        }
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
    out
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
    let ms = members(buf, range.0);
    if ms
        .iter()
        .all(|m| !drop(&buf[m.key.0..m.key.1]) && !nested(&buf[m.key.0..m.key.1]))
    {
        out.extend_from_slice(&buf[range.0..range.1]);
        return;
    }
    out.push(b'{');
    let mut first = true;
    for m in ms {
        let key = &buf[m.key.0..m.key.1];
        if drop(key) {
            continue;
        }
        if !first {
            out.push(b',');
        }
        first = false;
        out.extend_from_slice(&buf[m.start..m.value.0]);
        if nested(key) && buf.get(m.value.0) == Some(&b'{') {
            write_object_without(buf, m.value, drop, &|_| false, out);
        } else {
            out.extend_from_slice(&buf[m.value.0..m.value.1]);
        }
    }
    out.push(b'}');
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
