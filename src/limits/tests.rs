//! The in-process counters; the Redis ones run the same cases against a real
//! `redis-server` in `tests/api/scale.rs`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::*;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

impl Limits {
    /// A charge alone, no record.
    async fn admit_counted(
        &self,
        limits: &Quotas,
        charge: Charge<'_>,
        now: SystemTime,
    ) -> Result<(), LimitError> {
        self.admit(limits, charge, None, now).await.map(|_| ())
    }
}

fn charge<'a>(subject: &'a str, bytes: u64) -> Charge<'a> {
    Charge {
        tenant: "acme",
        subject,
        bytes,
        upload: None,
    }
}

#[tokio::test]
async fn a_subjects_tickets_per_minute_hold_and_the_next_minute_opens() {
    let limits = Limits::in_process();
    let rules = Quotas {
        subject_per_minute: Some(2),
        ..Quotas::default()
    };
    let now = at(1_800_000_000 + 10);
    assert_eq!(
        limits.admit_counted(&rules, charge("a", 1), now).await,
        Ok(())
    );
    assert_eq!(
        limits.admit_counted(&rules, charge("a", 1), now).await,
        Ok(())
    );
    assert_eq!(
        limits.admit_counted(&rules, charge("a", 1), now).await,
        Err(LimitError::Refused {
            refused: Refused::SubjectRate,
            retry_after: 50
        })
    );
    // Another subject has its own count; the next minute starts afresh.
    assert_eq!(
        limits.admit_counted(&rules, charge("b", 1), now).await,
        Ok(())
    );
    assert_eq!(
        limits
            .admit_counted(&rules, charge("a", 1), now + Duration::from_secs(50))
            .await,
        Ok(())
    );
}

#[tokio::test]
async fn a_tenants_bytes_per_day_hold_and_a_refusal_counts_nothing() {
    let limits = Limits::in_process();
    let rules = Quotas {
        bytes_per_day: Some(100),
        tenant_per_minute: Some(10),
        ..Quotas::default()
    };
    let now = at(1_800_000_000);
    assert_eq!(
        limits.admit_counted(&rules, charge("a", 60), now).await,
        Ok(())
    );
    assert_eq!(
        limits.admit_counted(&rules, charge("b", 41), now).await,
        Err(LimitError::Refused {
            refused: Refused::Quota { remaining: 40 },
            retry_after: 86_400 - 1_800_000_000 % 86_400
        })
    );
    assert_eq!(
        limits.admit_counted(&rules, charge("b", 40), now).await,
        Ok(())
    );
    let usage = limits.usage("acme", "b", now).await.unwrap();
    assert_eq!(
        (
            usage.bytes_today,
            usage.tenant_this_minute,
            usage.subject_this_minute
        ),
        (100, 2, 1),
        "the refused ticket counted nothing"
    );
}

#[tokio::test]
async fn open_uploads_are_bounded_released_and_expire() {
    let limits = Limits::in_process();
    let rules = Quotas {
        open_uploads: Some(1),
        ..Quotas::default()
    };
    let now = at(1_800_000_000);
    let deadline = now + Duration::from_secs(600);
    let upload = |key| Charge {
        upload: Some((key, deadline)),
        ..charge("a", 10)
    };
    assert_eq!(
        limits.admit_counted(&rules, upload("k1"), now).await,
        Ok(())
    );
    assert_eq!(
        limits.admit_counted(&rules, upload("k2"), now).await,
        Err(LimitError::Refused {
            refused: Refused::OpenUploads,
            retry_after: 600
        })
    );
    limits.release("acme", "a", "k1").await;
    assert_eq!(
        limits.admit_counted(&rules, upload("k2"), now).await,
        Ok(())
    );
    // Never completed nor aborted: the place frees itself at the deadline.
    assert_eq!(
        limits
            .admit_counted(&rules, upload("k3"), deadline + Duration::from_secs(1))
            .await,
        Ok(())
    );
}

#[test]
fn a_bad_redis_url_is_refused_in_words_without_the_password() {
    let settings = LimitsSettings {
        redis_url: Some("http://user:hunter2@example.invalid".to_owned()),
        key_prefix: default_prefix(),
        timeout_ms: 50,
    };
    assert!(
        !format!("{settings:?}").contains("hunter2"),
        "Debug shows no password"
    );
    let error = Limits::from_settings(&settings).unwrap_err();
    assert!(error.contains("limits.redis_url"), "{error}");
    assert!(!error.contains("hunter2"), "{error}");
    let slow = LimitsSettings {
        redis_url: Some("redis://127.0.0.1:6379".to_owned()),
        timeout_ms: 0,
        ..settings
    };
    assert!(
        Limits::from_settings(&slow)
            .unwrap_err()
            .contains("timeout_ms")
    );
}

#[test]
fn every_key_of_a_tenant_shares_its_cluster_slot() {
    let keys = charge_keys("p:", "acme", "user:1", Windows::at(at(120)));
    assert_eq!(keys[0], "p:{acme}:sm:2:user:1");
    assert!(keys.iter().all(|k| k.starts_with("p:{acme}:")));
}

#[tokio::test]
async fn a_counted_ticket_says_what_its_charge_left_used() {
    let limits = Limits::in_process();
    let rules = Quotas {
        subject_per_minute: Some(5),
        bytes_per_day: Some(10_000),
        ..Quotas::default()
    };
    let now = at(1_800_000_000 + 10);
    let first = limits.admit(&rules, charge("ann", 300), None, now).await;
    let second = limits.admit(&rules, charge("ann", 200), None, now).await;
    let other = limits.admit(&rules, charge("bob", 100), None, now).await;
    let used = |r: Result<Option<Used>, LimitError>| r.unwrap().unwrap();
    let (first, other) = (used(first), used(other));
    assert_eq!((first.subject, first.bytes), (1, 300));
    let second = used(second);
    assert_eq!((second.subject, second.tenant, second.bytes), (2, 2, 500));
    assert_eq!(
        (second.minute_left, second.day_left),
        (50, 86_400 - 1_800_000_010 % 86_400)
    );
    assert_eq!((other.subject, other.tenant), (1, 3));
    // Without limits nothing is counted, so nothing is told.
    let none = limits
        .admit(&Quotas::default(), charge("ann", 1), None, now)
        .await;
    assert_eq!(none, Ok(None));
}
