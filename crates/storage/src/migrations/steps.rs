//! The schema's numbered steps (see the parent module for the rules of a
//! new one).

use super::{Change, Migration};

/// Every step, in order. The first is the schema of the last release
/// before versioning (commit 8fe53d6), whose databases have version 0.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "the schema of release 8fe53d6: key-value store, call log, sealed secrets, grants, install states, backfill progress, tenants, status page settings and retries, diagnostics incidents",
        rewrites_data: false,
        older_releases_read: true,
        change: Change::Sql(
            "CREATE TABLE IF NOT EXISTS kv (
                 namespace TEXT NOT NULL,
                 key       TEXT NOT NULL,
                 value     BLOB NOT NULL,
                 PRIMARY KEY (namespace, key)
             ) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS calls (
                 tenant        TEXT NOT NULL,
                 call_key      TEXT NOT NULL,
                 direction     TEXT NOT NULL,
                 caller        TEXT NOT NULL,
                 callee        TEXT NOT NULL,
                 outcome       TEXT NOT NULL,
                 detail        TEXT NOT NULL,
                 rule          TEXT,
                 contact_id    TEXT,
                 ended_at_ms   INTEGER NOT NULL,
                 handled_at_ms INTEGER NOT NULL,
                 recording     TEXT NOT NULL DEFAULT 'none',
                 triggers      TEXT NOT NULL DEFAULT '',
                 PRIMARY KEY (tenant, call_key)
             );
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
             );
             CREATE TABLE IF NOT EXISTS backfill_progress (
                 tenant        TEXT NOT NULL,
                 since_ms      INTEGER NOT NULL,
                 done_until_ms INTEGER NOT NULL,
                 updated_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (tenant, since_ms)
             );
             CREATE TABLE IF NOT EXISTS tenants (
                 id            TEXT PRIMARY KEY,
                 config        TEXT NOT NULL,
                 created_at_ms INTEGER NOT NULL,
                 updated_at_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS web_settings (
                 tenant        TEXT PRIMARY KEY,
                 settings      TEXT NOT NULL,
                 updated_at_ms INTEGER NOT NULL
             );
             CREATE TABLE IF NOT EXISTS web_retries (
                 tenant          TEXT NOT NULL,
                 call_key        TEXT NOT NULL,
                 requested_at_ms INTEGER NOT NULL,
                 PRIMARY KEY (tenant, call_key)
             );
             CREATE TABLE IF NOT EXISTS diagnostics_incidents (
                 id               INTEGER PRIMARY KEY AUTOINCREMENT,
                 tenant           TEXT NOT NULL,
                 check_name       TEXT NOT NULL,
                 detail           TEXT NOT NULL,
                 hint             TEXT NOT NULL,
                 opened_at_ms     INTEGER NOT NULL,
                 last_seen_ms     INTEGER NOT NULL,
                 closed_at_ms     INTEGER,
                 alert_claim_ms   INTEGER,
                 alert_contact_id TEXT,
                 alert_task_id    TEXT,
                 alert_error      TEXT,
                 task_completed   INTEGER NOT NULL DEFAULT 0
             );
             CREATE UNIQUE INDEX IF NOT EXISTS diagnostics_one_open_incident
                 ON diagnostics_incidents (tenant, check_name) WHERE closed_at_ms IS NULL;",
        ),
    },
    Migration {
        version: 2,
        name: "an index for the call log's retention sweep (oldest handled first)",
        rewrites_data: false,
        older_releases_read: true,
        change: Change::Sql(
            "CREATE INDEX IF NOT EXISTS calls_by_handled_at ON calls (tenant, handled_at_ms);",
        ),
    },
    Migration {
        version: 3,
        name: "install states remember the client that asked (per-client cap)",
        rewrites_data: false,
        older_releases_read: true,
        change: Change::AddColumn {
            table: "oauth_states",
            column: "client",
            definition: "TEXT NOT NULL DEFAULT ''",
        },
    },
    Migration {
        version: 4,
        name: "status page sessions kept on the server (sign-out ends them)",
        rewrites_data: false,
        older_releases_read: true,
        change: Change::Sql(
            "CREATE TABLE IF NOT EXISTS web_sessions (
                 id_hash       TEXT PRIMARY KEY,
                 expires_at_ms INTEGER NOT NULL
             ) WITHOUT ROWID;",
        ),
    },
    Migration {
        version: 5,
        name: "one HighLevel token refresh at a time across hosts (refresh leases)",
        rewrites_data: false,
        older_releases_read: true,
        change: Change::Sql(
            "CREATE TABLE IF NOT EXISTS refresh_leases (
                 tenant   TEXT PRIMARY KEY,
                 holder   TEXT NOT NULL,
                 until_ms INTEGER NOT NULL
             ) WITHOUT ROWID;",
        ),
    },
    Migration {
        version: 6,
        name: "HighLevel request budgets shared by every host on the database (rate budgets)",
        rewrites_data: false,
        older_releases_read: true,
        change: Change::Sql(
            "CREATE TABLE IF NOT EXISTS rate_budgets (
                 key              TEXT PRIMARY KEY,
                 burst_window     TEXT NOT NULL,
                 blocked_until_ms INTEGER NOT NULL DEFAULT 0,
                 hours            TEXT NOT NULL DEFAULT '[]'
             ) WITHOUT ROWID;",
        ),
    },
    Migration {
        version: 7,
        name: "the call log says where each call's 3CX insights stand (transcript, summary, sentiment)",
        rewrites_data: false,
        older_releases_read: true,
        change: Change::AddColumn {
            table: "calls",
            column: "insights",
            definition: "TEXT NOT NULL DEFAULT 'none'",
        },
    },
];
