//! The insertion order: a second reserved field every stored document carries, so a browse
//! without `sort` lists documents in the order they were first added, as one node does.
//!
//! A node lists documents by its internal id, handed out in insertion order; but each node
//! numbers only its own documents, so nothing in a node's answer says how to interleave two
//! nodes' lists. The gateway stamps each document at its first insertion with a number that
//! grows with time (a later write keeps the number the document already has), and the browse
//! merge interleaves the nodes' lists by it.
//!
//! Like the shard tag, the value is written only with separator characters, so it yields no
//! word for a query to match and leaves ranking scores unchanged. It is sortable on every
//! node (a fixed-width string whose digits are in byte order), so each node lists its part by
//! insertion order whatever its own internal ids say (documents moved by a rebalance get new
//! ones there), and the merge interleaves those lists.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The reserved field name.
pub const FIELD: &str = "_miroir_order";

/// Characters of a value: fixed width, so a placeholder can be overwritten in place.
pub const WIDTH: usize = 16;

/// Base-15 digits, all ASCII separators (the shard tag's, less `§`), in byte order: values
/// sort as strings the way their numbers do.
const DIGITS: [u8; 15] = *b"!%()*,./:;?[]{}";

/// What the split writes before the order is known (the value 0).
pub const PLACEHOLDER: [u8; WIDTH] = [DIGITS[0]; WIDTH];

/// The value of `n`, most significant digit first (values above 15^16 - 1 saturate).
pub fn encode(mut n: u64) -> [u8; WIDTH] {
    let mut out = PLACEHOLDER;
    for slot in out.iter_mut().rev() {
        *slot = DIGITS[(n % 15) as usize];
        n /= 15;
    }
    if n > 0 {
        return [DIGITS[14]; WIDTH];
    }
    out
}

/// The number a value names, if it is one.
pub fn decode(value: &[u8]) -> Option<u64> {
    if value.len() != WIDTH {
        return None;
    }
    value.iter().try_fold(0u64, |acc, c| {
        let d = DIGITS.iter().position(|x| x == c)? as u64;
        acc.checked_mul(15)?.checked_add(d)
    })
}

/// Hands out order numbers: ranges that grow with the wall clock (microseconds, 1 024 numbers
/// each), so numbers taken by several gateways, or by one before and after a restart,
/// interleave by time; within one gateway they never repeat or go back.
#[derive(Debug, Default)]
pub struct OrderClock {
    next: AtomicU64,
}

impl OrderClock {
    /// The first of `n` consecutive numbers.
    pub fn take(&self, n: u64) -> u64 {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0)
            << 10;
        let mut base = 0;
        let _ = self
            .next
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |next| {
                base = next.max(now);
                Some(base + n)
            });
        base
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_round_trip_in_fixed_width_and_hold_no_word_character() {
        for n in [
            0,
            1,
            14,
            15,
            1 << 40,
            OrderClock::default().take(1),
            15u64.pow(16) - 1,
        ] {
            let v = encode(n);
            assert_eq!(decode(&v), Some(n));
            assert!(v.iter().all(|c| !c.is_ascii_alphanumeric() && *c != b'"'));
        }
        assert_eq!(encode(0), PLACEHOLDER);
        assert_eq!(decode(&encode(u64::MAX)), Some(15u64.pow(16) - 1));
        assert_eq!(decode(b"!!!!"), None);
        assert_eq!(decode(b"!!!!!!!!!!!!!!!a"), None);
    }

    #[test]
    fn values_sort_as_their_numbers() {
        let mut numbers = vec![0, 1, 14, 15, 16, 224, 225, 1 << 40, (1 << 40) + 1, u64::MAX];
        let mut values: Vec<[u8; WIDTH]> = numbers.iter().map(|n| encode(*n)).collect();
        values.sort();
        numbers.sort();
        let decoded: Vec<u64> = values.iter().map(|v| decode(v).unwrap()).collect();
        assert_eq!(decoded[..9], numbers[..9]);
    }

    #[test]
    fn numbers_only_grow() {
        let clock = OrderClock::default();
        let a = clock.take(5000);
        let b = clock.take(1);
        assert!(b >= a + 5000);
        assert!(clock.take(1) > b);
    }
}
