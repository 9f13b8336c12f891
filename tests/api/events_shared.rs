//! Upload records and pending events in Redis, shared by replicas (the real binary,
//! a real `redis-server`, Garage and SeaweedFS): a replica killed with SIGKILL between
//! the upload and the delivery loses nothing, and two replicas on one Redis report
//! each of 200 uploads exactly once.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};

use crate::events::{QUICK_EVENTS, png};
use crate::helpers::*;
use crate::receiver::Receiver;
use crate::scale::Redis;
use crate::store::{BUCKET, Kind, Store};

crate::events::on_garage_and_seaweedfs!(
    a_replica_killed_before_delivery_loses_no_event,
    two_replicas_on_one_redis_report_200_uploads_once_each,
);

fn config(store: &Store, redis: &Redis, hook: &str) -> String {
    format!(
        r#"{}{QUICK_EVENTS}
[redis]
url = "{}"

[tenants.photos]
bucket = "{BUCKET}"
max_size = 100000
content_types = ["image/png"]
default_expires_in = 2
completion_webhook_url = "{hook}"
completion_webhook_secret_env = "{WEBHOOK_SECRET_ENV}"
"#,
        base_config().replace("http://127.0.0.1:9000", &store.endpoint),
        redis.url()
    )
}

fn replica(config: &str, store: &Store) -> Binary {
    Binary::start(
        config,
        &[
            ("AWS_ACCESS_KEY_ID", store.access_key),
            ("AWS_SECRET_ACCESS_KEY", store.secret_key),
        ],
    )
}

fn base(replica: &Binary) -> String {
    format!("http://{}", replica.address)
}

/// A ticket from `replica` for `sub`, and its upload of a PNG to the store.
async fn upload_through(client: &reqwest::Client, replica: &str, sub: &str) -> Value {
    let file = png(500);
    let ticket: Value = client
        .post(format!("{replica}/uploads"))
        .bearer_auth(token("photos", sub))
        .json(&json!({"filename": "p.png", "content_type": "image/png", "size": file.len()}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let fields = crate::e2e::fields_of(&ticket);
    let stored =
        crate::e2e::post(ticket["url"].as_str().unwrap(), &fields, file, "image/png").await;
    assert!(stored.status().is_success(), "{stored:?}");
    ticket
}

/// The client's completion call to `replica`.
async fn complete(client: &reqwest::Client, replica: &str, sub: &str, key: &str) -> Value {
    let response = client
        .post(format!("{replica}/uploads/complete"))
        .bearer_auth(token("photos", sub))
        .json(&json!({"key": key}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

async fn a_replica_killed_before_delivery_loses_no_event(kind: Kind) {
    let store = Store::start(kind).await;
    let redis = Redis::start();
    let hooks = Receiver::start().await;
    hooks.refuse_next(usize::MAX);
    let config = config(&store, &redis, &hooks.url);
    let client = reqwest::Client::new();
    let mut first = replica(&config, &store);
    let at = base(&first);
    // One upload reported (its event queued, its first attempt refused), one not found
    // yet (its ticket still valid when the replica dies).
    let reported = upload_through(&client, &at, "user-1").await;
    let report = complete(&client, &at, "user-1", reported["key"].as_str().unwrap()).await;
    let queued = report["event_id"].as_str().unwrap().to_owned();
    let pending = upload_through(&client, &at, "user-2").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while hooks.attempts().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt was made"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill();
    let refused = hooks.attempts().len();

    hooks.refuse_next(0);
    let second = replica(&config, &store);
    let delivered = hooks.wait_for(2, Duration::from_secs(40)).await;
    assert_eq!(delivered.len(), 2, "{:?}", hooks.attempts());
    let by_key: HashMap<String, &crate::receiver::Delivery> = delivered
        .iter()
        .map(|d| (d.event()["data"]["key"].as_str().unwrap().to_owned(), d))
        .collect();
    let again = by_key[reported["key"].as_str().unwrap()];
    assert_eq!(
        again.id, queued,
        "the event keeps its id across the restart"
    );
    assert_eq!(again.event()["data"]["found_by"], "client");
    let swept = by_key[pending["key"].as_str().unwrap()];
    assert_eq!(swept.event()["data"]["found_by"], "sweeper");
    assert!(refused >= 1);
    drop(second);
}

async fn two_replicas_on_one_redis_report_200_uploads_once_each(kind: Kind) {
    let store = Store::start(kind).await;
    let redis = Redis::start();
    let hooks = Receiver::start().await;
    let config = config(&store, &redis, &hooks.url);
    let replicas = [replica(&config, &store), replica(&config, &store)];
    let bases: Vec<String> = replicas.iter().map(base).collect();
    let client = reqwest::Client::new();
    // Tickets from either replica; every other upload reported by the client to the
    // other one (racing the sweepers), the rest left for the sweepers.
    let keys: Vec<String> = futures_util::stream::iter(0..200)
        .map(|i| {
            let (client, bases) = (&client, &bases);
            async move {
                let sub = format!("user-{i}");
                let ticket = upload_through(client, &bases[i % 2], &sub).await;
                let key = ticket["key"].as_str().unwrap().to_owned();
                if i % 2 == 0 {
                    complete(client, &bases[(i + 1) % 2], &sub, &key).await;
                }
                key
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let delivered = hooks.wait_for(200, Duration::from_secs(90)).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let delivered_after = hooks.accepted();
    assert_eq!(delivered.len(), 200, "{} attempts", hooks.attempts().len());
    assert_eq!(delivered_after.len(), 200, "no event is delivered twice");
    let ids: HashSet<&str> = delivered_after.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids.len(), 200, "no duplicate ids");
    let reported: HashSet<String> = delivered_after
        .iter()
        .map(|d| d.event()["data"]["key"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reported, keys.into_iter().collect::<HashSet<_>>());
    assert!(
        delivered_after
            .iter()
            .all(|d| d.event()["type"] == "upload.completed"),
        "every upload kept its ticket"
    );
}
