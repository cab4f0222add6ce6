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

/** Starts the listener on `listenAddr` (`host:port`, port 0 = any). */
export function startStatusServer(
  listenAddr: string,
  readiness: Readiness,
  metrics: PromMetrics,
): StatusServer {
  const m = /^\[?([^\]]*)\]?:(\d+)$/.exec(listenAddr);
  if (!m) throw new Error(`Invalid status listen address "${listenAddr}"`);
  const json = (status: number, body: unknown) =>
    new Response(JSON.stringify(body) + "\n", {
      status,
      headers: { "content-type": "application/json" },
    });
  const server = Deno.serve({
    hostname: m[1]!,
    port: Number(m[2]),
    onListen: () => {},
  }, async (request) => {
    const path = new URL(request.url).pathname;
    if (request.method !== "GET" && request.method !== "HEAD") {
      return json(405, { error: "method not allowed" });
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
      return new Response(body, { headers: { "content-type": contentType } });
    }
    return json(404, { error: "not found" });
  });
  const address = server.addr as Deno.NetAddr;
  const host = address.hostname.includes(":") ? `[${address.hostname}]` : address.hostname;
  return {
    addr: `${host}:${address.port}`,
    close: () => server.shutdown(),
  };
}
