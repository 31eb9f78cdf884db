//! The gateway's fields hidden from node error messages, so they read as a single node's
//! (e.g. "Available filterable attribute patterns are: ...", "Available sortable attributes
//! are: ...").

use bytes::Bytes;

/// Removes the gateway's fields from the attribute lists of an error message, so it reads as
/// a single node's.
pub fn hide_tag_in_message(message: &str) -> String {
    let sortable = hide_field(
        message,
        super::order::FIELD,
        &["Available sortable attributes are: "],
        "This index does not have configured sortable attributes.",
    );
    hide_field(
        &sortable,
        super::FIELD,
        &[
            "Available filterable attribute patterns are: ",
            "Available filterable attributes patterns are: ",
        ],
        "This index does not have configured filterable attributes.",
    )
}

/// Removes `field` from a message's lists; a list of `field` alone (after one of `lists`)
/// becomes `none`, a node's phrasing when nothing is configured.
fn hide_field(message: &str, field: &str, lists: &[&str], none: &str) -> String {
    let tag = format!("`{field}`");
    let mut message = message.to_string();
    for list in lists {
        message = message.replace(&format!("{list}{tag}."), none);
    }
    message
        .replace(&format!("{tag}, "), "")
        .replace(&format!(", {tag}"), "")
        // Lists written inside one pair of backticks: `a, _miroir_shard, b`.
        .replace(&format!("{field}, "), "")
        .replace(&format!(", {field}"), "")
        .replace(&tag, "``")
}

/// A node's error body with the tag hidden from its message.
pub fn sanitized(body: &Bytes) -> Bytes {
    let mentions = |name: &str| body.windows(name.len()).any(|w| w == name.as_bytes());
    if !mentions(super::FIELD)
        && !mentions(super::order::FIELD)
        && !mentions(super::guard::STAND_IN)
        && !mentions(super::guard::ORDER_STAND_IN)
    {
        return body.clone();
    }
    let Ok(mut v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return body.clone();
    };
    sanitize_error(&mut v);
    Bytes::from(serde_json::to_vec(&v).unwrap_or_default())
}

/// Hides the tag in a node's error object (`{message, code, type, link}`) and names the
/// client's attribute where the node named its stand-in.
pub fn sanitize_error(error: &mut serde_json::Value) {
    if let Some(m) = error.get("message").and_then(serde_json::Value::as_str) {
        let message = super::guard::restore(&hide_tag_in_message(m));
        error["message"] = serde_json::Value::from(message);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn error_messages_lose_the_tag() {
        assert_eq!(
            crate::shard_tag::messages::hide_tag_in_message("Index `m`: Attribute `age` is not filterable. Available filterable attribute patterns are: `_miroir_shard`.\n2:5 age > 30"),
            "Index `m`: Attribute `age` is not filterable. This index does not have configured filterable attributes.\n2:5 age > 30"
        );
        assert_eq!(
            crate::shard_tag::messages::hide_tag_in_message(
                "Available filterable attribute patterns are: `_geo`, `_miroir_shard`, `color`."
            ),
            "Available filterable attribute patterns are: `_geo`, `color`."
        );
        assert_eq!(
            crate::shard_tag::messages::hide_tag_in_message(
                "Available filterable attributes patterns are: `_geo, _miroir_shard, brand`."
            ),
            "Available filterable attributes patterns are: `_geo, brand`."
        );
        assert_eq!(
            crate::shard_tag::messages::hide_tag_in_message("Index `vec`: Attribute `id` is not filterable and thus, cannot be used as distinct attribute. Available filterable attributes patterns are: `_miroir_shard`."),
            "Index `vec`: Attribute `id` is not filterable and thus, cannot be used as distinct attribute. This index does not have configured filterable attributes."
        );
        assert_eq!(
            crate::shard_tag::messages::hide_tag_in_message(
                "Attribute `title` is not sortable. Available sortable attributes are: `_miroir_order`."
            ),
            "Attribute `title` is not sortable. This index does not have configured sortable attributes."
        );
        assert_eq!(
            crate::shard_tag::messages::hide_tag_in_message(
                "Attribute `title` is not sortable. Available sortable attributes are: `_miroir_order, price`."
            ),
            "Attribute `title` is not sortable. Available sortable attributes are: `price`."
        );
    }
}
