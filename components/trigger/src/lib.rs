//! # The trigger stage — CRM workflow triggers
//!
//! HighLevel registers a workflow's trigger by calling the app's
//! subscription URL; the host hands that to `subscribe`, which keeps the
//! tenant's subscriptions in the key-value store. Events are queued
//! durably (`enqueue`, once per kind and call) and `deliver-due` POSTs each
//! to every subscription of its key, remembering per subscription what was
//! delivered, so an event reaches each workflow exactly once however often
//! it is retried. A 429 or 5xx is retried with backoff (honouring
//! `Retry-After`); a 4xx other than 401/429 means the subscription is gone
//! and it is skipped.
//!
//! `missed-call.recovered` is derived here rather than by the caller, so
//! the host and the Spin app fire it alike: queuing a `missed-call` event
//! remembers the missed call under its phone, and queuing a `call-ended`
//! event for an answered inbound or outbound call to that phone within
//! `missed-call-recovery-window-secs` queues one recovered event per open
//! missed call of the number (one callback closes them all; each fires
//! once), see [`recovery`].
//!
//! It depends on `guest-support` and on what the `trigger-stage` world
//! grants: never on the host, the runtime or another stage.

mod payload;
pub mod recovery;

use guest_support::api::ApiClient;
use guest_support::bindings::connectzero::pipeline::types::{Direction, Service, TenantSettings};
use guest_support::bindings::wasi::keyvalue::store::Bucket;
use guest_support::queue::{Queue, backoff_ms};
use guest_support::triggers::TriggerKind;
use guest_support::{StageError, kv, time};
use serde::{Deserialize, Serialize};

guest_support::stage_bindings!(http_queue "trigger-stage");

use exports::connectzero::pipeline::trigger::{
    CallEvent, DeliveryReport, EventKind, Guest, Subscription, SubscriptionChange,
};

/// Name of the queue in the tenant's bucket.
const QUEUE: &str = guest_support::queue::TRIGGERS;

/// How long a worker holds a job it is working: one attempt POSTs the event to every subscription of its key, each bounded by the HTTP client's timeouts.
const DELIVERY_CLAIM_MS: i64 = 60_000;
/// Key of the tenant's subscription list.
const SUBSCRIPTIONS: &str = "trigger/subscriptions";
/// `Version` header sent to the trigger target URL ([ASSUMED]: the value
/// public implementations send, HighLevel NOTES §5.2).
const TRIGGER_VERSION: &str = "2021-04-15";
/// Longest wait between two delivery attempts.
const MAX_BACKOFF_MS: i64 = 5 * 60 * 1000;
/// After this long an undeliverable event is dropped from the queue (and
/// the drop is reported): workflows that far behind would act on stale calls.
const GIVE_UP_AFTER_MS: i64 = 24 * 60 * 60 * 1000;

/// A stored subscription.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
struct Stored {
    id: String,
    key: String,
    target_url: String,
    workflow_id: Option<String>,
}

/// A queued event.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Pending {
    kind: String,
    call_key: String,
    body: serde_json::Value,
    /// Subscriptions this event already reached (or that refused it for
    /// good), so a retry never delivers twice.
    handled: Vec<String>,
}

struct Trigger;

impl Guest for Trigger {
    fn subscribe(
        _settings: TenantSettings,
        change: SubscriptionChange,
        sub: Subscription,
    ) -> Result<(), StageError> {
        let bucket = kv::open()?;
        let stored = Stored {
            id: sub.id,
            key: TriggerKind::from(sub.kind).key().to_string(),
            target_url: sub.target_url,
            workflow_id: sub.workflow_id,
        };
        kv::update_json(&bucket, SUBSCRIPTIONS, |subs: &mut Vec<Stored>| {
            subs.retain(|s| s.id != stored.id);
            if !matches!(change, SubscriptionChange::Deleted) {
                subs.push(stored.clone());
            }
        })?;
        Ok(())
    }

    fn enqueue(settings: TenantSettings, events: Vec<CallEvent>) -> Result<(), StageError> {
        let bucket = kv::open()?;
        let queue = Queue::new(&bucket, QUEUE);
        let now = time::now_ms();
        // Recovered events are this stage's own conclusion; one sent in
        // would bypass the once-per-missed-call bookkeeping.
        let events: Vec<CallEvent> = events
            .into_iter()
            .filter(|e| !matches!(e.kind, EventKind::MissedCallRecovered))
            .collect();
        for event in &events {
            let kind = payload::trigger_key(event.kind);
            let pending = Pending {
                kind: kind.to_string(),
                call_key: event.call_key.clone(),
                body: payload::to_json(event),
                handled: Vec::new(),
            };
            queue.push(&format!("{kind}/{}", event.call_key), pending, now)?;
        }
        let window_ms = i64::from(settings.missed_call_recovery_window_secs) * 1000;
        if window_ms > 0 {
            // In call order, so a missed call and its callback arriving in
            // one batch pair up whatever order the caller listed them in.
            let mut ordered: Vec<&CallEvent> = events.iter().collect();
            ordered.sort_by_key(|e| e.started_at);
            for event in ordered {
                track_recovery(&bucket, &queue, event, window_ms, now)?;
            }
        }
        Ok(())
    }

    fn deliver_due(
        settings: TenantSettings,
        max_events: u32,
    ) -> Result<Vec<DeliveryReport>, StageError> {
        let bucket = kv::open()?;
        let queue = Queue::new(&bucket, QUEUE).claiming_for(DELIVERY_CLAIM_MS);
        let subscriptions: Vec<Stored> = kv::get_json(&bucket, SUBSCRIPTIONS)?.unwrap_or_default();
        let now = time::now_ms();
        let mut reports = Vec::new();
        for id in queue.due::<Pending>(now, max_events as usize)? {
            let Some(mut job) = queue.claim::<Pending>(&id, time::now_ms())? else {
                continue; // another worker has it
            };
            job.attempts += 1;
            let targets: Vec<&Stored> = subscriptions
                .iter()
                .filter(|s| s.key == job.payload.kind && !job.payload.handled.contains(&s.id))
                .collect();
            let mut delivered = 0;
            let mut last_error = None;
            let mut wait_ms = None;
            for target in targets {
                match deliver(target, &job.payload.body) {
                    Ok(()) => {
                        delivered += 1;
                        job.payload.handled.push(target.id.clone());
                    }
                    Err(error) => {
                        if let StageError::RateLimited(secs) = &error {
                            wait_ms = Some(i64::from(*secs) * 1000);
                        }
                        if gone_for_good(&error) {
                            job.payload.handled.push(target.id.clone());
                        }
                        last_error = Some(error);
                    }
                }
            }
            let remaining = subscriptions
                .iter()
                .any(|s| s.key == job.payload.kind && !job.payload.handled.contains(&s.id));
            let retry_at = if !remaining || now - job.queued_at >= GIVE_UP_AFTER_MS {
                queue.finish(&id, &job, &job.payload.handled)?;
                None
            } else {
                let backoff = backoff_ms(job.attempts - 1, settings.retry_base_ms, MAX_BACKOFF_MS);
                job.due_at = now + wait_ms.map_or(backoff, |w| w.max(backoff));
                queue.reschedule(&id, &job)?;
                Some(job.due_at)
            };
            // Events are queued under a known key (`enqueue`); one that
            // is not (written by a newer release) is worked as any other.
            // The report cannot name its kind, so it is said on stderr:
            // Spin's log shows it; the bundled host gives components no
            // stderr, and there such an event is worked silently.
            match TriggerKind::from_key(&job.payload.kind) {
                Some(kind) => reports.push(DeliveryReport {
                    kind: kind.into(),
                    call_key: job.payload.call_key.clone(),
                    delivered,
                    retry_at,
                    last_error,
                }),
                None => eprintln!(
                    "connectzero: trigger event {:?} of call {} (a newer release's): {delivered} delivered{}",
                    job.payload.kind,
                    job.payload.call_key,
                    last_error
                        .as_ref()
                        .map(|e| format!(", last error: {}", guest_support::api::describe(e)))
                        .unwrap_or_default()
                ),
            }
        }
        Ok(reports)
    }
}

/// Remember a missed call, or queue `missed-call.recovered` for the open
/// missed calls an answered call closes.
fn track_recovery(
    bucket: &Bucket,
    queue: &Queue<'_>,
    event: &CallEvent,
    window_ms: i64,
    now: i64,
) -> Result<(), StageError> {
    let Some(key) = recovery::state_key(&event.phone) else {
        return Ok(());
    };
    match event.kind {
        EventKind::MissedCall => {
            let missed = recovery::Missed {
                call_key: event.call_key.clone(),
                contact_id: event.contact_id.clone(),
                message_id: event.message_id.clone(),
                missed_at: event.ended_at.unwrap_or(event.started_at),
            };
            kv::update_json(bucket, &key, |open: &mut Vec<recovery::Missed>| {
                recovery::remember(open, &missed, window_ms)
            })?;
        }
        EventKind::CallEnded
            if event.answered
                && matches!(event.direction, Direction::Inbound | Direction::Outbound) =>
        {
            let open: Vec<recovery::Missed> = kv::get_json(bucket, &key)?.unwrap_or_default();
            let recovered =
                recovery::recovered_by(&open, &event.call_key, event.started_at, window_ms);
            if recovered.is_empty() && open.is_empty() {
                return Ok(());
            }
            // Queue first, forget after: a crash in between re-queues on
            // the retry, which the queue ignores (same missed call key).
            for r in &recovered {
                let kind = payload::trigger_key(EventKind::MissedCallRecovered);
                let pending = Pending {
                    kind: kind.to_string(),
                    call_key: r.missed.call_key.clone(),
                    body: payload::recovered_json(event, r),
                    handled: Vec::new(),
                };
                queue.push(&format!("{kind}/{}", r.missed.call_key), pending, now)?;
            }
            // The emptied list stays (a few bytes per number): deleting it
            // could lose a missed call another worker records meanwhile.
            let keys: Vec<String> = recovered.into_iter().map(|r| r.missed.call_key).collect();
            kv::update_json(bucket, &key, |open: &mut Vec<recovery::Missed>| {
                recovery::forget(open, &keys, event.started_at, window_ms)
            })?;
        }
        _ => {}
    }
    Ok(())
}

/// POST the event to one subscription's target URL with the location token.
fn deliver(target: &Stored, body: &serde_json::Value) -> Result<(), StageError> {
    // The target URL is whatever the subscription named: its refusal says
    // nothing about the tenant's token (the pipeline's own requests would
    // see a bad one), so it never makes the host refresh the grant.
    ApiClient::new(Service::Crm, &target.target_url)
        .with_header("Version", TRIGGER_VERSION)
        .keeping_the_token_on_401()
        .post_json_ignoring_answer("", body)
}

/// A 4xx other than 401, 408 and 429: the subscription refuses this event
/// and always will (e.g. the workflow was deleted).
fn gone_for_good(error: &StageError) -> bool {
    matches!(error, StageError::Upstream(e) if (400..500).contains(&e.status) && e.status != 408)
        || matches!(error, StageError::Forbidden(_))
}

// Exported only when building the component: a native build (unit tests)
// would otherwise put WIT export names into the host linker's symbol list.
#[cfg(target_arch = "wasm32")]
export!(Trigger);
