//! The status page's sign-in sessions, kept on the server so they expire
//! and so signing out ends them (a copied cookie stops working). Only a
//! hash of each session id is stored.

use super::Storage;
use rusqlite::{OptionalExtension, params};

impl Storage {
    /// Start a session (by its id's hash) valid until `expires_at_ms`,
    /// dropping the expired ones.
    pub fn session_start(
        &self,
        id_hash: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        let conn = self.lock()?;
        conn.execute(
            "DELETE FROM web_sessions WHERE expires_at_ms <= ?1",
            params![now_ms],
        )?;
        conn.execute(
            "INSERT INTO web_sessions (id_hash, expires_at_ms) VALUES (?1, ?2)",
            params![id_hash, expires_at_ms],
        )?;
        Ok(())
    }

    /// Whether the session is open at `now_ms`.
    pub fn session_open(&self, id_hash: &str, now_ms: i64) -> rusqlite::Result<bool> {
        let expires: Option<i64> = self
            .lock()?
            .query_row(
                "SELECT expires_at_ms FROM web_sessions WHERE id_hash = ?1",
                params![id_hash],
                |r| r.get(0),
            )
            .optional()?;
        Ok(expires.is_some_and(|at| at > now_ms))
    }

    /// End the session.
    pub fn session_end(&self, id_hash: &str) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "DELETE FROM web_sessions WHERE id_hash = ?1",
            params![id_hash],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_when_it_expires_or_is_ended() {
        let storage = Storage::in_memory().unwrap();
        storage.session_start("a", 2_000, 1_000).unwrap();
        storage.session_start("b", 2_000, 1_000).unwrap();
        assert!(storage.session_open("a", 1_999).unwrap());
        assert!(!storage.session_open("a", 2_000).unwrap(), "expired");
        assert!(!storage.session_open("nobody", 1_000).unwrap());
        storage.session_end("b").unwrap();
        assert!(!storage.session_open("b", 1_500).unwrap(), "signed out");
        // Starting a session clears the expired ones.
        storage.session_start("c", 9_000, 3_000).unwrap();
        assert!(!storage.session_open("a", 1_500).unwrap());
    }
}
