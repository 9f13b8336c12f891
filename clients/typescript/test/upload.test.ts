// The client against a real service and a strict store: `upload-tickets dev` with its own
// store, started by tests/api/client.rs, which passes its address and tokens:
//   UPLOAD_TICKETS_URL, UPLOAD_TICKETS_TOKEN (tenant dev: POST), UPLOAD_TICKETS_PUT_TOKEN.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { test } from "node:test";

import { type MultipartUpload, type UploadOptions, UploadError, resume, upload, usage } from "../src/index.js";

const baseUrl = required("UPLOAD_TICKETS_URL");
const token = required("UPLOAD_TICKETS_TOKEN");
const putToken = required("UPLOAD_TICKETS_PUT_TOKEN");
const MiB = 1024 * 1024;

function required(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run through tests/api/client.rs`);
  return value;
}

/** The bytes under `key`, through the demo listing's download link. */
async function readBack(key: string, as: string = token): Promise<Buffer> {
  const listing = await (await fetch(`${baseUrl}/demo/objects`, { headers: { authorization: `Bearer ${as}` } })).json();
  const object = (listing as { objects: { key: string; download_url: string }[] }).objects.find((o) => o.key === key);
  assert.ok(object, `${key} is listed`);
  const response = await fetch(object.download_url);
  assert.equal(response.status, 200);
  return Buffer.from(await response.arrayBuffer());
}

function file(bytes: Buffer, name: string, type = "application/octet-stream"): File {
  return new File([new Uint8Array(bytes)], name, { type });
}

test("a POST ticket uploads and reads back identical, with progress", async () => {
  const bytes = randomBytes(3000);
  const seen: number[] = [];
  const result = await upload(file(bytes, "small.bin"), { baseUrl, token, onProgress: (sent) => seen.push(sent) });
  assert.equal(result.kind, "POST");
  assert.match(result.key, /^dev\/dev-user\/.+\/small\.bin$/);
  assert.deepEqual(seen, [0, 3000]);
  assert.deepEqual(await readBack(result.key), bytes);
});

test("without a declared size the store holds the file to the tenant's range", async () => {
  const seen: unknown[] = [];
  const recording: typeof fetch = async (input, init) => {
    if (String(input) === `${baseUrl}/uploads`) seen.push(JSON.parse(String(init?.body)));
    return fetch(input, init);
  };
  const bytes = randomBytes(2000);
  const result = await upload(file(bytes, "range.bin"), { baseUrl, token, declareSize: false, fetch: recording });
  assert.equal(result.kind, "POST");
  assert.equal((seen[0] as { size?: number }).size, undefined, "no size asked for");
  assert.deepEqual(await readBack(result.key), bytes);
});

test("a PUT tenant's ticket uploads with its signed headers", async () => {
  const bytes = Buffer.from("hello from the typed client\n");
  const result = await upload(file(bytes, "note.txt", "text/plain"), { baseUrl, token: putToken });
  assert.equal(result.kind, "PUT");
  assert.deepEqual(await readBack(result.key, putToken), bytes);
});

test("a multipart upload of three parts, two at a time, a failed part retried with a fresh URL", async () => {
  const bytes = randomBytes(11 * MiB);
  let failedOnce = false;
  const calls: string[] = [];
  const flaky: typeof fetch = async (input, init) => {
    const url = String(input);
    calls.push(`${init?.method ?? "GET"} ${new URL(url).pathname}${new URL(url).search.includes("partNumber=2") ? " part 2" : ""}`);
    if (!failedOnce && init?.method === "PUT" && url.includes("partNumber=2")) {
      failedOnce = true;
      throw new TypeError("network error (injected)");
    }
    return fetch(input, init);
  };
  const progress: number[] = [];
  const options: UploadOptions = {
    baseUrl,
    token,
    multipartThreshold: MiB,
    concurrency: 2,
    fetch: flaky,
    onProgress: (sent) => progress.push(sent),
  };
  const result = await upload(file(bytes, "big.bin"), options);
  assert.equal(result.kind, "MULTIPART");
  assert.ok(failedOnce, "part 2 failed once");
  assert.ok(calls.some((c) => c.startsWith("POST") && c.endsWith("/parts")), "a fresh URL was asked for");
  assert.equal(calls.filter((c) => c.startsWith("PUT") && c.endsWith("part 2")).length, 2);
  assert.equal(calls.filter((c) => c.startsWith("PUT")).length, 4, "three parts, one sent twice");
  assert.equal(progress.at(-1), bytes.length);
  assert.deepEqual(await readBack(result.key), bytes);
});

test("an interrupted multipart upload resumes with fresh part URLs", async () => {
  const bytes = randomBytes(6 * MiB);
  const started = (await (
    await fetch(`${baseUrl}/uploads/multipart`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ filename: "resumed.bin", size: bytes.length }),
    })
  ).json()) as MultipartUpload;
  assert.equal(started.part_count, 2);
  const first = started.parts[0];
  assert.ok(first);
  const put = await fetch(first.url, { method: "PUT", body: new Uint8Array(bytes.subarray(0, started.part_size)) });
  const etag = put.headers.get("etag");
  assert.ok(etag);
  // Later (another page load): only part 2 is sent.
  const sent: string[] = [];
  const spy: typeof fetch = (input, init) => {
    if (init?.method === "PUT") sent.push(String(input));
    return fetch(input, init);
  };
  const result = await resume(file(bytes, "resumed.bin"), started, [{ part_number: 1, etag }], { baseUrl, token, fetch: spy });
  assert.equal(sent.length, 1);
  assert.match(sent[0] ?? "", /partNumber=2/);
  assert.deepEqual(await readBack(result.key), bytes);
});

test("the service's refusal comes back in words, with its code", async () => {
  await assert.rejects(upload(file(Buffer.alloc(0), "empty.txt"), { baseUrl, token }), (error: unknown) => {
    assert.ok(error instanceof UploadError);
    assert.equal(error.by, "service");
    assert.equal(error.status, 422);
    assert.equal(error.code, "file_too_small");
    assert.match(error.message, /under this tenant.s minimum/);
    return true;
  });
  await assert.rejects(upload(file(Buffer.from("x"), "x.txt"), { baseUrl, token: "not-a-token" }), {
    name: "UploadError",
    code: "invalid_token",
  });
});

test("aborting stops the upload and aborts it in the store", async () => {
  const bytes = randomBytes(6 * MiB);
  const controller = new AbortController();
  const calls: string[] = [];
  const spy: typeof fetch = async (input, init) => {
    calls.push(`${init?.method ?? "GET"} ${new URL(String(input)).pathname}`);
    if (init?.method === "PUT") controller.abort();
    return fetch(input, init);
  };
  await assert.rejects(
    upload(file(bytes, "aborted.bin"), { baseUrl, token, multipartThreshold: MiB, concurrency: 1, fetch: spy, signal: controller.signal }),
    { name: "AbortError" },
  );
  assert.ok(calls.some((c) => c.startsWith("DELETE /uploads/multipart/")), `${calls}`);
});

test("usage reports the caller's counts and limits", async () => {
  const answer = await usage({ baseUrl, token });
  assert.equal(answer.tenant, "dev");
  assert.equal(answer.subject, "dev-user");
  assert.equal(typeof answer.day.bytes.used, "number");
});
