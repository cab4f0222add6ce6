/**
 * The real plugin under the V8 inspector, for the profiling scripts
 * (`profile_burst.ts`, `heap_growth.ts`): the Teleport test server, the
 * benchmark's smtp-server sink (STARTTLS + AUTH), the plugin spawned as
 * `deno run -A --inspect main.ts start` with the V8 flags and environment
 * its build and unit give it, and a minimal Chrome DevTools Protocol client.
 */
import WebSocket from "ws";
import { startCluster } from "../../tests/harness.ts";
import { localhostTls, startStallSink } from "./servers.ts";
import { PLUGIN_ENV, PLUGIN_V8_FLAGS } from "../v8_flags.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

export interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
export interface AllocNode {
  callFrame: CallFrame;
  selfSize: number;
  children: AllocNode[];
}

/** The part a frame belongs to: an npm package, a project file, node compat, or the runtime. */
export function partOf(frame: CallFrame): string {
  const url = frame.url;
  const npm = /registry\.npmjs\.org\/((?:@[^/]+\/)?[^/]+)\//.exec(url);
  if (npm) return `npm:${npm[1]}`;
  const own = /\/(src\/.+|main\.ts)$/.exec(url);
  if (own) return own[1]!;
  if (url.startsWith("ext:deno_node/")) return "node compat (ext:deno_node)";
  if (url.startsWith("ext:")) return `runtime (${url.split("/")[0]})`;
  if (url === "") {
    if (frame.functionName === "(garbage collector)") return "(garbage collector)";
    if (frame.functionName === "(idle)") return "(idle)";
    if (frame.functionName === "(program)") return "(program: native, no JS frame)";
    return `(${frame.functionName || "native"})`;
  }
  return url;
}

/** Whether a part is the project's or a package's (not the runtime under them). */
export function isOwnPart(part: string): boolean {
  return part.startsWith("npm:") || part.startsWith("src/") || part === "main.ts";
}

/** A function as a table row: its name, the last two parts of its file and its line. */
export function functionName(f: CallFrame): string {
  return `${f.functionName || "(anonymous)"} ${f.url.split("/").slice(-2).join("/")}:${
    f.lineNumber + 1
  }`;
}

/** Prints the `top` largest rows with their share of the total. */
export function table(
  title: string,
  rows: Map<string, number>,
  unit: (n: number) => string,
  top: number,
) {
  const total = [...rows.values()].reduce((a, b) => a + b, 0);
  console.log(`\n${title}`);
  for (const [part, n] of [...rows].sort((a, b) => b[1] - a[1]).slice(0, top)) {
    console.log(`  ${(n / total * 100).toFixed(1).padStart(5)}%  ${unit(n).padStart(10)}  ${part}`);
  }
}

/** A minimal Chrome DevTools Protocol client over the inspector's WebSocket. */
export class Inspector {
  #ws: WebSocket;
  #next = 1;
  #pending = new Map<number, { resolve(result: unknown): void; reject(error: unknown): void }>();
  #gone: Error | undefined;
  private constructor(ws: WebSocket) {
    this.#ws = ws;
    ws.on("message", (data) => {
      const msg = JSON.parse(String(data)) as { id?: number; result?: unknown; error?: unknown };
      if (msg.id === undefined) return;
      const call = this.#pending.get(msg.id);
      this.#pending.delete(msg.id);
      if (msg.error) call?.reject(new Error(`Inspector: ${JSON.stringify(msg.error)}`));
      else call?.resolve(msg.result);
    });
    // The plugin gone (or the socket broken): no answer will come to what is waiting.
    const fail = (why: string) => {
      this.#gone ??= new Error(`Inspector connection ${why}`);
      for (const call of this.#pending.values()) call.reject(this.#gone);
      this.#pending.clear();
    };
    ws.on("close", () => fail("closed"));
    ws.on("error", (error) => fail(`failed: ${error}`));
  }
  static connect(url: string): Promise<Inspector> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url, { maxPayload: 1 << 30 });
      ws.once("open", () => {
        ws.off("error", reject);
        resolve(new Inspector(ws));
      });
      ws.once("error", reject);
    });
  }
  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    if (this.#gone) return Promise.reject(this.#gone);
    const id = this.#next++;
    return new Promise<T>((resolve, reject) => {
      this.#pending.set(id, { resolve: resolve as (r: unknown) => void, reject });
      this.#ws.send(JSON.stringify({ id, method, params }));
    });
  }
  close() {
    this.#ws.close();
  }
}

export interface InspectedPlugin {
  readonly pid: number;
  readonly inspector: Inspector;
  readonly cluster: Awaited<ReturnType<typeof startCluster>>;
  /** What the plugin wrote to stdout so far (V8's `--trace-gc` lines go there). */
  stdout(): string;
  /** How many "Sent new request email" lines it logged so far. */
  sent(): number;
  /** Waits until `done()`, failing with the plugin's log after `ms`. */
  until(what: string, done: () => boolean, ms?: number): Promise<void>;
  /** Creates a request of `n`, for a user and two suggested reviewers: 3 emails. */
  request(tag: string, n: number): void;
  stop(): Promise<void>;
}

/** Starts the cluster, the sink and the plugin (`v8Flags` replaces the built-in flags). */
export async function startInspected(
  v8Flags: string | undefined,
  extraV8Flags = "",
): Promise<InspectedPlugin> {
  // Undone in reverse order, each whatever the others do, also when the start fails half-way.
  const cleanups: (() => unknown)[] = [];
  const stop = async () => {
    for (const cleanup of cleanups.splice(0).reverse()) {
      try {
        await cleanup();
      } catch {
        // The rest is cleaned up all the same.
      }
    }
  };
  try {
    const dir = await Deno.makeTempDir({ prefix: "teleport-email-profile-" });
    cleanups.push(() => Deno.remove(dir, { recursive: true }));
    const { ca, certPath, keyPath } = await localhostTls("profile SMTP CA", dir);
    await Deno.writeTextFile(`${dir}/smtp_ca.pem`, ca.cert);
    await Deno.writeTextFile(`${dir}/smtp_password`, "bench-Pa55word\n");
    const smtp = await startStallSink(certPath, keyPath);
    cleanups.push(() => smtp.stop());
    const cluster = await startCluster({ teleport: { listPageSize: 500 } });
    cleanups.push(() => cluster.close());
    const configPath = await cluster.writeConfig({
      severity: "INFO",
      smtpSection: [
        "[smtp]",
        `host = "localhost"`,
        `port = ${smtp.port}`,
        `username = "bench"`,
        `password_file = "${dir}/smtp_password"`,
        `starttls_policy = "mandatory"`,
        `ca_file = "${dir}/smtp_ca.pem"`,
      ].join("\n"),
    });
    const flags = [v8Flags ?? PLUGIN_V8_FLAGS, extraV8Flags].filter((f) => f !== "").join(",");
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--inspect=127.0.0.1:0", MAIN, "start", "-c", configPath],
      env: { DENO_NO_UPDATE_CHECK: "1", NO_COLOR: "1", ...PLUGIN_ENV, DENO_V8_FLAGS: flags },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const status = child.status.finally(() => (exited = true));
    let out = "";
    let err = "";
    const pumps = [
      (async () => {
        const d = new TextDecoder();
        for await (const c of child.stdout) out += d.decode(c, { stream: true });
      })(),
      (async () => {
        const d = new TextDecoder();
        for await (const c of child.stderr) err += d.decode(c, { stream: true });
      })(),
    ];
    cleanups.push(async () => {
      if (!exited) child.kill("SIGTERM");
      await status;
      await Promise.allSettled(pumps);
    });
    const until = async (what: string, done: () => boolean, ms = 60_000) => {
      const end = performance.now() + ms;
      while (!done()) {
        if (exited) throw new Error(`The plugin exited while waiting for ${what}:\n${err}`);
        if (performance.now() > end) throw new Error(`Timed out waiting for ${what}:\n${err}`);
        await new Promise((r) => setTimeout(r, 2));
      }
    };
    await until("the inspector", () => /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.test(err));
    const url = /ws:\/\/127\.0\.0\.1:\d+\/[\w-]+/.exec(err)![0];
    await until("Plugin is ready", () => err.includes("Plugin is ready"));
    const inspector = await Inspector.connect(url);
    cleanups.push(() => inspector.close());
    return {
      pid: child.pid,
      inspector,
      cluster,
      stdout: () => out,
      sent: () => err.match(/Sent new request email to/g)?.length ?? 0,
      until,
      request(tag, n) {
        cluster.teleport.createRequest({
          user: `${tag}${n}@example.com`,
          roles: ["editor"],
          reason: tag,
          suggestedReviewers: [`a-${tag}${n}@example.com`, `b-${tag}${n}@example.com`],
        });
      },
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
