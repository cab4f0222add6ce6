/**
 * A fake Mailgun API for tests on 127.0.0.1:0, speaking just enough of
 * `POST /v3/<domain>/messages`: multipart or urlencoded form, basic auth
 * `api:<key>` (401 "Forbidden" otherwise, like Mailgun), unknown domain 404,
 * `{ id: "<...@domain>", message: "Queued. Thank you." }` on success.
 * Records every request; scripted answers (429, 500, 400, a slow one...) are
 * served first, in order. Torn down hard by `close()`.
 */
import { arrivals } from "./arrivals.ts";

/** Default wait of `waitFor`. */
const DEFAULT_WAIT_MS = 5_000;

export interface ScriptedAnswer {
  status: number;
  /** JSON-encoded unless a string. */
  body?: unknown;
  /** Answer only after this long (to exercise client timeouts). */
  delayMs?: number;
  /** Response headers, e.g. `{ "retry-after": "7" }`. */
  headers?: Record<string, string>;
}

export interface FakeMailgunOptions {
  /** The API key the fake accepts. */
  apiKey: string;
  /** Domains the fake knows; default `["mg.example.com"]`. */
  domains?: string[];
}

export interface MailgunRequest {
  method: string;
  path: string;
  /** The `<domain>` of `/v3/<domain>/messages`, if the path has that shape. */
  domain?: string;
  /** Decoded basic-auth credentials, if any. */
  auth?: { username: string; password: string };
  contentType: string;
  /** Form fields in order. */
  fields: Array<[string, string]>;
  /** First value of a form field. */
  field(name: string): string | undefined;
  /** The answer the fake gave. */
  status: number;
}

export interface FakeMailgun {
  /** Base URL to use as `api_base`, e.g. `http://127.0.0.1:41234`. */
  readonly url: string;
  readonly requests: MailgunRequest[];
  /** Ids handed out for accepted messages, with their brackets, in order. */
  readonly ids: string[];
  /** Queues answers served (instead of the normal handling) to the next requests. */
  script(...answers: ScriptedAnswer[]): void;
  /** Resolves once at least `n` requests arrived; rejects after `timeoutMs`. */
  waitFor(n: number, timeoutMs?: number): Promise<MailgunRequest[]>;
  close(): Promise<void>;
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return typeof body === "string"
    ? new Response(body, { status, headers: { "content-type": "text/plain", ...headers } })
    : Response.json(body ?? {}, { status, headers });
}

function basicAuth(header: string | null): { username: string; password: string } | undefined {
  const match = /^Basic\s+(.+)$/i.exec(header ?? "");
  if (!match?.[1]) return undefined;
  const decoded = atob(match[1]);
  const colon = decoded.indexOf(":");
  if (colon < 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

/** Starts the fake Mailgun API; see `FakeMailgunOptions`. */
export function startMailgunServer(opts: FakeMailgunOptions): FakeMailgun {
  const domains = opts.domains ?? ["mg.example.com"];
  const requests: MailgunRequest[] = [];
  const ids: string[] = [];
  const scripted: ScriptedAnswer[] = [];
  const answered = arrivals(requests, "requests");
  const controller = new AbortController();

  async function answer(req: Request, record: MailgunRequest): Promise<Response> {
    const next = scripted.shift();
    if (next) {
      if (next.delayMs) {
        await new Promise((resolve) => setTimeout(resolve, next.delayMs));
      }
      return json(next.status, next.body, next.headers);
    }
    const auth = record.auth;
    if (!auth || auth.username !== "api" || auth.password !== opts.apiKey) {
      return json(401, "Forbidden");
    }
    if (req.method !== "POST" || record.domain === undefined) {
      return json(404, { message: "Not Found" });
    }
    if (!domains.includes(record.domain)) {
      return json(404, { message: `Domain not found: ${record.domain}` });
    }
    for (const name of ["from", "to"]) {
      if (!record.field(name)) return json(400, { message: `${name} parameter is missing` });
    }
    if (!record.field("text") && !record.field("html")) {
      return json(400, { message: "Need at least one of 'text' or 'html' parameters specified" });
    }
    const random = crypto.randomUUID().replaceAll("-", "").slice(0, 16).toUpperCase();
    const stamp = new Date().toISOString().replace(/\D/g, "").slice(0, 14);
    const id = `<${stamp}.${random}@${record.domain}>`;
    ids.push(id);
    return json(200, { id, message: "Queued. Thank you." });
  }

  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, signal: controller.signal, onListen() {} },
    async (req) => {
      const url = new URL(req.url);
      const contentType = req.headers.get("content-type") ?? "";
      const fields: Array<[string, string]> = [];
      if (/multipart\/form-data|application\/x-www-form-urlencoded/.test(contentType)) {
        for (const [name, value] of await req.formData()) {
          fields.push([name, typeof value === "string" ? value : await value.text()]);
        }
      }
      const domain = /^\/v3\/([^/]+)\/messages$/.exec(url.pathname)?.[1];
      const auth = basicAuth(req.headers.get("authorization"));
      const record: MailgunRequest = {
        method: req.method,
        path: url.pathname,
        contentType,
        fields,
        field: (name) => fields.find(([n]) => n === name)?.[1],
        status: 0,
        ...(domain === undefined ? {} : { domain: decodeURIComponent(domain) }),
        ...(auth === undefined ? {} : { auth }),
      };
      const response = await answer(req, record);
      record.status = response.status;
      requests.push(record);
      answered.arrived();
      return response;
    },
  );

  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    requests,
    ids,
    script(...answers) {
      scripted.push(...answers);
    },
    async waitFor(n, timeoutMs = DEFAULT_WAIT_MS) {
      await answered.waitFor(n, timeoutMs);
      return requests;
    },
    async close() {
      controller.abort();
      await server.finished;
    },
  };
}
