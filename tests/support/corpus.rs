//! A deterministic product catalogue for differential tests: text with typos to find,
//! numbers, strings, arrays, geo points and enough documents to page deep.

use serde_json::{json, Value};

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

pub const ADJECTIVES: &[&str] = &[
    "red", "blue", "green", "black", "white", "vintage", "modern", "classic", "wireless",
    "portable", "leather", "wooden", "smart", "compact", "deluxe",
];
pub const NOUNS: &[&str] = &[
    "shoe", "jacket", "phone", "lamp", "chair", "table", "speaker", "watch", "backpack", "camera",
    "guitar", "bicycle", "kettle", "blender", "sofa",
];
pub const BRANDS: &[&str] = &[
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Stark",
    "Wayne",
    "Wonka",
    "Tyrell",
    "Soylent",
    "Cyberdyne",
    "Aperture",
    "Zénith",
    "Öko",
    "brandless",
];
pub const CATEGORIES: &[&str] = &[
    "Clothing",
    "Electronics",
    "Home",
    "Sports",
    "Music",
    "Kitchen",
    "Outdoor",
];
pub const WORDS: &[&str] = &[
    "durable",
    "lightweight",
    "premium",
    "ergonomic",
    "handmade",
    "recycled",
    "waterproof",
    "sustainable",
    "elegant",
    "affordable",
    "powerful",
    "quiet",
];

pub fn product(rng: &mut Rng, id: u64) -> Value {
    let adjective = rng.pick(ADJECTIVES);
    let noun = rng.pick(NOUNS);
    let brand = rng.pick(BRANDS);
    let words: Vec<&str> = (0..4 + rng.below(8)).map(|_| rng.pick(WORDS)).collect();
    let tags: Vec<&str> = (0..rng.below(4)).map(|_| rng.pick(ADJECTIVES)).collect();
    let mut doc = json!({
        "id": id,
        "title": format!("{adjective} {noun}"),
        "brand": brand,
        "category": rng.pick(CATEGORIES),
        "description": format!("A {} {noun} by {brand}: {}.", words[0], words.join(" ")),
        "price": (rng.below(100_000) as f64) / 100.0,
        "rating": rng.below(6),
        "year": 1990 + rng.below(35),
        "popularity": rng.below(1000),
        "tags": tags,
        "_geo": {"lat": 40.0 + (rng.below(2000) as f64) / 100.0, "lng": -5.0 + (rng.below(2000) as f64) / 100.0},
    });
    // Some documents lack fields, so sorts meet missing values.
    if rng.below(10) == 0 {
        doc.as_object_mut().unwrap().remove("year");
    }
    doc
}

pub fn products(n: u64) -> Vec<Value> {
    let mut rng = Rng::new(0x6d69726f);
    (0..n).map(|id| product(&mut rng, id)).collect()
}
