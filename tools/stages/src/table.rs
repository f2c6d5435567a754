//! The rows of the table: every component ConnectZero builds, with its
//! crate, file, world, exports and grants. `tests/agreement.rs` holds each
//! row to its world in `wit/`.

use crate::{Component, Grant, MATCHER_PACKAGE, PIPELINE_PACKAGE, Role, Stage};

/// The export of the components that serve HTTP.
const HTTP_HANDLER: (&str, &[&str]) = ("wasi:http/incoming-handler", &["handle"]);

/// Every component ConnectZero builds: the stages in pipeline order, the
/// tick, then what only the Spin app uses.
pub const COMPONENTS: [Component; 13] = [
    Component {
        role: Role::Stage(Stage::Poll),
        name: "poll",
        package: "connectzero-poll",
        file: "connectzero_poll.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "poll-stage",
        exports: &[(
            "connectzero:pipeline/poll",
            &[
                "active-calls",
                "fetch",
                "fetch-window",
                "commit",
                "recording-dids",
            ],
        )],
        grants: &[Grant::Http, Grant::KvStore, Grant::Credentials],
    },
    Component {
        role: Role::Stage(Stage::Dedup),
        name: "dedup",
        package: "connectzero-dedup",
        file: "connectzero_dedup.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "dedup-stage",
        exports: &[(
            "connectzero:pipeline/dedup",
            &["claim-calls", "complete", "release"],
        )],
        grants: &[Grant::KvStore, Grant::KvAtomics],
    },
    Component {
        role: Role::Stage(Stage::Match),
        name: "match",
        package: "connectzero-match",
        file: "connectzero_match.wasm",
        wit_package: MATCHER_PACKAGE,
        world: "match-stage",
        exports: &[("connectzero:matcher/matcher", &["match-calls"])],
        grants: &[Grant::Directory],
    },
    Component {
        role: Role::Stage(Stage::Post),
        name: "post",
        package: "connectzero-post",
        file: "connectzero_post.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "post-stage",
        exports: &[("connectzero:pipeline/post", &["post-calls", "post-copies"])],
        grants: &[Grant::Http, Grant::KvStore, Grant::Credentials],
    },
    Component {
        role: Role::Stage(Stage::Attach),
        name: "attach",
        package: "connectzero-attach",
        file: "connectzero_attach.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "attach-stage",
        exports: &[(
            "connectzero:pipeline/attach",
            &[
                "enqueue",
                "process-due",
                "enqueue-insights",
                "process-insights-due",
                "insights-queued",
            ],
        )],
        grants: &[
            Grant::Http,
            Grant::KvStore,
            Grant::KvAtomics,
            Grant::Credentials,
        ],
    },
    Component {
        role: Role::Stage(Stage::Trigger),
        name: "trigger",
        package: "connectzero-trigger",
        file: "connectzero_trigger.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "trigger-stage",
        exports: &[(
            "connectzero:pipeline/trigger",
            &["subscribe", "enqueue", "deliver-due"],
        )],
        grants: &[
            Grant::Http,
            Grant::KvStore,
            Grant::KvAtomics,
            Grant::Credentials,
        ],
    },
    Component {
        role: Role::Stage(Stage::WriteBack),
        name: "write-back",
        package: "connectzero-write-back",
        file: "connectzero_write_back.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "write-back-stage",
        exports: &[HTTP_HANDLER],
        grants: &[
            Grant::Http,
            Grant::KvStore,
            Grant::Config,
            Grant::Credentials,
        ],
    },
    Component {
        role: Role::Tick,
        name: "tick",
        package: "connectzero-tick",
        file: "connectzero_tick.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "tick-stage",
        exports: &[(
            "connectzero:pipeline/tick",
            &[
                "run",
                "fetch-window",
                "run-calls",
                "work-queues",
                "post-copies",
            ],
        )],
        grants: &[
            Grant::Stages,
            Grant::CallLog,
            Grant::KvStore,
            Grant::KvAtomics,
        ],
    },
    Component {
        role: Role::Provider,
        name: "credentials",
        package: "connectzero-credentials",
        file: "connectzero_credentials.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "credentials-provider",
        exports: &[
            (
                "connectzero:pipeline/credentials",
                &["access-token", "token-rejected"],
            ),
            (
                "connectzero:pipeline/crm-install",
                &["[method]grant.grantee", "exchange", "keep"],
            ),
        ],
        grants: &[Grant::Http, Grant::KvStore, Grant::KvAtomics, Grant::Config],
    },
    Component {
        role: Role::Provider,
        name: "directory",
        package: "connectzero-directory",
        file: "connectzero_directory.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "directory-provider",
        exports: &[(
            "connectzero:matcher/directory",
            &["find-by-phone", "find-by-email"],
        )],
        grants: &[Grant::Http, Grant::Config, Grant::Credentials],
    },
    Component {
        role: Role::Provider,
        name: "call-log",
        package: "connectzero-call-log",
        file: "connectzero_call_log.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "call-log-provider",
        exports: &[(
            "connectzero:pipeline/call-log",
            &[
                "record-calls",
                "record-unreadable",
                "record-recordings",
                "record-deliveries",
                "record-insights",
            ],
        )],
        grants: &[Grant::KvStore],
    },
    Component {
        role: Role::Provider,
        name: "tenancy",
        package: "connectzero-tenancy",
        file: "connectzero_tenancy.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "tenancy-provider",
        exports: &[
            (
                "wasi:keyvalue/store",
                &[
                    "open",
                    "[method]bucket.get",
                    "[method]bucket.set",
                    "[method]bucket.delete",
                    "[method]bucket.exists",
                    "[method]bucket.list-keys",
                ],
            ),
            (
                "wasi:keyvalue/atomics",
                &[
                    "[static]cas.new",
                    "[method]cas.current",
                    "increment",
                    "swap",
                ],
            ),
            ("wasi:config/store", &["get", "get-all"]),
            ("wasi:http/outgoing-handler", &["handle"]),
            (
                "connectzero:pipeline/tenancy",
                &[
                    "select",
                    "tenants",
                    "describe",
                    "put",
                    "remove",
                    "find-by-location",
                    "create-for-location",
                    "take-lease",
                    "release-lease",
                ],
            ),
        ],
        grants: &[Grant::Http, Grant::KvStore, Grant::KvAtomics, Grant::Config],
    },
    Component {
        role: Role::App,
        name: "app",
        package: "connectzero-app",
        file: "connectzero_app.wasm",
        wit_package: PIPELINE_PACKAGE,
        world: "app",
        exports: &[HTTP_HANDLER],
        grants: &[
            Grant::TickAndTrigger,
            Grant::CrmInstall,
            Grant::Tenancy,
            Grant::KvStore,
            Grant::KvAtomics,
            Grant::Config,
        ],
    },
];
