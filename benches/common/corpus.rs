//! A deterministic corpus of realistic documents, modelled on Meilisearch's test set
//! (people with nested addresses, tags, long "about" texts, unicode names), for benchmarks.

use serde_json::{json, Value};

/// A small, fast, deterministic generator (xorshift), so runs compare.
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

const WORDS: &[&str] = &[
    "mollit",
    "exercitation",
    "consequat",
    "fugiat",
    "magna",
    "aliquip",
    "velit",
    "commodo",
    "eiusmod",
    "proident",
    "consectetur",
    "adipisicing",
    "laboris",
    "veniam",
    "incididunt",
    "deserunt",
    "tempor",
    "officia",
    "labore",
    "nulla",
    "search",
    "engine",
    "fast",
    "relevant",
    "typo",
    "tolerant",
    "résumé",
    "naïve",
    "café",
    "東京",
    "検索",
    "Straße",
    "Ελλάδα",
    "Москва",
    "😀",
    "données",
    "über",
    "niño",
];
const FIRST: &[&str] = &[
    "Lucas", "Élodie", "Zoë", "Søren", "Ana", "Kenji", "Aylin", "Mateo", "Iñès", "Björk",
];
const LAST: &[&str] = &[
    "Hess", "Müller", "García", "Øster", "Nguyễn", "Kowalski", "O'Brien", "Ďurica",
];
const COLORS: &[&str] = &["Green", "Blue", "Brown", "red", "yellow"];
const CITIES: &[&str] = &[
    "Blairstown",
    "Zürich",
    "São Paulo",
    "Kraków",
    "Reykjavík",
    "Nairobi",
];

fn sentence(rng: &mut Rng, words: usize) -> String {
    let mut s = String::new();
    for i in 0..words {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(rng.pick(WORDS));
    }
    s.push('.');
    s
}

/// One document with id `id`.
pub fn document(rng: &mut Rng, id: u64) -> Value {
    let about: Vec<String> = (0..3 + rng.below(6))
        .map(|_| {
            let words = 8 + rng.below(10) as usize;
            sentence(rng, words)
        })
        .collect();
    let tags: Vec<&str> = (0..rng.below(7)).map(|_| rng.pick(WORDS)).collect();
    json!({
        "id": id,
        "isActive": rng.below(2) == 1,
        "balance": format!("${},{:03}.{:02}", rng.below(4), rng.below(1000), rng.below(100)),
        "age": 18 + rng.below(60),
        "color": rng.pick(COLORS),
        "name": format!("{} {}", rng.pick(FIRST), rng.pick(LAST)),
        "email": format!("user{id}@example.com"),
        "address": {
            "street": format!("{} {} Terrace", rng.below(999), rng.pick(LAST)),
            "city": rng.pick(CITIES),
            "geo": {"lat": (rng.below(180_000) as f64 / 1000.0) - 90.0, "lng": (rng.below(360_000) as f64 / 1000.0) - 180.0},
        },
        "about": about.join(" ") + "\r\n",
        "registered": format!("20{:02}-{:02}-{:02}T09:{:02}:{:02} -02:00", 10 + rng.below(15), 1 + rng.below(12), 1 + rng.below(28), rng.below(60), rng.below(60)),
        "tags": tags,
        "friends": (0..rng.below(3)).map(|i| json!({"id": i, "name": rng.pick(FIRST)})).collect::<Vec<_>>(),
    })
}

/// Documents until their JSON reaches `bytes`.
pub fn documents(bytes: usize) -> Vec<Value> {
    let mut rng = Rng::new(0x6d69726f6972);
    let mut docs = Vec::new();
    let mut size = 0;
    while size < bytes {
        let d = document(&mut rng, docs.len() as u64);
        size += d.to_string().len() + 1;
        docs.push(d);
    }
    docs
}

/// The same documents as CSV (nested fields flattened to text; `age` typed as a number).
pub fn csv(docs: &[Value]) -> Vec<u8> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "id",
        "name",
        "age:number",
        "color",
        "email",
        "city",
        "about",
        "tags",
    ])
    .unwrap();
    for d in docs {
        w.write_record([
            d["id"].to_string(),
            d["name"].as_str().unwrap().to_string(),
            d["age"].to_string(),
            d["color"].as_str().unwrap().to_string(),
            d["email"].as_str().unwrap().to_string(),
            d["address"]["city"].as_str().unwrap().to_string(),
            d["about"].as_str().unwrap().to_string(),
            d["tags"].to_string(),
        ])
        .unwrap();
    }
    w.into_inner().unwrap()
}
