//! One use of the access token (the token line) and the rate budget line
//! read from HighLevel's rate-limit headers on its answer.

use super::{RATE_BUDGET, TOKEN, reinstall_hint};
use crate::doctor::report::Check;
use crate::doctor::transport_problem;
use crate::ratelimit::LocationLimiter;
use crate::upstream::message_of;
/// The rate budget line fails when less than this share (percent) of the
/// daily limit HighLevel reports is left: the calls stop once it is spent.
const LOW_DAILY_BUDGET_PERCENT: u64 = 10;

/// The rate budget line when the location's requests are held back.
pub(super) fn budget_exhausted(retry_secs: u64) -> Check {
    Check::fail(
        RATE_BUDGET,
        format!(
            "the location's request budget is used up: requests are held back for {retry_secs} s"
        ),
        "nothing to do if it passes by itself (the calls wait and are retried); if it keeps failing, another app or host shares this app's budget for the location: stop the other copy, or set tenants.crm.rate_limit to the share it may use",
    )
}

/// The rate budget line from HighLevel's rate-limit headers (HighLevel
/// NOTES §6.1: `X-RateLimit-Limit-Daily`, `X-RateLimit-Daily-Remaining`)
/// on an answer with `status`.
fn budget_check(
    status: u16,
    headers: &reqwest::header::HeaderMap,
    retry_after: Option<u64>,
) -> Check {
    if status == 429 {
        return budget_exhausted(retry_after.unwrap_or(10));
    }
    let number =
        |name: &str| -> Option<u64> { headers.get(name)?.to_str().ok()?.trim().parse().ok() };
    match (
        number("x-ratelimit-daily-remaining"),
        number("x-ratelimit-limit-daily"),
    ) {
        // u128: the figures come from HighLevel's headers, so no product
        // of them may overflow.
        (Some(left), Some(daily))
            if u128::from(left) * 100
                < u128::from(daily) * u128::from(LOW_DAILY_BUDGET_PERCENT) =>
        {
            Check::fail(
                RATE_BUDGET,
                format!("only {left} of {daily} daily requests left for this app and location"),
                "HighLevel counts every request of this app in this location per day and refuses more once it is spent (the calls then wait): check no other copy of ConnectZero or script uses this app for the location; the budget comes back within 24 h",
            )
        }
        (Some(left), Some(daily)) => Check::pass(
            RATE_BUDGET,
            format!("{left} of {daily} daily requests left"),
        ),
        _ => Check::pass(RATE_BUDGET, "not limited (HighLevel sent no daily budget)"),
    }
}

/// Use the access token once (`get-duplicate-contact`, scope
/// `contacts.readonly`, the lookup the pipeline makes most). Returns the
/// token line, the rate budget line (from the answer's headers) and the
/// answer's status (0 for none). A 429 is reported to `limiter`.
pub(super) async fn probe(
    http: &reqwest::Client,
    tenant: &str,
    base: &str,
    location: &str,
    access_token: &str,
    limiter: Option<&LocationLimiter>,
) -> (Check, Check, u16) {
    let answer = http
        .get(format!(
            "{base}/contacts/search/duplicate?locationId={}",
            urlencoding::encode(location)
        ))
        .bearer_auth(access_token)
        .header("Version", "2021-07-28")
        .send()
        .await;
    let response = match answer {
        Ok(response) => response,
        Err(error) => {
            let (detail, hint) = transport_problem("HighLevel", base, &error);
            return (
                Check::fail(TOKEN, detail, hint),
                Check::skipped(RATE_BUDGET, "HighLevel did not answer"),
                0,
            );
        }
    };
    let status = response.status().as_u16();
    let retry_after = crate::ratelimit::parse_retry_after(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
    );
    if status == 429
        && let Some(limiter) = limiter
    {
        limiter.note_429(retry_after);
    }
    let budget = budget_check(status, response.headers(), retry_after);
    if status == 429 {
        // Not the token's fault: the budget line reports it.
        let token = Check::skipped(TOKEN, "HighLevel answered 429 (rate limited)");
        return (token, budget, status);
    }
    if status == 200 {
        let token = Check::pass(
            TOKEN,
            format!("location {location} answered with the token"),
        );
        return (token, budget, status);
    }
    let message = message_of(
        &crate::upstream::capped_text(response)
            .await
            .unwrap_or_default(),
    );
    let token = Check::fail(
        TOKEN,
        format!("refreshed, but location {location} answered {status}: {message}"),
        match status {
            401 | 403 => reinstall_hint(tenant, "and approve this location"),
            _ => "HighLevel could not serve the request: try again in a few minutes".into(),
        },
    );
    (token, budget, status)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::report::Status;
    #[test]
    fn the_rate_budget_fails_when_nearly_spent_or_refused() {
        let headers = |left: &str| {
            let mut map = reqwest::header::HeaderMap::new();
            map.insert("x-ratelimit-limit-daily", "200000".parse().unwrap());
            map.insert("x-ratelimit-daily-remaining", left.parse().unwrap());
            map
        };
        let plenty = budget_check(200, &headers("150000"), None);
        assert_eq!(plenty.status, Status::Pass, "{plenty:?}");
        assert!(plenty.detail.contains("150000 of 200000"), "{plenty:?}");
        let low = budget_check(200, &headers("1999"), None);
        assert_eq!(low.status, Status::Fail, "{low:?}");
        assert!(low.detail.contains("only 1999 of 200000"), "{low:?}");
        let none = budget_check(200, &reqwest::header::HeaderMap::new(), None);
        assert_eq!(none.status, Status::Pass);
        let limited = budget_check(429, &headers("150000"), Some(30));
        assert_eq!(limited.status, Status::Fail);
        assert!(limited.detail.contains("30 s"), "{limited:?}");
    }
}
