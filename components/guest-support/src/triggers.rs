//! The workflow triggers ConnectZero offers and their keys, as HighLevel
//! names them (a subscription's `triggerData.key`, the events' kind).
//! Plain Rust, so both runtimes and every component spell them the same;
//! the WIT `event-kind` maps onto [`TriggerKind`] through
//! [`crate::settings_conversions!`].

/// One of the workflow triggers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    /// `call.started`: the call appeared in 3CX active calls.
    CallStarted,
    /// `call.ended`: the call was posted.
    CallEnded,
    /// `missed-call`: an inbound call nobody answered was posted.
    MissedCall,
    /// `missed-call.recovered`: a missed caller was reached back in time.
    MissedCallRecovered,
    /// `call.insights`: 3CX's summary, sentiment and transcript of a
    /// posted call reached the CRM.
    CallInsights,
}

impl TriggerKind {
    /// Every trigger, in the order the documents list them.
    pub const ALL: [TriggerKind; 5] = [
        TriggerKind::CallStarted,
        TriggerKind::CallEnded,
        TriggerKind::MissedCall,
        TriggerKind::MissedCallRecovered,
        TriggerKind::CallInsights,
    ];

    /// Its key, e.g. `missed-call.recovered`.
    pub const fn key(self) -> &'static str {
        match self {
            TriggerKind::CallStarted => "call.started",
            TriggerKind::CallEnded => "call.ended",
            TriggerKind::MissedCall => "missed-call",
            TriggerKind::MissedCallRecovered => "missed-call.recovered",
            TriggerKind::CallInsights => "call.insights",
        }
    }

    /// The trigger whose key is `key`, exactly as spelt.
    pub fn from_key(key: &str) -> Option<TriggerKind> {
        TriggerKind::ALL.into_iter().find(|k| k.key() == key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_reads_back_and_nothing_else_does() {
        for kind in TriggerKind::ALL {
            assert_eq!(TriggerKind::from_key(kind.key()), Some(kind));
        }
        assert_eq!(TriggerKind::from_key("call.ended "), None);
        assert_eq!(TriggerKind::from_key("Call.Ended"), None);
        assert_eq!(TriggerKind::from_key(""), None);
    }
}
