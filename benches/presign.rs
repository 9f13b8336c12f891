//! Tickets per second of the presign core on one core, with a ticket like the service
//! issues (size range, content type, metadata, ACL, status, a `${filename}`-free key).
//! `bench/core.sh` runs this and the seed's benchmark together and prints the ratio.

use std::hint::black_box;
use std::time::{Duration, SystemTime};

use criterion::{Criterion, criterion_group, criterion_main};
use upload_tickets::presign::{
    Addressing, BucketName, Condition, Credentials, ObjectKey, PostRequest, Presigner, Region,
    SigningKey,
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
}

criterion_group!(benches, bench);
criterion_main!(benches);
