//! Per-location rate limiting (NOTES.md §6.1).
//!
//! Burst: a token bucket per location holding `max` tokens and refilling at
//! `max` per `interval` (HighLevel: 100 per 10 s). Daily: 200,000 requests per
//! location per rolling 24 h window. Each admitted request takes one token.
//! A refused request takes none and gets 429 with `Retry-After`, the whole
//! seconds until one token is back [ASSUMED: HighLevel documents neither the
//! status nor the header]. The `X-RateLimit-*` headers go on every
//! authenticated API response.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderValue};

use super::config::RateLimit;

/// HighLevel's documented daily limit per app per location.
pub(crate) const DAILY_LIMIT: u64 = 200_000;
const DAY: Duration = Duration::from_secs(24 * 60 * 60);

/// Values for the `X-RateLimit-*` response headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RateHeaders {
    max: u32,
    remaining: u32,
    interval_ms: u128,
    daily_remaining: u64,
}

impl RateHeaders {
    /// Writes the five `X-RateLimit-*` headers.
    pub(crate) fn apply(&self, headers: &mut HeaderMap) {
        let pairs = [
            ("x-ratelimit-max", self.max.to_string()),
            ("x-ratelimit-remaining", self.remaining.to_string()),
            (
                "x-ratelimit-interval-milliseconds",
                self.interval_ms.to_string(),
            ),
            ("x-ratelimit-limit-daily", DAILY_LIMIT.to_string()),
            (
                "x-ratelimit-daily-remaining",
                self.daily_remaining.to_string(),
            ),
        ];
        for (name, value) in pairs {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
    }
}

/// The verdict for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Go ahead.
    Allowed(RateHeaders),
    /// Refuse with 429 and `Retry-After: retry_after_secs`.
    Limited {
        /// Headers to send with the 429.
        headers: RateHeaders,
        /// Whole seconds until a token is available again (at least 1).
        retry_after_secs: u64,
    },
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    refilled_at: Instant,
    day_started: Instant,
    day_used: u64,
}

/// Buckets for every location seen so far.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    limit: Option<RateLimit>,
    buckets: HashMap<String, Bucket>,
    /// Requests refused with 429 so far (any location).
    pub(crate) refused: usize,
}

impl RateLimiter {
    /// A limiter enforcing `limit`; `None` admits everything without headers.
    pub(crate) fn new(limit: Option<RateLimit>) -> Self {
        Self {
            limit,
            buckets: HashMap::new(),
            refused: 0,
        }
    }

    /// Admits or refuses one request for `location_id`; `None` when disabled.
    pub(crate) fn check(&mut self, location_id: &str) -> Option<Decision> {
        let limit = self.limit?;
        let capacity = f64::from(limit.max);
        let now = Instant::now();
        let bucket = self
            .buckets
            .entry(location_id.to_owned())
            .or_insert_with(|| Bucket {
                tokens: capacity,
                refilled_at: now,
                day_started: now,
                day_used: 0,
            });
        let rate = refill_rate(limit);
        let elapsed = now.duration_since(bucket.refilled_at).as_secs_f64();
        bucket.tokens = if rate.is_finite() {
            (bucket.tokens + elapsed * rate).min(capacity)
        } else {
            capacity
        };
        bucket.refilled_at = now;
        if now.duration_since(bucket.day_started) >= DAY {
            bucket.day_started = now;
            bucket.day_used = 0;
        }

        let headers = |bucket: &Bucket| RateHeaders {
            max: limit.max,
            // Truncation is intended: a partly refilled token is not usable yet.
            remaining: bucket.tokens.floor() as u32,
            interval_ms: limit.interval.as_millis(),
            daily_remaining: DAILY_LIMIT.saturating_sub(bucket.day_used),
        };

        if bucket.day_used >= DAILY_LIMIT {
            self.refused += 1;
            let left = DAY.saturating_sub(now.duration_since(bucket.day_started));
            return Some(Decision::Limited {
                headers: headers(bucket),
                retry_after_secs: left.as_secs().max(1),
            });
        }
        if bucket.tokens < 1.0 {
            self.refused += 1;
            let retry_after_secs = if rate > 0.0 {
                ((1.0 - bucket.tokens) / rate).ceil().max(1.0) as u64
            } else {
                limit.interval.as_secs().max(1)
            };
            return Some(Decision::Limited {
                headers: headers(bucket),
                retry_after_secs,
            });
        }
        bucket.tokens -= 1.0;
        bucket.day_used += 1;
        Some(Decision::Allowed(headers(bucket)))
    }
}

fn refill_rate(limit: RateLimit) -> f64 {
    let secs = limit.interval.as_secs_f64();
    if secs > 0.0 {
        f64::from(limit.max) / secs
    } else {
        f64::INFINITY
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    #[test]
    fn bucket_empties_then_refuses_with_retry_after() {
        let mut limiter = RateLimiter::new(Some(RateLimit {
            max: 2,
            interval: Duration::from_secs(10),
        }));
        let remaining: Vec<u32> = (0..2)
            .map(|_| match limiter.check("loc") {
                Some(Decision::Allowed(h)) => h.remaining,
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(remaining, [1, 0]);
        match limiter.check("loc") {
            Some(Decision::Limited {
                retry_after_secs, ..
            }) => assert_eq!(retry_after_secs, 5),
            other => panic!("unexpected {other:?}"),
        }
        // Other locations have their own bucket.
        assert!(matches!(limiter.check("other"), Some(Decision::Allowed(_))));
    }

    #[test]
    fn disabled_limiter_admits_everything() {
        let mut limiter = RateLimiter::new(None);
        assert!((0..1000).all(|_| limiter.check("loc").is_none()));
    }
}
