//! For a client the gateway's fields (the tag, the insertion order) do not exist: a request
//! that names one as an attribute (in a filter, `sort`, `facets`, `distinct`, a facet search's
//! `facetName`) gets it renamed to its stand-in ([`STAND_IN`], [`ORDER_STAND_IN`]), an
//! attribute no index has, before any node sees the request. The node then answers as it
//! would for any attribute that is not filterable / sortable (error codes, timing, task
//! failures alike), and [`restore`] puts the client's name back into its message. Values equal
//! to a field's name (`title = _miroir_shard`) are left alone.

use serde_json::{Map, Value};

use super::FIELD;

/// The name the tag is replaced with: no index has it, it does not contain the tag's name
/// (so hiding the tag from attribute lists leaves it whole), and it is as long as the tag's
/// name (so the positions a node's filter errors quote stay right).
pub const STAND_IN: &str = "_miroir_x_tag";

/// The insertion order's stand-in, on the same terms.
pub const ORDER_STAND_IN: &str = "_miroir_x_ord";

/// Each gateway field and its stand-in.
const RENAMES: [(&str, &str); 2] = [(FIELD, STAND_IN), (super::order::FIELD, ORDER_STAND_IN)];

/// The stand-in of `name`, if it is a gateway field.
fn stand_in(name: &str) -> Option<&'static str> {
    RENAMES.iter().find(|(f, _)| *f == name).map(|r| r.1)
}

/// A filter token: its byte range in the expression and whether it is an attribute name.
#[derive(Debug, PartialEq)]
struct Token {
    start: usize,
    end: usize,
    /// The token's text without its quotes.
    text: (usize, usize),
}

/// Splits a filter expression into words, quoted strings and operators (Meilisearch's
/// grammar: `word = (alphanumeric | _ | - | .)+`, values in single or double quotes).
fn tokens(expr: &str) -> Vec<Token> {
    let b = expr.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'"' || c == b'\'' {
            let mut j = i + 1;
            while j < b.len() && b[j] != c {
                // A backslash escapes the quote, as in Meilisearch's parser.
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            let end = (j + 1).min(b.len());
            out.push(Token {
                start: i,
                end,
                text: (i + 1, j.min(b.len())),
            });
            i = end;
        } else if b"()[],".contains(&c) {
            out.push(Token {
                start: i,
                end: i + 1,
                text: (i, i + 1),
            });
            i += 1;
        } else if b"=!<>".contains(&c) {
            let mut j = i + 1;
            while j < b.len() && b"=!<>".contains(&b[j]) {
                j += 1;
            }
            out.push(Token {
                start: i,
                end: j,
                text: (i, j),
            });
            i = j;
        } else {
            let mut j = i;
            while j < b.len() && !b[j].is_ascii_whitespace() && !b"()[],=!<>\"'".contains(&b[j]) {
                j += 1;
            }
            out.push(Token {
                start: i,
                end: j,
                text: (i, j),
            });
            i = j;
        }
    }
    out
}

/// Byte ranges of the tokens that name a gateway field as an attribute, with its stand-in: a
/// condition starts the expression or follows `(`, `AND`, `OR` or `NOT`.
fn tag_attributes(expr: &str) -> Vec<((usize, usize), &'static str)> {
    let toks = tokens(expr);
    let mut out = Vec::new();
    for (k, t) in toks.iter().enumerate() {
        let Some(stand_in) = stand_in(&expr[t.text.0..t.text.1]) else {
            continue;
        };
        let starts_condition = match k.checked_sub(1).map(|p| &toks[p]) {
            None => true,
            Some(p) => {
                let prev = &expr[p.start..p.end];
                prev == "("
                    || prev.eq_ignore_ascii_case("AND")
                    || prev.eq_ignore_ascii_case("OR")
                    || prev.eq_ignore_ascii_case("NOT")
            }
        };
        if starts_condition {
            out.push((t.text, stand_in));
        }
    }
    out
}

fn rename_in_expr(expr: &str) -> Option<String> {
    let found = tag_attributes(expr);
    if found.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(expr.len() + 16);
    let mut at = 0;
    for ((s, e), stand_in) in found {
        out.push_str(&expr[at..s]);
        out.push_str(stand_in);
        at = e;
    }
    out.push_str(&expr[at..]);
    Some(out)
}

/// The filter (a string or nested arrays of strings) with the tag renamed where it is an
/// attribute; `None` if it names none.
pub fn rename_in_filter(filter: &Value) -> Option<Value> {
    match filter {
        Value::String(s) => rename_in_expr(s).map(Value::from),
        Value::Array(_) => rename_in_list(filter, rename_in_filter),
        _ => None,
    }
}

/// A `sort` rule (`attribute:asc`) with the tag renamed.
fn rename_in_sort_rule(rule: &Value) -> Option<Value> {
    let (attr, dir) = rule.as_str()?.rsplit_once(':')?;
    stand_in(attr).map(|s| Value::from(format!("{s}:{dir}")))
}

fn rename_in_list(list: &Value, rename: impl Fn(&Value) -> Option<Value>) -> Option<Value> {
    let items = list.as_array()?;
    let renamed: Vec<Option<Value>> = items.iter().map(&rename).collect();
    if renamed.iter().all(Option::is_none) {
        return None;
    }
    Some(Value::Array(
        renamed
            .into_iter()
            .zip(items)
            .map(|(r, orig)| r.unwrap_or_else(|| orig.clone()))
            .collect(),
    ))
}

fn is_tag_name(v: &Value) -> Option<Value> {
    v.as_str().and_then(stand_in).map(Value::from)
}

/// Renames the tag wherever a search, facet search or document fetch body uses it as an
/// attribute (`filter`, `sort`, `facets`, `distinct`, `facetName`); whether it did.
pub fn rename_in_query(query: &mut Map<String, Value>) -> bool {
    let mut renamed = false;
    let mut apply = |key: &str, f: &dyn Fn(&Value) -> Option<Value>| {
        if let Some(new) = query.get(key).and_then(f) {
            query.insert(key.to_string(), new);
            renamed = true;
        }
    };
    apply("filter", &rename_in_filter);
    apply("sort", &|v| rename_in_list(v, rename_in_sort_rule));
    apply("facets", &|v| rename_in_list(v, is_tag_name));
    apply("distinct", &is_tag_name);
    apply("facetName", &is_tag_name);
    renamed
}

/// Whether [`rename_in_query`] would rename anything.
pub fn uses_tag(query: &Map<String, Value>) -> bool {
    rename_in_query(&mut query.clone())
}

/// Whether the JSON text `raw` could name a gateway field: every name starts with
/// `_miroir_`, and only a `\u` escape could spell one otherwise. Most requests name none, and
/// this spares them the copy [`uses_tag`] makes.
pub fn may_name_a_field(raw: &[u8]) -> bool {
    memchr::memmem::find(raw, b"_miroir_").is_some() || memchr::memmem::find(raw, b"\\u").is_some()
}

/// [`may_name_a_field`] for a query string: a percent escape could spell a name too.
pub fn query_may_name_a_field(query: &str) -> bool {
    const NAME: &str = "_miroir_";
    query.contains(NAME)
        || (query.contains('%') && crate::query_string::percent_decode(query).contains(NAME))
}

/// A node's message about a stand-in, with the client's name for it back.
pub fn restore(message: &str) -> String {
    RENAMES
        .iter()
        .fold(message.to_string(), |m, (field, stand_in)| {
            m.replace(stand_in, field)
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_that_cannot_name_a_field_are_told_apart_from_their_text() {
        for raw in [
            r#"{"q":"red","filter":"brand = x"}"#,
            r#"{"sort":["price:asc"]}"#,
        ] {
            assert!(!may_name_a_field(raw.as_bytes()), "{raw}");
        }
        // Named as is, or spelled with an escape: the parsed query is checked.
        for raw in [
            r#"{"filter":"_miroir_shard = 1"}"#,
            r#"{"filter":"\u005fmiroir_shard = 1"}"#,
        ] {
            assert!(may_name_a_field(raw.as_bytes()), "{raw}");
            let query: Map<String, Value> = serde_json::from_str(raw).unwrap();
            assert!(uses_tag(&query), "{raw}");
        }
    }

    #[test]
    fn query_strings_that_cannot_name_a_field_are_told_apart() {
        for query in ["q=red&limit=20", "q=%E2%9C%93&filter=brand%20%3D%20x", ""] {
            assert!(!query_may_name_a_field(query), "{query}");
        }
        for query in [
            "filter=_miroir_shard%20%3D%201",
            "filter=%5Fmiroir_shard%20%3D%201",
            "attributesToRetrieve=%5f%6d%69%72%6f%69%72%5fshard",
        ] {
            assert!(query_may_name_a_field(query), "{query}");
        }
    }

    #[test]
    fn only_attribute_positions_are_renamed() {
        let r = |s: &str| rename_in_expr(s);
        let s = STAND_IN;
        assert_eq!(r("_miroir_shard EXISTS"), Some(format!("{s} EXISTS")));
        assert_eq!(
            r("genre = x AND _miroir_shard = \"!!!!\""),
            Some(format!("genre = x AND {s} = \"!!!!\""))
        );
        assert_eq!(
            r("NOT (_miroir_shard IN [a, b]) OR x > 1"),
            Some(format!("NOT ({s} IN [a, b]) OR x > 1"))
        );
        assert_eq!(r("'_miroir_shard' = 1"), Some(format!("'{s}' = 1")));
        assert_eq!(r("_miroir_shard 1 TO 5"), Some(format!("{s} 1 TO 5")));
        assert_eq!(r("_miroir_shard!=1"), Some(format!("{s}!=1")));
        // Values that happen to spell the tag are values.
        assert_eq!(r("title = _miroir_shard"), None);
        assert_eq!(r("title IN [x, _miroir_shard]"), None);
        assert_eq!(r("title = \"_miroir_shard\""), None);
        assert_eq!(r("_miroir_shards = 1"), None);
        assert_eq!(r("my_miroir_shard = 1"), None);
    }

    #[test]
    fn every_attribute_parameter_is_renamed() {
        let mut q = json!({
            "q": "_miroir_shard",
            "filter": ["a = 1", ["_miroir_shard EXISTS", "b = 2"]],
            "sort": ["price:asc", "_miroir_shard:desc"],
            "facets": ["genre", "_miroir_shard"],
            "distinct": "_miroir_shard",
            "attributesToRetrieve": ["_miroir_shard"]
        });
        assert!(rename_in_query(q.as_object_mut().unwrap()));
        let s = STAND_IN;
        assert_eq!(
            q,
            json!({
                "q": "_miroir_shard",
                "filter": ["a = 1", [format!("{s} EXISTS"), "b = 2"]],
                "sort": ["price:asc", format!("{s}:desc")],
                "facets": ["genre", s],
                "distinct": s,
                "attributesToRetrieve": ["_miroir_shard"]
            })
        );
        let mut plain = json!({"q": "x", "filter": "a = _miroir_shard", "facets": ["*"]});
        assert!(!rename_in_query(plain.as_object_mut().unwrap()));
    }

    #[test]
    fn the_stand_in_keeps_error_positions() {
        assert_eq!(STAND_IN.len(), FIELD.len());
        assert!(!STAND_IN.contains(FIELD));
        assert_eq!(ORDER_STAND_IN.len(), super::super::order::FIELD.len());
        assert_eq!(
            rename_in_expr("_miroir_order > 1 AND _miroir_shard = x"),
            Some(format!("{ORDER_STAND_IN} > 1 AND {STAND_IN} = x"))
        );
        assert_eq!(
            restore("`_miroir_x_ord` and `_miroir_x_tag`"),
            "`_miroir_order` and `_miroir_shard`"
        );
    }

    #[test]
    fn messages_name_the_attribute_the_client_wrote() {
        let node = format!(
            "Attribute `{STAND_IN}` is not sortable. Available sortable attributes are: `price`."
        );
        assert_eq!(
            restore(&node),
            "Attribute `_miroir_shard` is not sortable. Available sortable attributes are: `price`."
        );
    }
}
