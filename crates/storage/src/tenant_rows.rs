//! The `tenants` table: tenants added with `connectzero tenant add`
//! (`connectzero::tenants`). A row holds the tenant's configuration as JSON
//! without any secret; its secrets are in `secrets`, sealed.

use super::Storage;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// One stored tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TenantRow {
    /// Tenant id.
    pub id: String,
    /// Its configuration as JSON, secrets left empty.
    pub config: String,
    /// When it was added, ms since the epoch.
    pub created_at_ms: i64,
    /// When it last changed, ms since the epoch.
    pub updated_at_ms: i64,
}

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TenantRow> {
    Ok(TenantRow {
        id: r.get(0)?,
        config: r.get(1)?,
        created_at_ms: r.get(2)?,
        updated_at_ms: r.get(3)?,
    })
}

impl Storage {
    /// Add a tenant; `false` (nothing written) when the id exists.
    pub fn tenant_insert(&self, id: &str, config: &str, now_ms: i64) -> rusqlite::Result<bool> {
        let added = self.lock()?.execute(
            "INSERT INTO tenants (id, config, created_at_ms, updated_at_ms) VALUES (?1, ?2, ?3, ?3)
             ON CONFLICT (id) DO NOTHING",
            params![id, config, now_ms],
        )?;
        Ok(added == 1)
    }

    /// Replace a tenant's configuration; `false` when there is no such tenant.
    pub fn tenant_update(&self, id: &str, config: &str, now_ms: i64) -> rusqlite::Result<bool> {
        let changed = self.lock()?.execute(
            "UPDATE tenants SET config = ?2, updated_at_ms = ?3 WHERE id = ?1",
            params![id, config, now_ms],
        )?;
        Ok(changed == 1)
    }

    /// One stored tenant.
    pub fn tenant_get(&self, id: &str) -> rusqlite::Result<Option<TenantRow>> {
        self.lock()?
            .query_row(
                "SELECT id, config, created_at_ms, updated_at_ms FROM tenants WHERE id = ?1",
                params![id],
                row,
            )
            .optional()
    }

    /// Every stored tenant, by id.
    pub fn tenants_all(&self) -> rusqlite::Result<Vec<TenantRow>> {
        let conn = self.lock()?;
        let mut stmt = conn
            .prepare("SELECT id, config, created_at_ms, updated_at_ms FROM tenants ORDER BY id")?;
        let rows = stmt.query_map([], row)?;
        rows.collect()
    }

    /// Delete everything kept for tenant `id` in one transaction: its row,
    /// its secrets, its key-value namespace (cursor, ledger, queues), its
    /// call log, its authorisation mark and install states. Returns whether
    /// a tenant row existed.
    pub fn tenant_purge(&self, id: &str) -> rusqlite::Result<bool> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let existed = tx.execute("DELETE FROM tenants WHERE id = ?1", params![id])? == 1;
        for sql in [
            "DELETE FROM secrets WHERE tenant = ?1",
            "DELETE FROM kv WHERE namespace = ?1",
            "DELETE FROM calls WHERE tenant = ?1",
            "DELETE FROM tenant_auth WHERE tenant = ?1",
            "DELETE FROM oauth_states WHERE tenant = ?1",
        ] {
            tx.execute(sql, params![id])?;
        }
        tx.commit()?;
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn purging_a_tenant_leaves_the_others_alone() {
        let db = Storage::in_memory().unwrap();
        assert!(db.tenant_insert("a", "{}", 1).unwrap());
        assert!(!db.tenant_insert("a", "{\"x\":1}", 2).unwrap());
        assert!(db.tenant_insert("b", "{}", 1).unwrap());
        db.kv_set("a", "poll/cursor", b"1").unwrap();
        db.kv_set("b", "poll/cursor", b"2").unwrap();
        assert!(db.tenant_purge("a").unwrap());
        assert_eq!(db.tenant_get("a").unwrap(), None);
        assert_eq!(db.kv_get("a", "poll/cursor").unwrap(), None);
        assert_eq!(
            db.kv_get("b", "poll/cursor").unwrap().as_deref(),
            Some(&b"2"[..])
        );
        assert_eq!(db.tenants_all().unwrap().len(), 1);
        assert!(!db.tenant_purge("a").unwrap());
    }
}
