// Checks webhook deliveries with the Standard Webhooks reference library (npm
// `standardwebhooks`), not with upload-tickets' own code: argv[2] is the secret
// (`whsec_...`), argv[3] a JSON array of {id, timestamp, signature, body}. Prints, per
// delivery, whether it verifies as received and whether a copy with one byte of the
// body changed is refused (the check can fail).
import { Webhook } from "standardwebhooks";

const [secret, deliveries] = process.argv.slice(2);
const hook = new Webhook(secret);
const verifies = (d, body) => {
  try {
    hook.verify(body, {
      "webhook-id": d.id,
      "webhook-timestamp": String(d.timestamp),
      "webhook-signature": d.signature,
    });
    return true;
  } catch {
    return false;
  }
};
const results = JSON.parse(deliveries).map((d) => ({
  id: d.id,
  verified: verifies(d, d.body),
  tamperedRefused: !verifies(d, d.body.replace(/.$/, " ")),
}));
process.stdout.write(JSON.stringify(results));
