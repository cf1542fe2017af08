//! Admission control for `POST /payments`: per-client and global rate limits (governor's
//! GCRA), checked before the body is read so a rejected request costs no parsing and no
//! Redis call.
//!
//! Comes after the router (which hands over the peer address); comes before
//! `handlers::payments`. Load shedding on the backlog is not here: it happens inside the
//! accept script (`XLEN` beside the `XADD`, no extra round trip), and answers 503. Shedding
//! on Redis' memory is here ([`MemoryWatch`]): a reading every 250 ms, and a flag the
//! handler checks, so accepts stop before memory is full and what was accepted can still
//! be recorded.
//!
//! Who a client is ([`client_key`]): its `X-Api-Key` when it sends one; otherwise, when the
//! peer is a proxy we trust (loopback or private address: nginx in front of us), the
//! address it forwards in `X-Real-IP` or first in `X-Forwarded-For`; otherwise the peer
//! address. IPv6 addresses count per /64, the block one subscriber usually holds.
//!
//! Memory is bounded: [`keep_bounded`] periodically drops every client whose bucket is
//! full again (indistinguishable from a client never seen) and shrinks the map.

pub use common::memory::{watch_memory, MemoryWatch};
use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use common::metrics as names;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};
use hyper::HeaderMap;

use crate::config::RateLimitConfig;

pub const API_KEY_HEADER: &str = "x-api-key";
pub const REAL_IP_HEADER: &str = "x-real-ip";
pub const FORWARDED_FOR_HEADER: &str = "x-forwarded-for";

/// How often [`keep_bounded`] forgets clients whose bucket has refilled.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(5);

/// Whom a per-client limit applies to. Fixed size whatever the client sends: an API key is
/// kept as a keyed hash (collisions are as likely as guessing a random 64-bit number).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    ApiKey(u64),
    Addr(IpAddr),
}

type Keyed<C> =
    RateLimiter<ClientKey, DashMapStateStore<ClientKey>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type Direct<C> = RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The configured limiters. Only exists when at least one limit is on, so the handler's
/// whole cost with limits off is one `Option` check.
pub struct RateLimits<C: Clock = DefaultClock> {
    /// One GCRA bucket per [`ClientKey`]; `None` when `RATE_LIMIT_PER_CLIENT` is 0.
    per_client: Option<Keyed<C>>,
    /// One bucket for everybody; `None` when `RATE_LIMIT_GLOBAL` is 0.
    global: Option<Direct<C>>,
    /// The limiters' clock, read again to turn a rejection into a wait.
    clock: C,
    /// Hashes API keys into [`ClientKey::ApiKey`]; random per process.
    hasher: RandomState,
}

impl RateLimits {
    /// The limiters on the real clock, or `None` when every limit is off.
    pub fn from_config(config: &RateLimitConfig) -> Option<Self> {
        Self::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> RateLimits<C> {
    /// The limiters on `clock` (tests pass governor's `FakeRelativeClock`).
    pub fn with_clock(config: &RateLimitConfig, clock: C) -> Option<Self> {
        if !config.is_enabled() {
            return None;
        }
        let quota =
            |rate: NonZeroU32| Quota::per_second(rate).allow_burst(config.burst.unwrap_or(rate));
        Some(Self {
            per_client: config
                .per_client
                .map(|rate| RateLimiter::dashmap_with_clock(quota(rate), clock.clone())),
            global: config
                .global
                .map(|rate| RateLimiter::direct_with_clock(quota(rate), clock.clone())),
            clock,
            hasher: RandomState::new(),
        })
    }

    /// Admits one request, or says how long to wait before the next one can be admitted.
    pub fn check(&self, headers: &HeaderMap, peer: SocketAddr) -> Result<(), Duration> {
        if self.per_client.is_some() {
            self.check_client(&client_key(headers, peer, &self.hasher))?;
        }
        self.check_global()
    }

    /// The per-client limit alone (checked first, so a client over its own limit does not
    /// use up the shared budget).
    pub fn check_client(&self, key: &ClientKey) -> Result<(), Duration> {
        match &self.per_client {
            Some(limiter) => limiter.check_key(key).map_err(|e| self.wait(&e)),
            None => Ok(()),
        }
    }

    fn check_global(&self) -> Result<(), Duration> {
        match &self.global {
            Some(limiter) => limiter.check().map_err(|e| self.wait(&e)),
            None => Ok(()),
        }
    }

    fn wait(&self, not_until: &NotUntil<C::Instant>) -> Duration {
        not_until.wait_time_from(self.clock.now())
    }

    /// Forgets clients whose bucket is full again and releases the memory; returns how many
    /// clients are still tracked.
    pub fn cleanup(&self) -> usize {
        match &self.per_client {
            Some(limiter) => {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                limiter.len()
            }
            None => 0,
        }
    }
}

/// Runs [`RateLimits::cleanup`] every `every` until the task is dropped or aborted.
pub async fn keep_bounded(limits: Arc<RateLimits>, every: Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let tracked = limits.cleanup();
        metrics::gauge!(names::RATE_LIMIT_TRACKED_CLIENTS).set(tracked as f64);
    }
}

/// `Retry-After` in whole seconds: rounded up, and at least 1 (0 would invite a retry storm).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

/// Who is asking (see the module docs for the order of precedence).
pub fn client_key(headers: &HeaderMap, peer: SocketAddr, hasher: &RandomState) -> ClientKey {
    if let Some(key) = headers.get(API_KEY_HEADER).map(|v| v.as_bytes()) {
        if !key.is_empty() {
            return ClientKey::ApiKey(hasher.hash_one(key));
        }
    }
    let peer = peer.ip().to_canonical();
    let addr = if is_trusted_proxy(peer) {
        forwarded_client(headers).unwrap_or(peer)
    } else {
        peer
    };
    ClientKey::Addr(per_subscriber(addr))
}

/// Peers whose forwarding headers we believe: loopback and private networks (the load
/// balancer in the same host or container network). Anyone else could forge them.
pub fn is_trusted_proxy(peer: IpAddr) -> bool {
    match peer.to_canonical() {
        IpAddr::V4(v4) => v4.is_loopback() || v4.is_private(),
        IpAddr::V6(v6) => v6.is_loopback() || v6.is_unique_local(),
    }
}

/// The client address a proxy forwards: `X-Real-IP`, else the first `X-Forwarded-For` hop.
fn forwarded_client(headers: &HeaderMap) -> Option<IpAddr> {
    let first = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .and_then(parse_addr)
    };
    first(REAL_IP_HEADER).or_else(|| first(FORWARDED_FOR_HEADER))
}

/// An address as proxies write it: bare, or with a port (`1.2.3.4:5`, `[::1]:5`).
fn parse_addr(text: &str) -> Option<IpAddr> {
    let text = text.trim();
    text.parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(|ip| ip.to_canonical())
}

/// IPv6 clients are keyed by their /64: one host can use every address in it.
fn per_subscriber(addr: IpAddr) -> IpAddr {
    match addr {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;
    use hyper::header::HeaderValue;

    fn config(per_client: u32, global: u32, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            per_client: NonZeroU32::new(per_client),
            global: NonZeroU32::new(global),
            burst: NonZeroU32::new(burst),
        }
    }

    fn limits(cfg: RateLimitConfig) -> (RateLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        (RateLimits::with_clock(&cfg, clock.clone()).unwrap(), clock)
    }

    fn ip(n: u8) -> ClientKey {
        ClientKey::Addr(IpAddr::from([203, 0, 113, n]))
    }

    #[test]
    fn all_off_builds_nothing() {
        assert!(RateLimits::from_config(&config(0, 0, 10)).is_none());
        assert!(RateLimits::from_config(&config(1, 0, 0)).is_some());
    }

    #[test]
    fn each_client_gets_its_own_bucket() {
        // 2 per second, bursts of 2.
        let (limits, clock) = limits(config(2, 0, 0));
        assert_eq!(limits.check_client(&ip(1)), Ok(()));
        assert_eq!(limits.check_client(&ip(1)), Ok(()));
        let wait = limits.check_client(&ip(1)).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // Another client is untouched.
        assert_eq!(limits.check_client(&ip(2)), Ok(()));
        // After the announced wait, exactly one more request fits.
        clock.advance(wait);
        assert_eq!(limits.check_client(&ip(1)), Ok(()));
        assert!(limits.check_client(&ip(1)).is_err());
    }

    #[test]
    fn burst_sets_the_bucket_size() {
        let (limits, clock) = limits(config(1, 0, 5));
        for _ in 0..5 {
            assert_eq!(limits.check_client(&ip(1)), Ok(()));
        }
        let wait = limits.check_client(&ip(1)).unwrap_err();
        assert_eq!(retry_after_secs(wait), 1);
        clock.advance(Duration::from_secs(5));
        for _ in 0..5 {
            assert_eq!(limits.check_client(&ip(1)), Ok(()));
        }
        assert!(limits.check_client(&ip(1)).is_err());
    }

    #[test]
    fn the_global_limit_counts_every_client() {
        let (limits, clock) = limits(config(0, 3, 0));
        let headers = HeaderMap::new();
        let peer = |n: u8| SocketAddr::from(([198, 51, 100, n], 40_000));
        for n in 0..3 {
            assert_eq!(limits.check(&headers, peer(n)), Ok(()));
        }
        assert!(limits.check(&headers, peer(9)).is_err());
        clock.advance(Duration::from_secs(1));
        assert_eq!(limits.check(&headers, peer(9)), Ok(()));
    }

    #[test]
    fn per_client_rejection_spares_the_global_budget() {
        let (limits, _clock) = limits(config(1, 2, 0));
        let headers = HeaderMap::new();
        let noisy = SocketAddr::from(([198, 51, 100, 1], 1));
        assert_eq!(limits.check(&headers, noisy), Ok(()));
        for _ in 0..10 {
            assert!(limits.check(&headers, noisy).is_err());
        }
        // The global bucket (2) still has room for someone else.
        assert_eq!(
            limits.check(&headers, SocketAddr::from(([198, 51, 100, 2], 1))),
            Ok(())
        );
    }

    #[test]
    fn cleanup_forgets_refilled_clients() {
        let (limits, clock) = limits(config(10, 0, 0));
        for n in 0..=255 {
            limits.check_client(&ip(n)).unwrap();
        }
        assert_eq!(limits.cleanup(), 256);
        // A full bucket takes burst / rate = 1 s to refill.
        clock.advance(Duration::from_millis(1_100));
        limits.check_client(&ip(7)).unwrap();
        assert_eq!(limits.cleanup(), 1);
        clock.advance(Duration::from_secs(2));
        assert_eq!(limits.cleanup(), 0);
    }

    #[test]
    fn retry_after_rounds_up_to_at_least_one_second() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(30)), 30);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn client_key_precedence() {
        let hasher = RandomState::new();
        let proxy = SocketAddr::from(([10, 0, 0, 2], 5000));
        let stranger = SocketAddr::from(([198, 51, 100, 7], 5000));
        let key = |h: &[(&'static str, &str)], peer| client_key(&headers(h), peer, &hasher);
        let addr = |s: &str| ClientKey::Addr(s.parse().unwrap());

        // An API key wins over everything, and equal keys are one client.
        let a = key(
            &[(API_KEY_HEADER, "k1"), (REAL_IP_HEADER, "1.1.1.1")],
            proxy,
        );
        assert!(matches!(a, ClientKey::ApiKey(_)));
        assert_eq!(a, key(&[(API_KEY_HEADER, "k1")], stranger));
        assert_ne!(a, key(&[(API_KEY_HEADER, "k2")], stranger));
        assert_eq!(key(&[(API_KEY_HEADER, "")], stranger), addr("198.51.100.7"));

        // A trusted proxy's forwarding headers: X-Real-IP, then the first XFF hop.
        assert_eq!(
            key(&[(REAL_IP_HEADER, "203.0.113.9")], proxy),
            addr("203.0.113.9")
        );
        assert_eq!(
            key(&[(FORWARDED_FOR_HEADER, "203.0.113.5, 10.0.0.1")], proxy),
            addr("203.0.113.5")
        );
        assert_eq!(
            key(
                &[
                    (REAL_IP_HEADER, "203.0.113.9"),
                    (FORWARDED_FOR_HEADER, "203.0.113.5")
                ],
                proxy
            ),
            addr("203.0.113.9")
        );
        assert_eq!(
            key(&[(REAL_IP_HEADER, "203.0.113.9:443")], proxy),
            addr("203.0.113.9")
        );
        // Garbage falls back to the proxy's own address.
        assert_eq!(key(&[(REAL_IP_HEADER, "unknown")], proxy), addr("10.0.0.2"));
        assert_eq!(key(&[], proxy), addr("10.0.0.2"));

        // Anyone else's forwarding headers are ignored.
        assert_eq!(
            key(&[(REAL_IP_HEADER, "203.0.113.9")], stranger),
            addr("198.51.100.7")
        );

        // IPv6 counts per /64; IPv4-mapped addresses are IPv4.
        let v6 = SocketAddr::from(("2001:db8:1:2:3:4:5:6".parse::<IpAddr>().unwrap(), 1));
        assert_eq!(key(&[], v6), addr("2001:db8:1:2::"));
        let mapped = SocketAddr::from(("::ffff:127.0.0.1".parse::<IpAddr>().unwrap(), 1));
        assert_eq!(
            key(&[(REAL_IP_HEADER, "::ffff:203.0.113.1")], mapped),
            addr("203.0.113.1")
        );
    }

    #[test]
    fn trusted_proxies_are_loopback_and_private() {
        for trusted in [
            "127.0.0.1",
            "10.1.2.3",
            "172.18.0.5",
            "192.168.1.1",
            "::1",
            "fd00::1",
        ] {
            assert!(is_trusted_proxy(trusted.parse().unwrap()), "{trusted}");
        }
        for untrusted in ["8.8.8.8", "172.32.0.1", "2001:db8::1", "::ffff:8.8.8.8"] {
            assert!(!is_trusted_proxy(untrusted.parse().unwrap()), "{untrusted}");
        }
    }

    proptest::proptest! {
        #[test]
        fn client_key_never_panics(
            real in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..60),
            xff in "[ -~]{0,80}",
            peer in proptest::prelude::any::<SocketAddr>(),
        ) {
            let mut map = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_bytes(&real) {
                map.insert(REAL_IP_HEADER, v);
            }
            if let Ok(v) = HeaderValue::from_str(&xff) {
                map.insert(FORWARDED_FOR_HEADER, v);
            }
            let _ = client_key(&map, peer, &RandomState::new());
        }
    }
}
