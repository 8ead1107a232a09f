//! Values shared by the benchmarks: a record of about 200 encoded bytes, like a small API item.

use serde::{Deserialize, Serialize};

/// A small API record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Identifier.
    pub id: u64,
    /// Display name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Labels.
    pub tags: Vec<String>,
    /// Price in cents.
    pub price_cents: u64,
    /// Units in stock.
    pub stock: u32,
}

/// The item with id `id` (about 170 bytes in bincode).
pub fn make_item(id: u64) -> Item {
    Item {
        id,
        name: format!("item number {id}"),
        description: "a fairly ordinary item, described at some length so that the encoded \
                      value is about two hundred bytes long, like a small API record"
            .to_owned(),
        tags: vec!["red".into(), "large".into(), "sale".into(), "new".into()],
        price_cents: 12_999,
        stock: 42,
    }
}
