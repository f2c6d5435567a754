//! Tables for secrets at rest, tenants' authorisation status and OAuth
//! install states. Values arrive here already sealed (`connectzero::secrets`);
//! this module never sees a secret in clear.

use super::Storage;
use rusqlite::{OptionalExtension, TransactionBehavior, params};

/// Install states are kept this long after they expire, so a late reuse
/// is still reported as a reuse rather than as unknown.
const STATE_RETENTION_MS: i64 = 24 * 60 * 60 * 1000;

/// Install states kept per tenant: the install route needs no login, so
/// this bounds what anonymous requests can add to the database.
const STATES_PER_TENANT: i64 = 100;

/// Pending (unused, unexpired) install states a tenant may have
/// (`guest_support::installs`, the Spin app's limit too).
pub const PENDING_PER_TENANT: i64 = guest_support::installs::PENDING_PER_TENANT as i64;

/// Pending install states one client address may hold per tenant; its
/// next start replaces its own oldest (`guest_support::installs`).
pub const PENDING_PER_CLIENT: i64 = guest_support::installs::PENDING_PER_CLIENT as i64;

/// An install state to remember.
#[derive(Clone, Copy, Debug)]
pub struct StateIssue<'a> {
    /// SHA-256 of the state, never the state.
    pub state_hash: &'a str,
    /// The tenant installing.
    pub tenant: &'a str,
    /// The address that started it ("" when unknown).
    pub client: &'a str,
    /// The callback URL the authorize request names.
    pub redirect_uri: &'a str,
    /// When it stops being accepted, ms since the epoch.
    pub expires_at_ms: i64,
}

/// What remembering a state found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StateAdmission {
    /// Remembered: the link may be handed out.
    Issued,
    /// The tenant has too many pending installs; the first expires in this
    /// many ms.
    Busy {
        /// Until the first pending state expires.
        retry_in_ms: i64,
    },
}

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
        self.lock()?
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
        let mut conn = self.lock()?;
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
        self.lock()?.execute(
            "DELETE FROM secrets WHERE tenant = ?1 AND name = ?2",
            params![tenant, name],
        )?;
        Ok(())
    }

    /// Every sealed secret, by tenant and name.
    pub fn secrets_all(&self) -> rusqlite::Result<Vec<SealedSecret>> {
        let conn = self.lock()?;
        let mut stmt = conn.prepare(
            "SELECT tenant, name, key_id, nonce, ciphertext FROM secrets ORDER BY tenant, name",
        )?;
        let rows = stmt.query_map([], sealed_from_row)?;
        rows.collect()
    }

    /// The fingerprints of the keys the stored secrets are sealed with.
    pub fn secret_key_ids(&self) -> rusqlite::Result<Vec<String>> {
        let conn = self.lock()?;
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
        let mut conn = self.lock()?;
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
            .lock()?
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
        self.lock()?.execute(
            "INSERT INTO tenant_auth (tenant, reason, since_ms) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant) DO UPDATE SET reason = excluded.reason",
            params![tenant, reason, now_ms],
        )?;
        Ok(())
    }

    /// Remember an issued install state (by its hash) for `client` (the
    /// address that asked), unless the tenant already has
    /// [`PENDING_PER_TENANT`] pending: then `Busy`, with how long until
    /// the first of them expires. A pending state is never dropped for
    /// another client's: a client holding [`PENDING_PER_CLIENT`] gives up
    /// its own oldest, so anonymous requests cannot push out an admin's
    /// link. States expired for longer than a day go, and (used or
    /// expired) all but the tenant's newest [`STATES_PER_TENANT`].
    pub fn oauth_state_insert(
        &self,
        issue: &StateIssue<'_>,
        now_ms: i64,
    ) -> rusqlite::Result<StateAdmission> {
        let mut conn = self.lock()?;
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "DELETE FROM oauth_states WHERE expires_at_ms < ?1",
            params![now_ms - STATE_RETENTION_MS],
        )?;
        const PENDING: &str = "used_at_ms IS NULL AND expires_at_ms > ?2";
        // Not for a shared key (a proxy that did not say for whom): that
        // client may be anyone, the admin included.
        let own_share = if guest_support::installs::is_shared_key(issue.client) {
            i64::MAX
        } else {
            PENDING_PER_CLIENT - 1
        };
        tx.execute(
            &format!(
                "DELETE FROM oauth_states WHERE state_hash IN
                     (SELECT state_hash FROM oauth_states
                      WHERE tenant = ?1 AND {PENDING} AND client = ?3
                      ORDER BY expires_at_ms DESC, rowid DESC LIMIT -1 OFFSET ?4)"
            ),
            params![issue.tenant, now_ms, issue.client, own_share],
        )?;
        let (pending, first_expiry): (i64, Option<i64>) = tx.query_row(
            &format!(
                "SELECT count(*), min(expires_at_ms) FROM oauth_states WHERE tenant = ?1 AND {PENDING}"
            ),
            params![issue.tenant, now_ms],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if pending >= PENDING_PER_TENANT {
            // Dropped uncommitted: a refused start costs the client none
            // of its own pending links.
            return Ok(StateAdmission::Busy {
                retry_in_ms: first_expiry.map_or(0, |at| at - now_ms).max(1_000),
            });
        }
        tx.execute(
            "INSERT INTO oauth_states (state_hash, tenant, redirect_uri, expires_at_ms, client) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                issue.state_hash,
                issue.tenant,
                issue.redirect_uri,
                issue.expires_at_ms,
                issue.client
            ],
        )?;
        tx.execute(
            &format!(
                "DELETE FROM oauth_states WHERE tenant = ?1 AND NOT ({PENDING}) AND state_hash NOT IN
                     (SELECT state_hash FROM oauth_states WHERE tenant = ?1
                      ORDER BY expires_at_ms DESC, rowid DESC LIMIT ?3)"
            ),
            params![issue.tenant, now_ms, STATES_PER_TENANT],
        )?;
        tx.commit()?;
        Ok(StateAdmission::Issued)
    }

    /// Consume an install state: the first presentation claims it, every
    /// later one finds it used (atomic across processes).
    pub fn oauth_state_claim(&self, state_hash: &str, now_ms: i64) -> rusqlite::Result<StateClaim> {
        let mut conn = self.lock()?;
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
        db.oauth_state_insert(&issue("h", "t1", "a", 2_000), 1_000)
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
        // Used, it gives way to newer states once the tenant has many.
        for i in 0..STATES_PER_TENANT {
            let hash = format!("s{i}");
            db.oauth_state_insert(&issue(&hash, "t1", &hash, 3_000 + i), 1_000)
                .unwrap();
            db.oauth_state_claim(&hash, 1_000).unwrap();
        }
        assert_eq!(
            db.oauth_state_claim("h", 1_700).unwrap(),
            StateClaim::Unknown
        );
        assert_eq!(
            db.oauth_state_claim("g", 1_600).unwrap(),
            StateClaim::Unknown
        );
    }

    fn issue<'a>(hash: &'a str, tenant: &'a str, client: &'a str, expires: i64) -> StateIssue<'a> {
        StateIssue {
            state_hash: hash,
            tenant,
            client,
            redirect_uri: "http://x/cb",
            expires_at_ms: expires,
        }
    }

    #[test]
    fn anonymous_starts_never_push_out_a_pending_link() {
        let db = Storage::in_memory().unwrap();
        let now = 1_000;
        assert_eq!(
            db.oauth_state_insert(&issue("admin", "t", "198.51.100.1", 60_000), now)
                .unwrap(),
            StateAdmission::Issued
        );
        // One address: it only ever replaces its own oldest.
        for i in 0..50 {
            let hash = format!("x{i}");
            db.oauth_state_insert(&issue(&hash, "t", "198.51.100.2", 60_000), now)
                .unwrap();
        }
        // Many addresses: the tenant's pending quota fills, then starts wait.
        let mut busy = 0;
        for i in 0..50 {
            let (hash, client) = (format!("y{i}"), format!("203.0.113.{i}"));
            if let StateAdmission::Busy { retry_in_ms } = db
                .oauth_state_insert(&issue(&hash, "t", &client, 60_000), now)
                .unwrap()
            {
                assert_eq!(retry_in_ms, 59_000);
                busy += 1;
            }
        }
        assert_eq!(
            busy,
            50 - (PENDING_PER_TENANT - 1 - PENDING_PER_CLIENT) as usize
        );
        // The admin's link still works; another tenant is not affected.
        assert!(matches!(
            db.oauth_state_claim("admin", now + 1).unwrap(),
            StateClaim::Claimed { .. }
        ));
        assert_eq!(
            db.oauth_state_insert(&issue("other", "u", "203.0.113.1", 60_000), now)
                .unwrap(),
            StateAdmission::Issued
        );
        // Once the pending states expire, starts are issued again.
        assert_eq!(
            db.oauth_state_insert(&issue("later", "t", "198.51.100.9", 200_000), 61_000)
                .unwrap(),
            StateAdmission::Issued
        );
    }

    #[test]
    fn starts_from_a_proxy_that_names_no_client_never_evict_each_other() {
        let db = Storage::in_memory().unwrap();
        let now = 1_000;
        // The admin and strangers alike arrive as the proxy's address.
        db.oauth_state_insert(&issue("admin", "t", "127.0.0.1", 60_000), now)
            .unwrap();
        for i in 0..30 {
            let hash = format!("x{i}");
            db.oauth_state_insert(&issue(&hash, "t", "127.0.0.1", 60_000), now)
                .unwrap();
        }
        assert!(matches!(
            db.oauth_state_claim("admin", now + 1).unwrap(),
            StateClaim::Claimed { .. }
        ));
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
