// A typed client for upload-tickets: one `upload(file, options)` for the three ticket
// kinds (POST forms, PUT URLs, multipart uploads), for browsers and Node (>= 20). The
// types come from openapi.yaml (src/schema.ts, made by openapi-typescript), so a change
// of the spec that breaks a caller breaks its build.

import type { components } from "./schema.js";

export type { components, paths } from "./schema.js";
export type UploadRequest = components["schemas"]["UploadRequest"];
export type PostTicket = components["schemas"]["Ticket"];
export type PutTicket = components["schemas"]["PutTicket"];
export type MultipartUpload = components["schemas"]["MultipartUpload"];
export type PartUrl = components["schemas"]["PartUrl"];
export type Completed = components["schemas"]["Completed"];
export type Problem = components["schemas"]["Problem"];
export type Usage = components["schemas"]["Usage"];

/** What `upload` needs besides the file. */
export interface UploadOptions {
  /** The service, e.g. `https://uploads.example.com`; default: this page's origin. */
  baseUrl?: string;
  /** The caller's bearer token (a JWT). */
  token: string;
  /** The file's name; default `file.name`. */
  filename?: string;
  /** The media type; default `file.type` (none when empty). */
  contentType?: string;
  /** `x-amz-meta-*` values the tenant allows. */
  metadata?: Record<string, string>;
  /** Declare the file's size, pinning the ticket to it (default). `false`: the ticket
   * allows the tenant's range and the store enforces it (POST tickets; PUT tickets and
   * multipart uploads always declare it). */
  declareSize?: boolean;
  /** A checksum for the store to verify (POST and PUT tickets; see the README). */
  checksum?: components["schemas"]["ChecksumDeclaration"];
  /** Multipart from this size on (bytes); default 100 MiB. */
  multipartThreshold?: number;
  /** Parts in flight at once; default 4. */
  concurrency?: number;
  /** Attempts per part beyond the first, each with a fresh URL; default 3. */
  retries?: number;
  /** Bytes confirmed by the store so far, and the total. */
  onProgress?: (sent: number, total: number) => void;
  /** Stops the upload; a multipart upload is aborted in the store. */
  signal?: AbortSignal;
  /** Another fetch (tests, instrumented clients); default the global one. */
  fetch?: typeof fetch;
}

/** What landed. */
export interface UploadResult {
  /** `POST`, `PUT` or `MULTIPART`. */
  kind: "POST" | "PUT" | "MULTIPART";
  /** The object key. */
  key: string;
  /** The bucket. */
  bucket: string;
  /** The store's ETag, when it answered one. */
  etag: string | null;
}

/** The service refused (problem+json) or the store did (S3 XML), in words. */
export class UploadError extends Error {
  /** The HTTP status. */
  readonly status: number;
  /** The service's problem code (`file_too_large`, ...) or the store's (`AccessDenied`, ...). */
  readonly code: string;
  /** Who refused. */
  readonly by: "service" | "store";

  constructor(message: string, status: number, code: string, by: "service" | "store") {
    super(message);
    this.name = "UploadError";
    this.status = status;
    this.code = code;
    this.by = by;
  }
}

/** A file: a browser `File`, or any `Blob` with a name given in the options. */
export type UploadFile = Blob & { name?: string };

/** Uploads `file` with a ticket from the service, as the caller's tenant says. */
export async function upload(file: UploadFile, options: UploadOptions): Promise<UploadResult> {
  const client = new Client(options);
  const threshold = options.multipartThreshold ?? 100 * 1024 * 1024;
  if (file.size >= threshold) return client.multipart(file);
  return client.single(file);
}

/** Resumes a multipart upload started earlier: the parts in `done` are kept, the rest are
 * sent with fresh URLs, then it completes. */
export async function resume(
  file: UploadFile,
  started: MultipartUpload,
  done: { part_number: number; etag: string }[],
  options: UploadOptions,
): Promise<UploadResult> {
  return new Client(options).multipart(file, started, done);
}

/** What the caller and their tenant have used of their limits. */
export async function usage(options: Pick<UploadOptions, "baseUrl" | "token" | "fetch">): Promise<Usage> {
  return new Client(options as UploadOptions).service<Usage>("GET", "/uploads/usage");
}

class Client {
  private readonly options: UploadOptions;
  private readonly fetch: typeof fetch;

  constructor(options: UploadOptions) {
    this.options = options;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  private url(path: string): string {
    const base = this.options.baseUrl ?? globalThis.location?.origin ?? "";
    return `${base.replace(/\/$/, "")}${path}`;
  }

  /** A call to the service: JSON in and out, problem+json as an `UploadError`. */
  async service<T>(method: string, path: string, body?: unknown): Promise<T> {
    const response = await this.fetch(this.url(path), {
      method,
      headers: {
        authorization: `Bearer ${this.options.token}`,
        ...(body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: this.options.signal,
    });
    if (response.status === 204) return undefined as T;
    const text = await response.text();
    if (!response.ok) {
      let problem: Partial<Problem> = {};
      try {
        problem = JSON.parse(text) as Problem;
      } catch {
        // Not problem+json (a gateway's page): the status says enough.
      }
      const code = problem.code ?? "http_error";
      throw new UploadError(problem.detail ?? `HTTP ${response.status}`, response.status, code, "service");
    }
    return JSON.parse(text) as T;
  }

  private request(file: UploadFile, size: boolean): UploadRequest {
    const filename = this.options.filename ?? file.name;
    if (!filename) throw new TypeError("the file has no name: pass options.filename");
    const contentType = this.options.contentType ?? (file.type || undefined);
    return {
      filename,
      ...(contentType ? { content_type: contentType } : {}),
      ...(size ? { size: file.size } : {}),
      ...(this.options.metadata ? { metadata: this.options.metadata } : {}),
      ...(this.options.checksum ? { checksum: this.options.checksum } : {}),
    };
  }

  /** One request: a POST form or a PUT URL, whichever the tenant hands out. */
  async single(file: UploadFile): Promise<UploadResult> {
    const declare = this.options.declareSize ?? true;
    const ticket = await this.service<PostTicket | PutTicket>("POST", "/uploads", this.request(file, declare));
    const total = file.size;
    this.options.onProgress?.(0, total);
    let response: Response;
    if (ticket.method === "PUT") {
      const headers = withoutLength(ticket.headers);
      response = await this.fetch(ticket.url, { method: "PUT", headers, body: file, signal: this.options.signal });
    } else {
      const form = new FormData();
      for (const [name, value] of Object.entries(ticket.fields)) form.append(name, value);
      form.append("file", file, this.options.filename ?? file.name ?? "file");
      response = await this.fetch(ticket.url, { method: "POST", body: form, signal: this.options.signal });
    }
    if (!response.ok) throw await storeError(response);
    this.options.onProgress?.(total, total);
    return { kind: ticket.method, key: ticket.key, bucket: ticket.bucket, etag: response.headers.get("etag") };
  }

  /** A multipart upload: parts in parallel, each retried with a fresh URL, then completion;
   * aborted in the store if it fails for good or the signal fires. */
  async multipart(
    file: UploadFile,
    started?: MultipartUpload,
    done: { part_number: number; etag: string }[] = [],
  ): Promise<UploadResult> {
    const upload = started ?? (await this.service<MultipartUpload>("POST", "/uploads/multipart", this.request(file, true)));
    const handle = encodeURIComponent(upload.handle);
    const etags = new Map<number, string>(done.map((p) => [p.part_number, p.etag]));
    const urls = new Map<number, PartUrl>(started ? [] : upload.parts.map((p) => [p.part_number, p]));
    const total = file.size;
    let sent = [...etags.keys()].reduce((n, part) => n + partBytes(upload, part), 0);
    this.options.onProgress?.(sent, total);
    const todo = [];
    for (let part = 1; part <= upload.part_count; part++) if (!etags.has(part)) todo.push(part);

    const fresh = async (parts: number[]) => {
      for (let i = 0; i < parts.length; i += 100) {
        const signed = await this.service<{ parts: PartUrl[] }>("POST", `/uploads/multipart/${handle}/parts`, {
          part_numbers: parts.slice(i, i + 100),
        });
        for (const p of signed.parts) urls.set(p.part_number, p);
      }
    };
    const missing = todo.filter((part) => !urls.has(part));
    try {
      if (missing.length) await fresh(missing);
      const send = async (part: number) => {
        const start = (part - 1) * upload.part_size;
        const body = file.slice(start, Math.min(start + upload.part_size, total));
        for (let attempt = 0; ; attempt++) {
          this.options.signal?.throwIfAborted();
          const url = urls.get(part);
          if (!url) throw new Error(`no URL for part ${part}`);
          try {
            const response = await this.fetch(url.url, {
              method: "PUT",
              headers: withoutLength(url.headers ?? {}),
              body,
              signal: this.options.signal,
            });
            const etag = response.headers.get("etag");
            if (response.ok && etag) {
              etags.set(part, etag);
              sent += body.size;
              this.options.onProgress?.(sent, total);
              return;
            }
            if (attempt >= (this.options.retries ?? 3)) {
              throw response.ok ? new Error(`part ${part}: the store answered no ETag (CORS must expose it)`) : await storeError(response);
            }
          } catch (error) {
            if (this.options.signal?.aborted || attempt >= (this.options.retries ?? 3)) throw error;
          }
          // A failed part gets a fresh URL: the old one may be what failed (expired).
          await fresh([part]);
        }
      };
      const queue = [...todo];
      const workers = Array.from({ length: Math.min(this.options.concurrency ?? 4, queue.length) }, async () => {
        for (let part = queue.shift(); part !== undefined; part = queue.shift()) await send(part);
      });
      await Promise.all(workers);
      const parts = [...etags.entries()].sort(([a], [b]) => a - b).map(([part_number, etag]) => ({ part_number, etag }));
      const completed = await this.service<Completed>("POST", `/uploads/multipart/${handle}/complete`, { parts });
      return { kind: "MULTIPART", key: completed.key, bucket: completed.bucket, etag: completed.etag };
    } catch (error) {
      // Nobody will complete it: do not leave its parts (and their cost) in the store.
      await this.abort(handle);
      throw error;
    }
  }

  private async abort(handle: string): Promise<void> {
    try {
      const token = this.options.token;
      await this.fetch(this.url(`/uploads/multipart/${handle}`), {
        method: "DELETE",
        headers: { authorization: `Bearer ${token}` },
      });
    } catch {
      // Best effort: the bucket's lifecycle rule drops what is left.
    }
  }
}

/** Bytes of `part` (1-based) of `upload`. */
/** The signed headers to send: the runtime sets content-length from the body itself
 * (browsers refuse to have it set), and the body is exactly the signed length. */
function withoutLength(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name !== "content-length"));
}

function partBytes(upload: MultipartUpload, part: number): number {
  const start = (part - 1) * upload.part_size;
  return Math.max(0, Math.min(upload.part_size, upload.size - start));
}

/** The store's XML error, in words. */
async function storeError(response: Response): Promise<UploadError> {
  const text = await response.text().catch(() => "");
  const code = /<Code>([^<]*)<\/Code>/.exec(text)?.[1] ?? "http_error";
  const raw = /<Message>([^<]*)<\/Message>/.exec(text)?.[1];
  const message = raw
    ?.replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&amp;/g, "&");
  const words = `The store refused the upload (HTTP ${response.status}, ${code})${message ? `: ${message}` : "."}`;
  return new UploadError(words, response.status, code, "store");
}
