/**
 * The round trip of one gRPC unary call from grpc-js under Deno (the
 * plugin's client stack) to a server on grpc-js under Deno (the stack of the
 * bench's Teleport test server) and to one on grpc-go (scripts/grpc_rtt/,
 * built with the Go toolchain when `go` is on PATH; skipped otherwise). The
 * plugin's claim of a new request is one such call before its first email,
 * which is why its latency cannot be the floor's.
 *
 *   deno run -A scripts/grpc_rtt.ts [calls]
 *
 * Each server in a process of its own; plain TCP on loopback, 300-byte
 * requests, empty answers. Prints per server
 * the p50 and p90 of calls made one at a time with 5 ms of idleness between
 * them (as the bench's one-by-one phase), and the client's CPU per call with
 * 8 calls in flight.
 */
import * as grpc from "@grpc/grpc-js";
import { fileURLToPath } from "node:url";
import { cpuSeconds } from "./bench/proc.ts";
import { percentile } from "./bench/stats.ts";

const CALLS = Number(Deno.args.find((a) => !a.startsWith("--")) ?? 300);
const IDLE_MS = 5;
const IN_FLIGHT = 8;

const id = (b: Buffer) => b;
const PING = {
  path: "/x.Echo/Ping",
  requestStream: false,
  responseStream: false,
  requestSerialize: id,
  requestDeserialize: id,
  responseSerialize: id,
  responseDeserialize: id,
} as const;

/** Serves the service on grpc-js here (`--serve`): prints the port, then serves until killed. */
function serveHere(): void {
  const server = new grpc.Server();
  server.addService({ Ping: PING } as unknown as grpc.ServiceDefinition, {
    Ping: (_call: unknown, done: (e: null, r: Buffer) => void) => done(null, Buffer.alloc(0)),
  } as unknown as grpc.UntypedServiceImplementation);
  server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) throw err;
    console.log(port);
  });
}

/** Runs `cmd` (a server that prints its port first) and returns the port and a stop. */
async function spawnServer(cmd: string, args: string[]) {
  const child = new Deno.Command(cmd, { args, stdout: "piped" }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${cmd} ended before printing its port`);
    text += value;
  }
  reader.releaseLock();
  return { port: Number(text.trim()), stop: () => child.kill() };
}

/** The same service on grpc-js under Deno, in a process of its own. */
function denoServer() {
  return spawnServer(Deno.execPath(), ["run", "-A", fileURLToPath(import.meta.url), "--serve"]);
}

/** The grpc-go server, built into a temp folder; undefined without `go`. */
async function goServer(): Promise<{ port: number; stop(): void } | undefined> {
  const dir = fileURLToPath(new URL("./grpc_rtt/", import.meta.url));
  const bin = `${await Deno.makeTempDir({ prefix: "grpc-rtt-" })}/server`;
  try {
    const built = await new Deno.Command("go", { args: ["build", "-o", bin, "."], cwd: dir })
      .output();
    if (!built.success) throw new Error(new TextDecoder().decode(built.stderr));
  } catch (error) {
    console.log(`grpc-go: not measured (${(error as Error).message.trim().split("\n")[0]})`);
    return undefined;
  }
  return await spawnServer(bin, []);
}

async function measure(port: number) {
  const Client = grpc.makeGenericClientConstructor({ Ping: PING }, "Echo");
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
  const payload = Buffer.alloc(300, 1);
  type Unary = (
    request: Buffer,
    metadata: grpc.Metadata,
    options: grpc.CallOptions,
    done: (error: unknown) => void,
  ) => void;
  const ping = (client as unknown as { Ping: Unary }).Ping.bind(client);
  const call = () =>
    new Promise<void>((resolve, reject) =>
      ping(
        payload,
        new grpc.Metadata(),
        { deadline: Date.now() + 10_000 },
        (e) => e ? reject(e) : resolve(),
      )
    );
  try {
    for (let i = 0; i < 100; i++) await call();
    const times: number[] = [];
    for (let i = 0; i < CALLS; i++) {
      const t0 = performance.now();
      await call();
      times.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, IDLE_MS));
    }
    const many = CALLS * 10;
    let next = 0;
    const cpu0 = cpuSeconds();
    await Promise.all(Array.from({ length: IN_FLIGHT }, async () => {
      while (next++ < many) await call();
    }));
    return {
      p50: percentile(times, 50),
      p90: percentile(times, 90),
      cpuUs: (cpuSeconds() - cpu0) * 1e6 / many,
    };
  } finally {
    client.close();
  }
}

if (Deno.args.includes("--serve")) {
  serveHere();
} else {
  await main();
}

async function main() {
  for (const [name, start] of [["grpc-js on Deno", denoServer], ["grpc-go", goServer]] as const) {
    const server = await start();
    if (server === undefined) continue;
    try {
      const r = await measure(server.port);
      console.log(
        `${name.padEnd(16)} one at a time: p50 ${r.p50.toFixed(2)} ms, p90 ${
          r.p90.toFixed(2)
        } ms; ` +
          `client CPU per call, ${IN_FLIGHT} in flight: ${r.cpuUs.toFixed(0)} µs`,
      );
    } finally {
      server.stop();
    }
  }
}
