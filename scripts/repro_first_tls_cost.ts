/**
 * A minimal reproduction of a start-up cost of Deno (2.9.6): the first TLS
 * handshake of a process costs ~60 ms more than the next ones, on the main
 * thread, because it is the first use of random bytes from the crypto
 * library (aws-lc), which sets its random generator up then, once. Any first
 * operation needing those bytes pays it where it runs: a WebCrypto AES key
 * generation (run on the main thread) pays it there, an ECDSA key generation
 * (run in Deno's blocking thread pool) pays it on another thread. The
 * plugin's workaround, `src/lib/_crypto_warmup_deno.ts`, starts the latter
 * at start-up, so that the set-up overlaps the loading of its modules.
 *
 * Each case runs in a fresh process against a TLS server in another process
 * (so that only the client's costs count) and prints how long the main
 * thread was held: by the first and second handshakes, by a digest (needs
 * no random bytes) and by an AES key generation; and, after an ECDSA key
 * generation started without waiting for it and 150 ms of other work on
 * the main thread, by the first handshake.
 *
 *   deno run -A scripts/repro_first_tls_cost.ts
 */
import { localhostTls } from "./bench/servers.ts";

type Case = "cold" | "digest-first" | "aes-first" | "ecdsa-in-pool";

const HANDSHAKE_TIMEOUT_MS = 10_000;

async function handshakeMs(port: number, caCerts: string[]): Promise<number> {
  const t0 = performance.now();
  const tcp = await Deno.connect({ hostname: "127.0.0.1", port });
  const conn = await Deno.startTls(tcp, { hostname: "localhost", caCerts });
  await conn.handshake();
  const ms = performance.now() - t0;
  conn.close();
  return ms;
}

/** One case in this (fresh) process; prints its figures. */
async function client(kind: Case, port: number, caPath: string) {
  const caCerts = [await Deno.readTextFile(caPath)];
  const held = (t0: number) => `${(performance.now() - t0).toFixed(1)} ms`;
  const out: string[] = [];
  if (kind === "digest-first") {
    const t0 = performance.now();
    await crypto.subtle.digest("SHA-256", new Uint8Array(64));
    out.push(`SHA-256 digest ${held(t0)}`);
  }
  if (kind === "aes-first") {
    const t0 = performance.now();
    await crypto.subtle.generateKey({ name: "AES-GCM", length: 128 }, false, ["encrypt"]);
    out.push(`AES key ${held(t0)}`);
  }
  if (kind === "ecdsa-in-pool") {
    const t0 = performance.now();
    void crypto.subtle.generateKey({ name: "ECDSA", namedCurve: "P-256" }, false, ["sign"]);
    out.push(`ECDSA key started ${held(t0)}`);
    // Other main-thread work meanwhile (the plugin loads its modules here).
    const busy = performance.now();
    while (performance.now() - busy < 150) {
      const slice = performance.now();
      while (performance.now() - slice < 5) { /* busy */ }
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  out.push(`1st handshake ${(await handshakeMs(port, caCerts)).toFixed(1)} ms`);
  out.push(`2nd handshake ${(await handshakeMs(port, caCerts)).toFixed(1)} ms`);
  console.log(`${kind.padEnd(14)} ${out.join(", ")}`);
}

async function main() {
  const [mode, a, b] = Deno.args;
  if (mode === "client") return await client(a as Case, Number(b), Deno.args[3]!);
  const dir = await Deno.makeTempDir({ prefix: "teleport-email-repro-" });
  const tls = await localhostTls("repro CA", dir);
  const caPath = `${dir}/ca.pem`;
  await Deno.writeTextFile(caPath, tls.ca.cert);
  const listener = Deno.listenTls({
    hostname: "127.0.0.1",
    port: 0,
    cert: tls.leaf.cert,
    key: tls.leaf.key,
  });
  const port = listener.addr.port;
  // The server runs in this process; each client in a process of its own.
  (async () => {
    for await (const conn of listener) {
      conn.handshake().then(() => conn.close(), () => conn.close());
    }
  })();
  const self = new URL(import.meta.url).pathname;
  for (const kind of ["cold", "digest-first", "aes-first", "ecdsa-in-pool"] as Case[]) {
    for (let run = 0; run < 2; run++) {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", self, "client", kind, String(port), caPath],
        env: { DENO_NO_UPDATE_CHECK: "1" },
        stdout: "inherit",
        stderr: "inherit",
      }).spawn();
      const timer = setTimeout(() => child.kill(), HANDSHAKE_TIMEOUT_MS);
      await child.status;
      clearTimeout(timer);
    }
  }
  listener.close();
  await Deno.remove(dir, { recursive: true });
}

await main();
