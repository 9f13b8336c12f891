// The Node peer for bench/load.sh: the same job as upload-tickets' POST /uploads
// (verify an HS256 JWT, apply the same tenant rule, same key scheme, sign a presigned
// POST), done the way a team would today with Express, jsonwebtoken and the seed.
// Usage: BENCH_JWT_SECRET=... node server.mjs 127.0.0.1 18082
// With BENCH_JWT_PUBLIC_KEY=<PEM file> it verifies RS256 / ES256 tokens with that key
// instead (bench/tokens.sh), as a team behind an identity provider would.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

import { S3Client } from "@aws-sdk/client-s3";
import { createPresignedPost } from "@aws-sdk/s3-presigned-post";
import express from "express";
import jwt from "jsonwebtoken";

const [host = "127.0.0.1", port = "18082"] = process.argv.slice(2);
const publicKey = process.env.BENCH_JWT_PUBLIC_KEY;
const secret = publicKey ? readFileSync(publicKey) : process.env.BENCH_JWT_SECRET;
if (!secret) throw new Error("BENCH_JWT_SECRET is not set");
const algorithms = publicKey ? ["RS256", "ES256"] : ["HS256"];

const tenant = {
  id: "bench",
  bucket: "bench-uploads",
  minSize: 1,
  maxSize: 26214400,
  contentTypes: [/^image\/[^/]+$/, /^application\/pdf$/],
  metadataKeys: ["album"],
  defaultExpiresIn: 300,
  maxExpiresIn: 3600,
};
const client = new S3Client({
  region: "us-east-1",
  credentials: { accessKeyId: "AKIAIOSFODNN7EXAMPLE", secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY" },
});

const problem = (res, status, code, detail) =>
  res.status(status).type("application/problem+json").json({ type: `urn:upload-tickets:problem:${code}`, status, code, detail });

const app = express();
app.use(express.json({ limit: "16kb" }));
app.post("/uploads", async (req, res) => {
  const auth = req.get("authorization") ?? "";
  let claims;
  try {
    claims = jwt.verify(auth.replace(/^Bearer /, ""), secret, {
      algorithms, issuer: "https://id.bench/", audience: "upload-tickets",
    });
  } catch {
    return problem(res, 401, "invalid_token", "invalid token");
  }
  if (!String(claims.scope ?? "").split(" ").includes("uploads:write")) return problem(res, 403, "insufficient_scope", "scope");
  if (claims.tenant !== tenant.id) return problem(res, 403, "tenant_unknown", "tenant");
  const { filename, content_type: contentType, size, metadata = {}, expires_in: expiresIn } = req.body ?? {};
  if (typeof filename !== "string" || !filename) return problem(res, 400, "invalid_request", "filename");
  if (!tenant.contentTypes.some((p) => p.test(contentType))) return problem(res, 422, "content_type_not_allowed", "type");
  if (size !== undefined && (size > tenant.maxSize || size < tenant.minSize)) return problem(res, 422, "file_too_large", "size");
  const fields = { "Content-Type": contentType };
  for (const [k, v] of Object.entries(metadata)) {
    if (!tenant.metadataKeys.includes(k.toLowerCase())) return problem(res, 422, "metadata_not_allowed", k);
    fields[`x-amz-meta-${k.toLowerCase()}`] = String(v);
  }
  fields.acl = "private";
  fields.success_action_status = "201";
  const safeName = filename.normalize("NFC").replace(/[^\p{L}\p{N}._-]+/gu, "_").replace(/^[._]+/, "").slice(0, 200);
  const sub = encodeURIComponent(claims.sub).replace(/%/g, "=");
  const key = `${tenant.id}/${sub}/${randomUUID()}/${safeName}`;
  const expires = Math.min(expiresIn ?? tenant.defaultExpiresIn, tenant.maxExpiresIn);
  const [min, max] = size === undefined ? [tenant.minSize, tenant.maxSize] : [size, size];
  const post = await createPresignedPost(client, {
    Bucket: tenant.bucket, Key: key, Conditions: [["content-length-range", min, max]], Fields: fields, Expires: expires,
  });
  res.status(201).set("cache-control", "no-store").json({
    method: "POST", url: post.url, fields: post.fields, key, bucket: tenant.bucket,
    expires_at: new Date(Date.now() + expires * 1000).toISOString().replace(/\.\d{3}Z$/, "Z"),
    min_size: min, max_size: max,
  });
});
app.listen(Number(port), host);
