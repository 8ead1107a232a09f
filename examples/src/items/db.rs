//! [`Db`]: the item store in SQLite (rusqlite), shared by several processes through one file.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::ApiError;

/// An item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    /// Its id.
    pub id: u64,
    /// Its name.
    pub name: String,
    /// Its price.
    pub price: f64,
}

/// The body of `POST /items` and `PUT /items/{id}`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewItem {
    /// Non-empty, at most 200 characters.
    pub name: String,
    /// Finite and not negative.
    pub price: f64,
}

impl NewItem {
    /// Checks the values.
    pub fn validate(&self) -> Result<(), ApiError> {
        let name = self.name.trim();
        if name.is_empty() || name.chars().count() > 200 {
            return Err(ApiError::Invalid(
                "`name` must have 1 to 200 characters".into(),
            ));
        }
        if !self.price.is_finite() || self.price < 0.0 {
            return Err(ApiError::Invalid("`price` must be a number >= 0".into()));
        }
        Ok(())
    }
}

/// A connection to the store. Cheap to clone; queries run on the blocking pool.
#[derive(Clone)]
pub struct Db {
    conn: Arc<Mutex<Connection>>,
}

const SEED: [(&str, f64); 3] = [("Laptop", 999.99), ("Mouse", 25.5), ("Keyboard", 75.0)];

impl Db {
    /// Opens `url` (`sqlite:///path/to/file.db`, `sqlite://relative.db`, a plain path, or
    /// `sqlite::memory:`), or a fresh in-memory database when `None`. Creates the table and
    /// seeds items 1 to 3 when it is empty. Files use WAL and a busy timeout, so several
    /// processes can share one.
    pub fn open(url: Option<&str>) -> Result<Db, String> {
        let conn = match url.map(parse_url).transpose()? {
            None | Some(None) => Connection::open_in_memory(),
            Some(Some(path)) => Connection::open(path),
        }
        .map_err(|e| format!("cannot open the database: {e}"))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| e.to_string())?;
        // In memory this stays "memory"; on a file it switches to WAL.
        conn.query_row("PRAGMA journal_mode=WAL", [], |_| Ok(()))
            .map_err(|e| e.to_string())?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS items (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                name TEXT NOT NULL,
                price REAL NOT NULL
            );
            BEGIN IMMEDIATE;",
        )
        .map_err(|e| e.to_string())?;
        let count: i64 = conn
            .query_row("SELECT COUNT(*) FROM items", [], |r| r.get(0))
            .map_err(|e| e.to_string())?;
        if count == 0 {
            for (name, price) in SEED {
                conn.execute(
                    "INSERT INTO items (name, price) VALUES (?1, ?2)",
                    params![name, price],
                )
                .map_err(|e| e.to_string())?;
            }
        }
        conn.execute_batch("COMMIT").map_err(|e| e.to_string())?;
        Ok(Db {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    async fn with<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn)
        })
        .await
        .map_err(|e| ApiError::Db(e.to_string()))?
        .map_err(|e| ApiError::Db(e.to_string()))
    }

    /// Every item, by id.
    pub async fn list(&self) -> Result<Vec<Item>, ApiError> {
        self.with(|c| {
            let mut stmt = c.prepare_cached("SELECT id, name, price FROM items ORDER BY id")?;
            let rows = stmt.query_map([], row_to_item)?;
            rows.collect()
        })
        .await
    }

    /// One item.
    pub async fn get(&self, id: u64) -> Result<Option<Item>, ApiError> {
        self.with(move |c| {
            c.query_row(
                "SELECT id, name, price FROM items WHERE id = ?1",
                params![id as i64],
                row_to_item,
            )
            .optional()
        })
        .await
    }

    /// Inserts an item and returns it.
    pub async fn create(&self, new: NewItem) -> Result<Item, ApiError> {
        self.with(move |c| {
            c.execute(
                "INSERT INTO items (name, price) VALUES (?1, ?2)",
                params![new.name.trim(), new.price],
            )?;
            Ok(Item {
                id: c.last_insert_rowid() as u64,
                name: new.name.trim().to_owned(),
                price: new.price,
            })
        })
        .await
    }

    /// Replaces an item; `None` if there is none with this id.
    pub async fn update(&self, id: u64, new: NewItem) -> Result<Option<Item>, ApiError> {
        self.with(move |c| {
            let n = c.execute(
                "UPDATE items SET name = ?1, price = ?2 WHERE id = ?3",
                params![new.name.trim(), new.price, id as i64],
            )?;
            Ok((n == 1).then(|| Item {
                id,
                name: new.name.trim().to_owned(),
                price: new.price,
            }))
        })
        .await
    }

    /// Deletes an item; whether there was one.
    pub async fn delete(&self, id: u64) -> Result<bool, ApiError> {
        self.with(move |c| {
            Ok(c.execute("DELETE FROM items WHERE id = ?1", params![id as i64])? == 1)
        })
        .await
    }
}

fn row_to_item(row: &rusqlite::Row<'_>) -> rusqlite::Result<Item> {
    Ok(Item {
        id: row.get::<_, i64>(0)? as u64,
        name: row.get(1)?,
        price: row.get(2)?,
    })
}

/// The file path of a `DATABASE_URL`; `None` for an in-memory database.
fn parse_url(url: &str) -> Result<Option<String>, String> {
    let url = url.trim();
    if url.is_empty() || url == "sqlite::memory:" || url == ":memory:" {
        return Ok(None);
    }
    if let Some(rest) = url.strip_prefix("sqlite://") {
        if rest.is_empty() {
            return Err(format!("DATABASE_URL {url:?} names no file"));
        }
        return Ok(Some(rest.to_owned()));
    }
    if url.contains("://") {
        return Err(format!(
            "DATABASE_URL {url:?} is not SQLite; expected sqlite:///path/to/items.db"
        ));
    }
    Ok(Some(url.strip_prefix("sqlite:").unwrap_or(url).to_owned()))
}

#[cfg(test)]
mod tests {
    use super::parse_url;

    #[test]
    fn urls() {
        assert_eq!(
            parse_url("sqlite:///tmp/items.db").unwrap().as_deref(),
            Some("/tmp/items.db")
        );
        assert_eq!(
            parse_url("sqlite://items.db").unwrap().as_deref(),
            Some("items.db")
        );
        assert_eq!(parse_url("sqlite::memory:").unwrap(), None);
        assert!(parse_url("postgres://x").is_err());
    }
}
