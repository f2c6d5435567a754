//! One line describing a state ([`ProtocolModel::summary`]), for the
//! traces a check prints: kept apart from the model, which never reads it.

use super::{CallKey, ProtocolModel, State, Tick, key_text};
use crate::scenario::UNIT_MS;
use guest_support::protocol::Entry;

impl ProtocolModel {
    /// One line describing `s`, for traces.
    pub fn summary(&self, s: &State) -> String {
        let key = |k: &CallKey| key_text(self, *k);
        let ledger: Vec<String> = s
            .ledger
            .iter()
            .map(|((leg, start), e)| {
                let e = match e {
                    Entry::Claimed { worker, at, .. } => {
                        format!("claimed {worker}@{}", at / UNIT_MS)
                    }
                    Entry::Done { at, .. } => format!("done@{}", at / UNIT_MS),
                    Entry::Released { at } => format!("released@{}", at / UNIT_MS),
                };
                format!("{leg}@{}={e}", start / UNIT_MS)
            })
            .collect();
        let crm: Vec<String> = s
            .crm
            .iter()
            .map(|(k, n)| format!("{}×{n}", key(k)))
            .collect();
        let workers: Vec<String> = s
            .workers
            .iter()
            .enumerate()
            .map(|(w, worker)| {
                let at = match worker.tick.as_deref() {
                    None => "idle".to_string(),
                    Some(Tick::Listed { .. }) => "listed".to_string(),
                    Some(Tick::Batch(b)) => format!("{:?}", b.pc),
                };
                format!("w{w}.{}: {at}", worker.incarnation)
            })
            .collect();
        format!(
            "t={} cursor={:?} ledger=[{}] markers={:?} crm=[{}] queued={:?} | {}",
            s.now,
            s.cursor.map(|c| c / UNIT_MS),
            ledger.join(", "),
            s.markers.iter().map(key).collect::<Vec<_>>(),
            crm.join(", "),
            s.queued.iter().map(key).collect::<Vec<_>>(),
            workers.join(" | ")
        )
    }
}
