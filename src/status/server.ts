/**
 * The optional status listener (`[status] listen_addr`): `/healthz` (the
 * process is up), `/readyz` (watch stream connected with INIT seen, mailer
 * healthy; else 503 with a JSON reason) and `/metrics` (Prometheus text).
 */
import type { PromMetrics } from "./metrics.ts";

/** What readiness depends on; updated by the plugin as things happen. */
export class Readiness {
  watchConnected = false;
  watchError: string | undefined = "not connected yet";
  mailerHealthy = false;
  mailerError: string | undefined = "not checked yet";

  /** Why the plugin is not ready, or undefined when it is. */
  reasons(): string[] {
    const out: string[] = [];
    if (!this.watchConnected) {
      out.push(`teleport: ${this.watchError ?? "watch stream not connected"}`);
    }
    if (!this.mailerHealthy) out.push(`mailer: ${this.mailerError ?? "unhealthy"}`);
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
