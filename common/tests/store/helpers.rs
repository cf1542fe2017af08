//! A [`Store`] on a real `redis-server` on an ephemeral port, with its own key prefix.

use std::time::Duration;

use common::keys::{Keys, GROUP};
use common::payment::{Cents, PaymentId, Processor};
use common::store::{Accepted, Attempt};
use common::store::{RedisOptions, Store};
use common::testing::{unique_prefix, RedisServer};
use uuid::Uuid;

/// A store and the Redis it talks to (killed when dropped).
pub struct TestStore {
    pub store: Store,
    pub redis: RedisServer,
}

/// A store whose Redis calls may take long: the tests check exact totals and script
/// outcomes, not how fast a loaded machine answers.
pub fn patient_store() -> TestStore {
    store_with(|_| {})
}

/// [`patient_store`] with other Redis options (a shorter `payment_retention`, ...).
pub fn store_with(configure: impl FnOnce(&mut RedisOptions)) -> TestStore {
    let redis = RedisServer::start();
    let mut options = RedisOptions::new(redis.url());
    options.response_timeout = Duration::from_secs(60);
    configure(&mut options);
    let store = Store::connect_lazy(&options, Keys::new(&unique_prefix())).unwrap();
    TestStore { store, redis }
}

pub fn new_id() -> PaymentId {
    PaymentId::new(Uuid::new_v4())
}

pub const LONG: Duration = Duration::from_secs(60);

/// Accepts a payment and delivers its entry to `consumer`, as XREADGROUP does for a
/// worker; returns the entry id.
pub async fn accept_and_deliver(
    store: &Store,
    id: &PaymentId,
    cents: i64,
    consumer: &str,
) -> String {
    store.ensure_group().await.unwrap();
    assert_eq!(
        store.accept(id, Cents::new(cents), 0).await.unwrap(),
        Accepted::Enqueued
    );
    let mut conn = store.connection();
    let reply: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(GROUP)
        .arg(consumer)
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(store.keys().stream())
        .arg(">")
        .query_async(&mut conn)
        .await
        .unwrap();
    first_entry_id(&reply).unwrap_or_else(|| panic!("no entry in {reply:?}"))
}

/// The first entry id (`<ms>-<seq>`) of an `XREADGROUP` reply, `None` when it has none.
pub fn first_entry_id(reply: &redis::Value) -> Option<String> {
    let text = format!("{reply:?}");
    text.split(['"', '\'', '(', ')', ',', ' ', '['])
        .find(|t| {
            t.split_once('-').is_some_and(|(a, b)| {
                !a.is_empty()
                    && a.chars().all(|c| c.is_ascii_digit())
                    && b.chars().all(|c| c.is_ascii_digit())
                    && !b.is_empty()
            })
        })
        .map(str::to_string)
}

pub async fn begin(
    store: &Store,
    id: &PaymentId,
    p: Processor,
    consumer: &str,
    entry: &str,
) -> Attempt {
    store
        .begin_attempt(id, p, consumer, entry, LONG, common::time::now_ms())
        .await
        .unwrap()
}
