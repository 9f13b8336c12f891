// The seed's createPresignedPost, in-process, on the same ticket as benches/presign.rs.
// Prints one JSON line: {calls_per_second, us_per_call, rounds}. Bounded: ~4 s in all.
import { createRequire } from "node:module";

const require = createRequire(new URL("../tests/seed/package.json", import.meta.url));
const { S3Client } = require("@aws-sdk/client-s3");
const { createPresignedPost } = require("@aws-sdk/s3-presigned-post");

const client = new S3Client({
  region: "us-east-1",
  credentials: {
    accessKeyId: "AKIAIOSFODNN7EXAMPLE",
    secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
  },
});
const params = {
  Bucket: "acme-uploads",
  Key: "acme/user-42/0f8c2d1e-5b7a-4c3e-9d2f-6a1b8e7c4d3f/holiday_photo.jpg",
  Conditions: [["content-length-range", 1, 26214400]],
  Fields: {
    "Content-Type": "image/jpeg",
    "x-amz-meta-album": "2026",
    acl: "private",
    success_action_status: "201",
  },
  Expires: 300,
};

async function round(ms) {
  const end = performance.now() + ms;
  let calls = 0;
  const start = performance.now();
  while (performance.now() < end) {
    for (let i = 0; i < 100; i++) await createPresignedPost(client, params);
    calls += 100;
  }
  return calls / ((performance.now() - start) / 1000);
}

await round(500); // warm-up: JIT, credential and key caches
const rounds = [];
for (let i = 0; i < 5; i++) rounds.push(await round(700));
rounds.sort((a, b) => a - b);
const median = rounds[Math.floor(rounds.length / 2)];
console.log(JSON.stringify({ calls_per_second: median, us_per_call: 1e6 / median, rounds }));
