/**
 * A Teleport on another gRPC stack: `tests/teleport_go/`, a grpc-go server
 * (the HTTP/2, TLS and gRPC implementation a real Teleport runs, none of it
 * written here) answering with bytes encoded here with the project's schema.
 * It serves the certificate of a Teleport test server, so an identity file
 * of that server works unchanged, and streams every change of that server's
 * cluster to its watches; plugin-data writes always succeed (one plugin,
 * fresh requests: its compare-and-swap is the test server's to prove) and
 * are counted. Built with the Go toolchain (`buildGoTeleport`). Used by
 * tests/teleport_go_test.ts and `deno task bench --teleport go`.
 * Test-only: never imported by the product.
 */
import { Buffer } from "node:buffer";
import { fileURLToPath } from "node:url";
import { encodeMessage } from "../src/teleport/proto.ts";
import { KIND_ACCESS_MONITORING_RULE, KIND_ACCESS_REQUEST } from "../src/teleport/convert.ts";
import { type TeleportTestServer, toPbEvent } from "./teleport_server.ts";

const AUTH = "/proto.AuthService";
const AMR = "/teleport.accessmonitoringrules.v1.AccessMonitoringRulesService";

/** A running grpc-go stand-in. */
export interface GoTeleport {
  /** `127.0.0.1:<port>`, for the plugin's `teleport.addr`. */
  readonly addr: string;
  /** Its process (for its CPU time). */
  readonly pid: number;
  /** Calls of an Auth Service method (e.g. "UpdatePluginData") so far. */
  callCount(method: string): Promise<number>;
  /** Open WatchEvents streams. */
  watchers(): Promise<number>;
  /**
   * Ends every watch stream with UNAVAILABLE (as a Teleport shutting down),
   * stops gracefully (GOAWAY) and serves again on the same port.
   */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** How long `stop()` waits for the process to exit before it kills it. */
const STOP_WAIT_MS = 5_000;
/** How long the process may take to print its port, and to take its set-up. */
const START_WAIT_MS = 10_000;

const base64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

/** The lines of `stream`, one `read()` each. */
function lineReader(stream: ReadableStream<Uint8Array>) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  return {
    async read(): Promise<{ done: true; value?: undefined } | { done: false; value: string }> {
      for (;;) {
        const end = buffered.indexOf("\n");
        if (end >= 0) {
          const value = buffered.slice(0, end);
          buffered = buffered.slice(end + 1);
          return { done: false, value };
        }
        const chunk = await reader.read();
        if (chunk.done) return { done: true };
        buffered += chunk.value;
      }
    },
    cancel: () => reader.cancel().catch(() => {}),
  };
}

/** Builds the stand-in into `dir` with `go`; throws with Go's message when it cannot. */
export async function buildGoTeleport(dir: string, go = "go"): Promise<string> {
  const bin = `${dir}/teleport_go`;
  const built = await new Deno.Command(go, {
    args: ["build", "-o", bin, "."],
    cwd: fileURLToPath(new URL("./teleport_go/", import.meta.url)),
    // No VCS stamp: the build must not depend on the checkout's git state.
    env: { GOFLAGS: "-mod=readonly -buildvcs=false" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!built.success) throw new Error(new TextDecoder().decode(built.stderr).trim());
  return bin;
}

/** Starts the stand-in `bin` in front of `teleport`'s cluster, with its certificates. */
export async function startGoTeleport(
  bin: string,
  teleport: TeleportTestServer,
  dir: string,
): Promise<GoTeleport> {
  const certPath = `${dir}/teleport_go_cert.pem`;
  const keyPath = `${dir}/teleport_go_key.pem`;
  const caPath = `${dir}/teleport_go_ca.pem`;
  await Deno.writeTextFile(certPath, teleport.serverCert.cert);
  await Deno.writeTextFile(keyPath, teleport.serverCert.key);
  await Deno.writeTextFile(caPath, teleport.ca.cert);
  const child = new Deno.Command(bin, {
    args: [certPath, keyPath, caPath],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines = lineReader(child.stdout);
  const writer = child.stdin.getWriter();
  const encoder = new TextEncoder();
  // One write at a time, in order.
  let writing = Promise.resolve();
  const send = (line: string) => {
    // A failed write (the process is gone) fails its caller, not the writes after it.
    writing = writing.catch(() => {}).then(() => writer.write(encoder.encode(line + "\n")));
    return writing;
  };
  // A command and the line it prints, one such exchange at a time.
  let exchanging: Promise<unknown> = Promise.resolve();
  const exchange = (command: string) => {
    const answer = exchanging.then(async () => {
      await send(command);
      const line = await lines.read();
      if (line.done) throw new Error(`the grpc-go stand-in is gone (after "${command}")`);
      return line.value;
    });
    exchanging = answer.catch(() => {});
    return answer;
  };
  const counts = async () =>
    JSON.parse(await exchange("C")) as { calls: Record<string, number>; watchers: number };
  let unsubscribe = () => {};
  /**
   * Ends the process: stdin closed (it stops serving and exits), killed if it has not exited
   * within {@linkcode STOP_WAIT_MS} (also when it stopped reading and the writes are stuck).
   */
  const shutdown = async () => {
    unsubscribe();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<false>((r) => (timer = setTimeout(() => r(false), STOP_WAIT_MS)));
    const exited = await Promise.race([
      (async () => {
        await writing.catch(() => {});
        await writer.close().catch(() => {});
        await child.status;
        return true;
      })(),
      deadline,
    ]);
    clearTimeout(timer);
    if (!exited) {
      try {
        child.kill("SIGKILL");
      } catch {
        // It exited meanwhile.
      }
      await writer.abort().catch(() => {});
      await child.status;
    }
    await lines.cancel();
  };
  /** `step` within {@linkcode START_WAIT_MS}, or an error naming `what`. */
  const timely = async <T>(what: string, step: Promise<T>): Promise<T> => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        step,
        new Promise<never>((_, reject) =>
          timer = setTimeout(
            () => reject(new Error(`the grpc-go stand-in ${what} within ${START_WAIT_MS} ms`)),
            START_WAIT_MS,
          )
        ),
      ]);
    } finally {
      clearTimeout(timer);
    }
  };

  try {
    const first = await timely("printed no port", lines.read());
    const port = Number(first.value);
    if (first.done || !Number.isInteger(port)) {
      throw new Error(`the grpc-go stand-in did not start (${first.value ?? "no output"})`);
    }
    await send(
      `R ${AUTH}/Ping ${
        base64(encodeMessage("proto.PingResponse", {
          ClusterName: teleport.clusterName,
          ServerVersion: teleport.serverVersion,
          ServerFeatures: { AccessControls: true, AdvancedAccessWorkflows: true },
          ProxyPublicAddr: teleport.proxyPublicAddr,
        }))
      }`,
    );
    // Empty messages: no request, no rule, no plugin data; a write's `Empty`.
    for (
      const method of [
        `${AUTH}/ListAccessRequests`,
        `${AUTH}/GetPluginData`,
        `${AUTH}/UpdatePluginData`,
        `${AMR}/ListAccessMonitoringRulesWithFilter`,
      ]
    ) await send(`R ${method}`);
    // The plugin asks for both kinds with partial success: both are granted.
    await send(
      `I ${
        base64(encodeMessage("proto.Event", {
          Type: "INIT",
          WatchStatus: {
            Kind: "watch_status",
            Version: "v1",
            Metadata: { Name: "watch_status" },
            Spec: {
              Kinds: [KIND_ACCESS_REQUEST, KIND_ACCESS_MONITORING_RULE].map((Kind) => ({
                Kind,
                LoadSecrets: false,
                Name: "",
                Filter: {},
                SubKind: "",
              })),
            },
          },
        }))
      }`,
    );
    unsubscribe = teleport.cluster.subscribe((change) => {
      // Gone: the exchanges that follow say so.
      send(`E ${base64(encodeMessage("proto.Event", toPbEvent(change)))}`).catch(() => {});
    });
    // Answered once every line before it is applied: the stand-in is ready for calls.
    await timely("did not take its answers", counts());
    return {
      addr: `127.0.0.1:${port}`,
      pid: child.pid,
      async callCount(method) {
        return (await counts()).calls[`${AUTH}/${method}`] ?? 0;
      },
      async watchers() {
        return (await counts()).watchers;
      },
      async restart() {
        const line = await exchange("G");
        if (line !== "restarted") throw new Error(`the grpc-go stand-in did not restart (${line})`);
      },
      stop: shutdown,
    };
  } catch (error) {
    await shutdown();
    throw error;
  }
}
