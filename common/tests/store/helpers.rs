//! A [`Store`] on a real `redis-server` on an ephemeral port, with its own key prefix.

use std::time::Duration;

use common::keys::Keys;
use common::store::{RedisOptions, Store};
use common::testing::{unique_prefix, RedisServer};

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
