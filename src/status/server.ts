/**
 * The optional status listener (`[status] listen_addr`): `/healthz` (the
 * process is up), `/readyz` (watch stream connected with INIT seen, mailer
 * healthy; else 503 with a JSON reason) and `/metrics` (Prometheus text).
 *
 * The listener has no authentication, so what it serves is built to be
 * harmless: a reason on `/readyz` is a host and a short code
 * (`mailer: smtp.example.com:587 transient failure (EAUTH)`), never a
 * server's answer, which may echo a credential.
 */
import { isWildcardHost } from "../lib/net_address.ts";
import type { PromMetrics } from "./metrics.ts";

/** What `/readyz` may say about a failure: where (`host:port`) and a short code. */
export interface FailureSummary {
  /** The server or API, as configured (`smtp.example.com:587`, `teleport.example.com:443`). */
  readonly server?: string | undefined;
  /** A machine code (`EAUTH`, `HTTP_429`, `transient`). */
  readonly code?: string | undefined;
}

/** A code as it may appear: a word of letters, digits, `_`, `.` or `-`. */
const CODE = /^[A-Za-z0-9_.-]{1,64}$/;
/** A server as it may appear: a host name or address with an optional port, no user info. */
const SERVER = /^[A-Za-z0-9._:[\]-]{1,255}$/;

function summary(failure: FailureSummary, what: string): string {
  const server = failure.server !== undefined && SERVER.test(failure.server)
    ? failure.server
    : "unknown";
  const code = failure.code !== undefined && CODE.test(failure.code) ? failure.code : "unknown";
  return `${server} ${what} (${code})`;
}

/** What readiness depends on; updated by the plugin as things happen. */
export class Readiness {
  #watchError: string | undefined = "not connected yet";
  #mailerError: string | undefined = "not checked yet";

  /** The watch stream is open (INIT seen). */
  watchUp(): void {
    this.#watchError = undefined;
  }

  /** The watch stream is gone: the Teleport address and a kind (`transient`, `denied`…). */
  watchDown(failure: FailureSummary): void {
    this.#watchError = summary(failure, "watch stream lost");
  }

  /** The mailer answered (health check passed or an email was accepted). */
  mailerUp(): void {
    this.#mailerError = undefined;
  }

  /**
   * The mailer failed for a reason that may pass. Only `server` and `code`
   * are kept (a `MailError` can be passed as it is).
   */
  mailerDown(failure: FailureSummary): void {
    this.#mailerError = summary(failure, "transient failure");
  }

  /** Why the plugin is not ready; empty when it is. */
  reasons(): string[] {
    const out: string[] = [];
    if (this.#watchError !== undefined) out.push(`teleport: ${this.#watchError}`);
    if (this.#mailerError !== undefined) out.push(`mailer: ${this.#mailerError}`);
    return out;
  }
}

/**
 * The warning for a status listener bound to every interface (`0.0.0.0`,
 * `::`): it has no authentication. `undefined` for any other address, which
 * the operator chose on purpose.
 */
export function statusListenerWarning(listenAddr: string): string | undefined {
  const host = /^\[?([^\]]*)\]?:\d+$/.exec(listenAddr)?.[1];
  if (host === undefined || !isWildcardHost(host)) return undefined;
  return `Status listener on ${listenAddr} listens on every network interface and has no ` +
    "authentication: whoever reaches the port reads /metrics and /readyz; bind status.listen_addr " +
    "to 127.0.0.1 or a private address, or firewall the port";
}

export interface StatusServer {
  /** The bound address, `host:port`. */
  readonly addr: string;
  close(): Promise<void>;
}

/** Bounds of the listener: whoever reaches the port must not hold the plugin's memory or its stop. */
export interface StatusLimits {
  /** Connections served at once; more are closed at once (probes and a scraper need a few). */
  readonly maxConnections: number;
  /** The longest request head (request line and header fields). */
  readonly maxHeadBytes: number;
  /** How long a connection may take to send its head and read the answer. */
  readonly timeoutMs: number;
}

export const STATUS_LIMITS: StatusLimits = {
  maxConnections: 64,
  maxHeadBytes: 8 * 1024,
  timeoutMs: 5_000,
};

const REASONS: Record<number, string> = {
  200: "OK",
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  431: "Request Header Fields Too Large",
  503: "Service Unavailable",
};

/** After an accept that failed for a reason that may pass (EMFILE), the next try. */
const ACCEPT_RETRY_MS = 100;

const LF = 10;
const CR = 13;

/**
 * Where the blank line that ends a request head starts in `bytes` (the line
 * feed before it), or -1: CRLF CRLF, or bare line feeds, which HTTP/1.1
 * lets a server accept.
 */
function headEnd(bytes: Uint8Array, from: number): number {
  for (let i = Math.max(0, from); i < bytes.length; i++) {
    if (bytes[i] !== LF) continue;
    if (bytes[i + 1] === LF || (bytes[i + 1] === CR && bytes[i + 2] === LF)) return i;
  }
  return -1;
}

interface Answer {
  readonly status: number;
  readonly contentType: string;
  readonly body: string;
}

const json = (status: number, body: unknown): Answer => ({
  status,
  contentType: "application/json",
  body: JSON.stringify(body) + "\n",
});

/**
 * Starts the listener on `listenAddr` (`host:port`, port 0 = any). A small
 * HTTP/1.1 server of its own rather than `Deno.serve`, which has no bound on
 * the time a request head may take nor on open connections, and whose
 * graceful shutdown waits for a request body that never ends: each
 * connection gets one answer and is closed (`connection: close`).
 */
export function startStatusServer(
  listenAddr: string,
  readiness: Readiness,
  metrics: PromMetrics,
  limits: StatusLimits = STATUS_LIMITS,
): StatusServer {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(listenAddr);
  if (!m) throw new Error(`Invalid status listen address "${listenAddr}"`);
  const listener = Deno.listen({ hostname: m[1]!, port: Number(m[2]) });
  /** Open connections, oldest first, and whether each is still sending its head. */
  const open = new Map<Deno.Conn, { reading: boolean }>();

  /** The answer to a request whose first line is `requestLine` (`GET /readyz HTTP/1.1`). */
  async function answerFor(requestLine: string): Promise<Answer> {
    const [method = "", target = ""] = requestLine.split(" ");
    if (method !== "GET" && method !== "HEAD") return json(405, { error: "method not allowed" });
    let path: string;
    try {
      path = new URL(target, "http://status").pathname;
    } catch {
      return json(400, { error: "bad request" });
    }
    if (path === "/healthz") return json(200, { status: "ok" });
    if (path === "/readyz") {
      const reasons = readiness.reasons();
      return reasons.length === 0
        ? json(200, { status: "ready" })
        : json(503, { status: "not ready", reasons });
    }
    if (path === "/metrics") {
      const { body, contentType } = await metrics.render();
      return { status: 200, contentType, body };
    }
    return json(404, { error: "not found" });
  }

  async function serve(conn: Deno.Conn, state: { reading: boolean }): Promise<void> {
    const buffer = new Uint8Array(limits.maxHeadBytes);
    let filled = 0;
    let end = -1;
    while (end < 0 && filled < buffer.length) {
      const n = await conn.read(buffer.subarray(filled));
      if (n === null) return;
      // The blank line may straddle two reads.
      end = headEnd(buffer.subarray(0, filled + n), filled - 2);
      filled += n;
    }
    state.reading = false;
    const head = new TextDecoder().decode(buffer.subarray(0, end < 0 ? filled : end));
    const requestLine = head.split("\n", 1)[0]!.replace(/\r$/, "");
    const answer = end < 0
      ? json(431, { error: "request head too large" })
      : /^[A-Z]+ \S+ HTTP\/1\.[01]$/.test(requestLine)
      ? await answerFor(requestLine)
      : json(400, { error: "bad request" });
    const body = new TextEncoder().encode(answer.body);
    const lines = `HTTP/1.1 ${answer.status} ${REASONS[answer.status] ?? ""}\r\n` +
      `content-type: ${answer.contentType}\r\ncontent-length: ${body.length}\r\n` +
      "cache-control: no-store\r\nconnection: close\r\n\r\n";
    // HEAD: the same header fields, no body.
    const bytes = new TextEncoder().encode(
      requestLine.startsWith("HEAD ") ? lines : lines + answer.body,
    );
    for (let written = 0; written < bytes.length;) {
      written += await conn.write(bytes.subarray(written));
    }
  }

  let closing = false;
  const accepting = (async () => {
    while (!closing) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (error) {
        if (closing || error instanceof Deno.errors.BadResource) return;
        // Out of file descriptors, a connection reset before it was taken...: the listener
        // stays; the next accept may succeed.
        await new Promise((resolve) => setTimeout(resolve, ACCEPT_RETRY_MS));
        continue;
      }
      if (closing) {
        closeQuietly(conn);
        return;
      }
      if (open.size >= limits.maxConnections) {
        // Full: the oldest connection still sending its head goes (a probe sends its head at
        // once, so whoever holds connections open loses them, not the probes).
        const slowest = [...open].find(([, s]) => s.reading)?.[0];
        if (slowest === undefined) {
          closeQuietly(conn);
          continue;
        }
        closeQuietly(slowest);
        open.delete(slowest);
      }
      const state = { reading: true };
      open.set(conn, state);
      const timer = setTimeout(() => closeQuietly(conn), limits.timeoutMs);
      serve(conn, state).catch(() => {}).finally(() => {
        clearTimeout(timer);
        open.delete(conn);
        closeQuietly(conn);
      });
    }
  })();

  const address = listener.addr as Deno.NetAddr;
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return {
    addr: `${host}:${address.port}`,
    async close() {
      closing = true;
      closeQuietly(listener);
      for (const conn of open.keys()) closeQuietly(conn);
      await accepting;
    },
  };
}

function closeQuietly(closer: { close(): void }): void {
  try {
    closer.close();
  } catch {
    // Closed already.
  }
}
