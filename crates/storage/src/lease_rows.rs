//! Leases shared by every process on the database: who may refresh a
//! tenant's HighLevel grant right now. HighLevel rotates the refresh token
//! on each use, so two hosts refreshing at once would spend it twice, and
//! the loser would read HighLevel's refusal as a revoked grant.

use super::Storage;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

impl Storage {
    /// Take `tenant`'s refresh lease for `holder` until `until_ms`, unless
    /// another holder has it past `now_ms`. Whether it was taken.
    pub fn refresh_lease_take(
        &self,
        tenant: &str,
        holder: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> rusqlite::Result<bool> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let held: Option<(String, i64)> = tx
            .query_row(
                "SELECT holder, until_ms FROM refresh_leases WHERE tenant = ?1",
                params![tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if held.is_some_and(|(other, until)| other != holder && until > now_ms) {
            return Ok(false);
        }
        tx.execute(
            "INSERT INTO refresh_leases (tenant, holder, until_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms",
            params![tenant, holder, until_ms],
        )?;
        tx.commit()?;
        Ok(true)
    }

    /// Give `tenant`'s refresh lease back, if `holder` still has it.
    pub fn refresh_lease_release(&self, tenant: &str, holder: &str) -> rusqlite::Result<()> {
        self.lock()?.execute(
            "DELETE FROM refresh_leases WHERE tenant = ?1 AND holder = ?2",
            params![tenant, holder],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_holder_at_a_time_until_released_or_expired() {
        let db = Storage::in_memory().unwrap();
        assert!(db.refresh_lease_take("t", "a", 0, 100).unwrap());
        assert!(!db.refresh_lease_take("t", "b", 50, 150).unwrap());
        assert!(
            db.refresh_lease_take("u", "b", 50, 150).unwrap(),
            "per tenant"
        );
        assert!(db.refresh_lease_take("t", "a", 60, 160).unwrap(), "renewed");
        db.refresh_lease_release("t", "b").unwrap();
        assert!(
            !db.refresh_lease_take("t", "b", 70, 170).unwrap(),
            "not b's"
        );
        db.refresh_lease_release("t", "a").unwrap();
        assert!(db.refresh_lease_take("t", "b", 70, 170).unwrap());
        assert!(
            db.refresh_lease_take("t", "c", 170, 270).unwrap(),
            "expired"
        );
    }
}
