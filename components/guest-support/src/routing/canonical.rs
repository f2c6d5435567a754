//! The canonical form of the DIDs and queues a route lists (E.164, queue
//! digits), refusing what cannot be one: shared by validation and by
//! claims added from other tenants.

use super::{RouteClaims, RouteError};
use crate::policy::canonical_e164;

pub(super) fn canonical_queue(field: &str, queue: &str) -> Result<String, RouteError> {
    let q = queue.trim();
    if q.is_empty() || q.len() > 10 || !q.chars().all(|c| c.is_ascii_digit()) {
        return Err(RouteError::new(
            field,
            format!(
                "{queue:?} is not an extension number: write the queue's DN as digits, e.g. \"800\""
            ),
        ));
    }
    Ok(q.to_string())
}

pub(super) fn canonical_claims(
    prefix: &str,
    claims: &RouteClaims,
) -> Result<RouteClaims, RouteError> {
    let field = |name: &str| format!("{prefix}{name}");
    let mut out = RouteClaims::default();
    for d in &claims.dids {
        let e164 = canonical_e164(d).ok_or_else(|| {
            RouteError::new(
                &field("dids"),
                format!("{d:?} is not an E.164 number: write the DID with \"+\" and the country code, e.g. \"+442079460000\""),
            )
        })?;
        if out.dids.contains(&e164) {
            return Err(RouteError::new(
                &field("dids"),
                format!("{d:?} is listed twice: remove one"),
            ));
        }
        out.dids.push(e164);
    }
    for q in &claims.queues {
        let q = canonical_queue(&field("queues"), q)?;
        if out.queues.contains(&q) {
            return Err(RouteError::new(
                &field("queues"),
                format!("{q:?} is listed twice: remove one"),
            ));
        }
        out.queues.push(q);
    }
    Ok(out)
}
