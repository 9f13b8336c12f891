// Runs the seed package, @aws-sdk/s3-presigned-post, on the cases given as a JSON array on
// standard input and prints a JSON array of results in the same order.
//
// Each case: { now: RFC 3339, region, credentials: {access_key_id, secret_access_key,
// session_token?}, endpoint?, force_path_style?, dual_stack?, accelerate?, fips?,
// bucket, key, conditions?, fields?: [[name, value], ...], expires? }. Fields come as
// pairs because their order is part of the output and JSON objects do not keep it.
// Each result: { url, fields: [[name, value], ...] } (pairs keep the seed's field order),
// or { error } when the seed throws.
import { S3Client } from "@aws-sdk/client-s3";
import { createPresignedPost } from "@aws-sdk/s3-presigned-post";

const realNow = Date.now;

async function run(c) {
  const frozen = Date.parse(c.now);
  if (Number.isNaN(frozen)) throw new Error(`bad now: ${c.now}`);
  Date.now = () => frozen;
  try {
    const client = new S3Client({
      region: c.region,
      credentials: {
        accessKeyId: c.credentials.access_key_id,
        secretAccessKey: c.credentials.secret_access_key,
        ...(c.credentials.session_token ? { sessionToken: c.credentials.session_token } : {}),
      },
      ...(c.endpoint ? { endpoint: c.endpoint } : {}),
      forcePathStyle: Boolean(c.force_path_style),
      useDualstackEndpoint: Boolean(c.dual_stack),
      useAccelerateEndpoint: Boolean(c.accelerate),
      useFipsEndpoint: Boolean(c.fips),
    });
    const out = await createPresignedPost(client, {
      Bucket: c.bucket,
      Key: c.key,
      ...(c.conditions ? { Conditions: c.conditions } : {}),
      ...(c.fields ? { Fields: Object.fromEntries(c.fields) } : {}),
      ...(c.expires !== undefined ? { Expires: c.expires } : {}),
    });
    return { url: out.url, fields: Object.entries(out.fields) };
  } catch (e) {
    return { error: String(e && e.message ? e.message : e) };
  } finally {
    Date.now = realNow;
  }
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const cases = JSON.parse(input);
const results = [];
for (const c of cases) results.push(await run(c));
process.stdout.write(JSON.stringify(results));
