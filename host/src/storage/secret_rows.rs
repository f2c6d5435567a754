//! Tables for secrets at rest, tenants' authorisation status and OAuth
//! install states. Values arrive here already sealed (`crate::secrets`);
//! this module never sees a secret in clear.

use super::Storage;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// Created with the other tables.
pub(super) const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS secrets (
        tenant     TEXT NOT NULL,
        name       TEXT NOT NULL,
        key_id     TEXT NOT NULL,
        nonce      BLOB NOT NULL,
        ciphertext BLOB NOT NULL,
        PRIMARY KEY (tenant, name)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS tenant_auth (
        tenant   TEXT PRIMARY KEY,
        reason   TEXT NOT NULL,
        since_ms INTEGER NOT NULL
    );
    CREATE TABLE IF NOT EXISTS oauth_states (
        state_hash    TEXT PRIMARY KEY,
        tenant        TEXT NOT NULL,
        redirect_uri  TEXT NOT NULL,
        expires_at_ms INTEGER NOT NULL,
        used_at_ms    INTEGER
    );";

/// Install states are kept this long after they expire, so a late reuse
/// is still reported as a reuse rather than as unknown.
const STATE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Install states kept per tenant: the install route needs no login, so
/// this bounds what anonymous requests can add to the database.
const STATES_PER_TENANT: i64 = 100;

/// One sealed secret as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealedSecret {
    /// Tenant id.
    pub tenant: String,
    /// Secret name, e.g. `crm.refresh_token`.
    pub name: String,
    /// Fingerprint of the key that sealed it.
    pub key_id: String,
    /// AES-GCM nonce (96 bits).
    pub nonce: Vec<u8>,
    /// Ciphertext with its authentication tag.
    pub ciphertext: Vec<u8>,
}

/// Whether a tenant's CRM grant works.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TenantAuth {
    /// Nothing known to be wrong.
    Authorised,
    /// HighLevel refused the grant (or there never was one): calls wait
    /// until someone installs the app again.
    NeedsReauthorisation {
        /// Why, and what to do.
        reason: String,
        /// Since when, ms since the epoch.
        since_ms: i64,
    },
}

/// What presenting an install `state` found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StateClaim {
    /// No such state was issued (forged, or older than the retention).
    Unknown,
    /// Issued, but already presented once.
    Used,
    /// Issued and now consumed.
    Claimed {
        /// The tenant it was issued for.
        tenant: String,
        /// The redirect URI the authorize request named.
        redirect_uri: String,
        /// When it expires(d), ms since the epoch.
        expires_at_ms: i64,
    },
}

fn sealed_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<SealedSecret> {
    Ok(SealedSecret {
        tenant: r.get(0)?,
        name: r.get(1)?,
        key_id: r.get(2)?,
        nonce: r.get(3)?,
        ciphertext: r.get(4)?,
    })
}

impl Storage {
    /// The sealed secret `name` of `tenant`, if any.
    pub fn secret_get(&self, tenant: &str, name: &str) -> rusqlite::Result<Option<SealedSecret>> {
        self.lock()
            .query_row(
                "SELECT tenant, name, key_id, nonce, ciphertext FROM secrets WHERE tenant = ?1 AND name = ?2",
                params![tenant, name],
                sealed_from_row,
            )
            .optional()
    }

    /// Write `rows` in one transaction; with `authorised`, also clear the
    /// "needs re-authorisation" mark of every tenant written.
    pub fn secrets_put(&self, rows: &[SealedSecret], authorised: bool) -> rusqlite::Result<()> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        for row in rows {
            tx.execute(
                "INSERT INTO secrets (tenant, name, key_id, nonce, ciphertext) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, name) DO UPDATE SET
                     key_id = excluded.key_id, nonce = excluded.nonce, ciphertext = excluded.ciphertext",
                params![row.tenant, row.name, row.key_id, row.nonce, row.ciphertext],
            )?;
            if authorised {
                tx.execute(
                    "DELETE FROM tenant_auth WHERE tenant = ?1",
                    params![row.tenant],
                )?;
            }
        }
        tx.commit()
    }

    /// Remove the secret `name` of `tenant` (no error when absent).
    pub fn secret_delete(&self, tenant: &str, name: &str) -> rusqlite::Result<()> {
        self.lock().execute(
            "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
        )?;
        Ok(())
    }

    /// Every sealed secret, by tenant and name.
    pub fn secrets_all(&self) -> rusqlite::Result<Vec<SealedSecret>> {
        let conn = self.lock();
        let mut stmt = conn.prepare(
            "SELECT tenant, name, key_id, nonce, ciphertext FROM secrets ORDER BY tenant, name",
        )?;
        let rows = stmt.query_map([], sealed_from_row)?;
        rows.collect()
    }

    /// The fingerprints of the keys the stored secrets are sealed with.
    pub fn secret_key_ids(&self) -> rusqlite::Result<Vec<String>> {
        let conn = self.lock();
        let mut stmt = conn.prepare("SELECT DISTINCT key_id FROM secrets ORDER BY key_id")?;
        let rows = stmt.query_map([], |r| r.get(0))?;
        rows.collect()
    }

    /// Replace every secret by `reseal(secret)` in one transaction (key
    /// rotation): either all are rewritten or none is. Returns how many.
    pub fn secrets_rewrite<E: From<rusqlite::Error>>(
        &self,
        mut reseal: impl FnMut(&SealedSecret) -> Result<SealedSecret, E>,
    ) -> Result<usize, E> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows: Vec<SealedSecret> = {
            let mut stmt = tx.prepare(
                "SELECT tenant, name, key_id, nonce, ciphertext FROM secrets ORDER BY tenant, name",
            )?;
            let rows = stmt.query_map([], sealed_from_row)?;
            rows.collect::<rusqlite::Result<_>>()?
        };
        for row in &rows {
            let new = reseal(row)?;
            tx.execute(
                "UPDATE secrets SET key_id = ?3, nonce = ?4, ciphertext = ?5 WHERE tenant = ?1 AND name = ?2",
                params![row.tenant, row.name, new.key_id, new.nonce, new.ciphertext],
            )?;
        }
        tx.commit()?;
        Ok(rows.len())
    }

    /// Whether `tenant`'s CRM grant works, as far as this host knows.
    pub fn tenant_auth_status(&self, tenant: &str) -> rusqlite::Result<TenantAuth> {
        let row: Option<(String, i64)> = self
            .lock()
            .query_row(
                "SELECT reason, since_ms FROM tenant_auth WHERE tenant = ?1",
                params![tenant],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        Ok(match row {
            Some((reason, since_ms)) => TenantAuth::NeedsReauthorisation { reason, since_ms },
            None => TenantAuth::Authorised,
        })
    }

    /// Mark `tenant` as needing re-authorisation because of `reason`
    /// (keeps the first `since_ms` while it stays marked).
    pub fn set_needs_reauthorisation(
        &self,
        tenant: &str,
        reason: &str,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        self.lock().execute(
            "INSERT INTO tenant_auth (tenant, reason, since_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant) DO UPDATE SET reason = excluded.reason",
            params![tenant, reason, now_ms],
        )?;
        Ok(())
    }

    /// Remember an issued install state (by its hash), dropping states
    /// expired for longer than a day and all but the tenant's newest
    /// [`STATES_PER_TENANT`].
    pub fn oauth_state_insert(
        &self,
        state_hash: &str,
        tenant: &str,
        redirect_uri: &str,
        expires_at_ms: i64,
        now_ms: i64,
    ) -> rusqlite::Result<()> {
        let conn = self.lock();
        conn.execute(
            "DELETE FROM oauth_states WHERE expires_at_ms < ?1",
            params![now_ms - STATE_RETENTION_MS],
        )?;
        conn.execute(
            "INSERT INTO oauth_states (state_hash, tenant, redirect_uri, expires_at_ms) VALUES (?1, ?2, ?3, ?4)",
            params![state_hash, tenant, redirect_uri, expires_at_ms],
        )?;
        conn.execute(
            "DELETE FROM oauth_states WHERE tenant = ?1 AND state_hash NOT IN
                 (SELECT state_hash FROM oauth_states WHERE tenant = ?1
                  ORDER BY expires_at_ms DESC, rowid DESC LIMIT ?2)",
            params![tenant, STATES_PER_TENANT],
        )?;
        Ok(())
    }

    /// Consume an install state: the first presentation claims it, every
    /// later one finds it used (atomic across processes).
    pub fn oauth_state_claim(&self, state_hash: &str, now_ms: i64) -> rusqlite::Result<StateClaim> {
        let mut conn = self.lock();
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let row: Option<(String, String, i64, Option<i64>)> = tx
            .query_row(
                "SELECT tenant, redirect_uri, expires_at_ms, used_at_ms FROM oauth_states WHERE state_hash = ?1",
                params![state_hash],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        let claim = match row {
            None => StateClaim::Unknown,
            Some((_, _, _, Some(_))) => StateClaim::Used,
            Some((tenant, redirect_uri, expires_at_ms, None)) => {
                tx.execute(
                    "UPDATE oauth_states SET used_at_ms = ?2 WHERE state_hash = ?1",
                    params![state_hash, now_ms],
                )?;
                StateClaim::Claimed {
                    tenant,
                    redirect_uri,
                    expires_at_ms,
                }
            }
        };
        tx.commit()?;
        Ok(claim)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_is_claimed_once() {
        let db = Storage::in_memory().unwrap();
        db.oauth_state_insert("h", "t1", "http://x/cb", 2_000, 1_000)
            .unwrap();
        assert_eq!(
            db.oauth_state_claim("h", 1_500).unwrap(),
            StateClaim::Claimed {
                tenant: "t1".into(),
                redirect_uri: "http://x/cb".into(),
                expires_at_ms: 2_000
            }
        );
        assert_eq!(db.oauth_state_claim("h", 1_600).unwrap(), StateClaim::Used);
        for i in 0..STATES_PER_TENANT {
            db.oauth_state_insert(&format!("s{i}"), "t1", "u", 3_000 + i, 1_000)
                .unwrap();
        }
        // The oldest gives way to the newest.
        assert_eq!(
            db.oauth_state_claim("h", 1_700).unwrap(),
            StateClaim::Unknown
        );
        assert_eq!(
            db.oauth_state_claim("g", 1_600).unwrap(),
            StateClaim::Unknown
        );
    }

    #[test]
    fn authorising_clears_the_reauthorisation_mark() {
        let db = Storage::in_memory().unwrap();
        assert_eq!(db.tenant_auth_status("t").unwrap(), TenantAuth::Authorised);
        db.set_needs_reauthorisation("t", "revoked", 5).unwrap();
        db.set_needs_reauthorisation("t", "still revoked", 9)
            .unwrap();
        assert_eq!(
            db.tenant_auth_status("t").unwrap(),
            TenantAuth::NeedsReauthorisation {
                reason: "still revoked".into(),
                since_ms: 5
            }
        );
        let row = SealedSecret {
            tenant: "t".into(),
            name: "n".into(),
            key_id: "k".into(),
            nonce: vec![0; 12],
            ciphertext: vec![1],
        };
        db.secrets_put(std::slice::from_ref(&row), false).unwrap();
        assert_ne!(db.tenant_auth_status("t").unwrap(), TenantAuth::Authorised);
        db.secrets_put(&[row], true).unwrap();
        assert_eq!(db.tenant_auth_status("t").unwrap(), TenantAuth::Authorised);
    }
}
