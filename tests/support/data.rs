//! The people documents of the tests: Meilisearch's own test set (`meili-test-set.json`,
//! beside the project in `../shared/data/`) when it is there, otherwise a generated set of
//! the same shape, so the suite runs on any machine.

use std::path::PathBuf;

use serde_json::{json, Value};

use super::corpus::Rng;

/// A path to a JSON array of people documents.
pub fn people_path() -> PathBuf {
    let shared = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/meili-test-set.json"
    ));
    if shared.is_file() {
        return shared;
    }
    let path = std::env::temp_dir().join(format!("miroir-people-{}.json", std::process::id()));
    if !path.is_file() {
        std::fs::write(&path, serde_json::to_vec(&generated()).unwrap()).unwrap();
    }
    path
}

/// The documents at [`people_path`].
pub fn people() -> Vec<u8> {
    std::fs::read(people_path()).unwrap()
}

fn generated() -> Vec<Value> {
    const FIRST: &[&str] = &[
        "Lucas", "Adeline", "Maddox", "Bernard", "Irene", "Patricia", "Olga", "Tamra", "Lamb",
        "Hess",
    ];
    const LAST: &[&str] = &[
        "Hess",
        "Flynn",
        "Johns",
        "Mcfarland",
        "Bennett",
        "Goff",
        "Nelson",
        "Reese",
    ];
    // One spelling per value: a node shows the spelling of its lowest internal id (README).
    const COLORS: &[&str] = &["green", "blue", "brown", "grey", "black"];
    const WORDS: &[&str] = &[
        "lorem", "ipsum", "mollit", "anim", "commodo", "magna", "veniam", "nulla", "tempor",
        "culpa",
    ];
    let mut rng = Rng::new(77);
    (0..77)
        .map(|id| {
            let about: Vec<&str> = (0..12).map(|_| rng.pick(WORDS)).collect();
            json!({
                "id": id,
                "isActive": rng.below(2) == 1,
                "age": 20 + rng.below(21),
                "color": rng.pick(COLORS),
                "name": format!("{} {}", rng.pick(FIRST), rng.pick(LAST)),
                "gender": if rng.below(2) == 0 { "male" } else { "female" },
                "email": format!("person{id}@example.com"),
                "address": format!("{} Losee Terrace, Blairstown, Georgia", rng.below(999)),
                "about": about.join(" "),
                "tags": [rng.pick(WORDS), rng.pick(WORDS)],
            })
        })
        .collect()
}
