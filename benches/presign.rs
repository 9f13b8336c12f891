//! Tickets per second of the presign core on one core, with a ticket like the service
//! issues (size range, content type, metadata, ACL, status, a `${filename}`-free key).
//! `bench/core.sh` runs this and the seed's benchmark together and prints the ratio.
//! `checksum/*` is what a declared checksum costs a ticket: the client's base64 checked,
//! two more pinned fields, a longer policy; the target is at most ~10 % over `plain`.

use std::hint::black_box;
use std::time::{Duration, Instant, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use s3_presigned_post::{
    Addressing, BucketName, Checksum, ChecksumAlgorithm, Condition, Credentials, ObjectKey,
    PostRequest, Presigner, Region, SigningKey,
};

fn typical_request() -> PostRequest {
    PostRequest::new(
        BucketName::new("acme-uploads").unwrap(),
        ObjectKey::new("acme/user-42/0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f/holiday_photo.jpg")
            .unwrap(),
    )
    .condition(Condition::content_length_range(1, 26_214_400).unwrap())
    .field("Content-Type", "image/jpeg")
    .unwrap()
    .field("x-amz-meta-album", "2026")
    .unwrap()
    .field("acl", "private")
    .unwrap()
    .field("success_action_status", "201")
    .unwrap()
    .expires_in(Duration::from_secs(300))
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let presigner = Presigner::new(Region::new("us-east-1").unwrap(), Addressing::aws()).unwrap();
    let credentials = Credentials::new(
        "AKIAIOSFODNN7EXAMPLE",
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        None,
    )
    .unwrap();
    let request = typical_request();
    let now = SystemTime::now();

    let mut group = c.benchmark_group("presign");
    group.bench_function("ticket", |b| {
        b.iter(|| {
            presigner
                .presign(black_box(&credentials), black_box(&request), black_box(now))
                .unwrap()
        })
    });
    group.bench_function("signing_key_derivation", |b| {
        let region = Region::new("us-east-1").unwrap();
        b.iter(|| SigningKey::derive(black_box("secret"), black_box(now), &region))
    });
    group.finish();

    // Building the request is part of each ticket here, as in the service.
    let sha256 = "xwGN7D1CJO8OjIrCG8yGDbcD126+dPE7yx5C2csNeso=";
    let plain = || {
        let request = typical_request();
        presigner
            .presign(&credentials, black_box(&request), now)
            .unwrap()
    };
    let declared = || {
        let checksum = Checksum::new(ChecksumAlgorithm::Sha256, black_box(sha256)).unwrap();
        let request = typical_request().checksum(checksum).unwrap();
        presigner
            .presign(&credentials, black_box(&request), now)
            .unwrap()
    };
    let mut group = c.benchmark_group("checksum");
    group.bench_function("plain", |b| b.iter(plain));
    group.bench_function("sha256", |b| b.iter(declared));
    group.bench_function("parse_only", |b| {
        b.iter(|| Checksum::new(ChecksumAlgorithm::Sha256, black_box(sha256)).unwrap())
    });
    // Each against `plain` in alternating batches of 64, so that a noisy neighbour slows
    // both alike: criterion times the other one; the ratios are printed at the end.
    // `same_bytes` adds two ordinary fields as long as the checksum's: what the bytes
    // alone cost.
    let same_bytes = || {
        let request = typical_request()
            .field("x-amz-meta-checksum-algo", "SHA256")
            .unwrap()
            .field("x-amz-meta-checksum-sha2", black_box(sha256))
            .unwrap();
        presigner
            .presign(&credentials, black_box(&request), now)
            .unwrap()
    };
    let mut declared_totals = (Duration::ZERO, Duration::ZERO);
    group.bench_function("sha256_interleaved", |b| {
        b.iter_custom(|iters| interleave(iters, &plain, &declared, &mut declared_totals))
    });
    let mut bytes_totals = (Duration::ZERO, Duration::ZERO);
    group.bench_function("same_bytes_interleaved", |b| {
        b.iter_custom(|iters| interleave(iters, &plain, &same_bytes, &mut bytes_totals))
    });
    group.finish();
    for (name, (base, other)) in [("sha256", declared_totals), ("same_bytes", bytes_totals)] {
        if !base.is_zero() {
            let ratio = other.as_secs_f64() / base.as_secs_f64();
            println!("checksum/{name} over checksum/plain, interleaved: {ratio:.3}x");
        }
    }
}

/// Runs `iters` of `base` and of `other` in alternating batches, adds both times to
/// `totals` and answers `other`'s.
fn interleave<T>(
    iters: u64,
    base: &impl Fn() -> T,
    other: &impl Fn() -> T,
    totals: &mut (Duration, Duration),
) -> Duration {
    let mut other_time = Duration::ZERO;
    let mut done = 0;
    while done < iters {
        let batch = (iters - done).min(64);
        let start = Instant::now();
        for _ in 0..batch {
            black_box(base());
        }
        totals.0 += start.elapsed();
        let start = Instant::now();
        for _ in 0..batch {
            black_box(other());
        }
        let elapsed = start.elapsed();
        totals.1 += elapsed;
        other_time += elapsed;
        done += batch;
    }
    other_time
}

criterion_group!(benches, bench);
criterion_main!(benches);
