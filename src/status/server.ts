/**
 * The optional status listener (`[status] listen_addr`): `/healthz` (the
 * process is up), `/readyz` (watch stream connected with INIT seen, mailer
 * healthy; else 503 with a JSON reason) and `/metrics` (Prometheus text).
 */
import type { PromMetrics } from "./metrics.ts";

/** What readiness depends on; updated by the plugin as things happen. */
export class Readiness {
  #watchError: string | undefined = "not connected yet";
  #mailerError: string | undefined = "not checked yet";

  /** The watch stream is open (INIT seen). */
  watchUp(): void {
    this.#watchError = undefined;
  }

  /** The watch stream is gone, with a short reason (never a server's raw answer with secrets). */
  watchDown(reason: string): void {
    this.#watchError = reason;
  }

  /** The mailer answered (health check passed or an email was accepted). */
  mailerUp(): void {
    this.#mailerError = undefined;
  }

  /** The mailer failed for a reason that may pass. */
  mailerDown(reason: string): void {
    this.#mailerError = reason;
  }

  /** Why the plugin is not ready; empty when it is. */
  reasons(): string[] {
    const out: string[] = [];
    if (this.#watchError !== undefined) out.push(`teleport: ${this.#watchError}`);
    if (this.#mailerError !== undefined) out.push(`mailer: ${this.#mailerError}`);
    return out;
  }
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
