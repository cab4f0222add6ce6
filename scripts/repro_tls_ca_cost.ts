/**
 * A minimal reproduction of what a long `ca` list costs per TLS handshake
 * under Deno's node:tls (2.9.6): once the server's certificate is verified,
 * `tls.connect` asks for the detailed peer certificate (for
 * `checkServerIdentity`), and to fill in its issuer chain Deno parses every
 * certificate of the `ca` option again (X.509 decode and a legacy object
 * each), on every connection. The plugin passes the system's and the
 * runtime's roots plus `smtp.ca_file` (or `teleport.proxy_ca_file`) there,
 * ~160 certificates, so each SMTP reconnection and the connection-upgrade
 * test pay for that on the main thread.
 *
 * Prints the main thread's CPU time per handshake against a local TLS
 * server for `ca` = the one CA that signed it, = the system roots plus
 * that CA (both verify the same chain; only the list's length differs),
 * and for the long list through the workaround the plugin uses
 * (`src/lib/_tls_peer_chain_deno.ts`).
 *
 *   deno run -A scripts/repro_tls_ca_cost.ts [handshakes]
 */
import tls from "node:tls";
import { localhostTls } from "./bench/servers.ts";
import { cpuSeconds } from "./bench/proc.ts";
import { systemTrustedCas } from "../src/lib/system_cas.ts";
import { caOption } from "../src/lib/_tls_peer_chain_deno.ts";

/** Handshakes measured per case, after a warm-up of 5. */
const HANDSHAKES = Number(Deno.args[0] ?? 50);

const dir = await Deno.makeTempDir({ prefix: "teleport-email-repro-" });
const { ca, leaf } = await localhostTls("repro CA", dir);
const server = tls.createServer({ cert: leaf.cert, key: leaf.key }, (socket) => socket.end());
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const port = (server.address() as { port: number }).port;

function handshake(trust: tls.ConnectionOptions): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: "127.0.0.1", port, servername: "localhost", ...trust });
    socket.once("secureConnect", () => {
      socket.destroy();
      resolve();
    });
    socket.once("error", reject);
  });
}

async function perHandshake(trust: tls.ConnectionOptions): Promise<{ cpu: number; wall: number }> {
  for (let i = 0; i < 5; i++) await handshake(trust);
  const cpu0 = cpuSeconds() * 1000;
  const t0 = performance.now();
  for (let i = 0; i < HANDSHAKES; i++) await handshake(trust);
  return {
    cpu: (cpuSeconds() * 1000 - cpu0) / HANDSHAKES,
    wall: (performance.now() - t0) / HANDSHAKES,
  };
}

const long = [...systemTrustedCas(), ca.cert];
const cases: [string, tls.ConnectionOptions][] = [
  ["ca = 1 CA", { ca: [ca.cert] }],
  [`ca = ${long.length} CAs`, { ca: long }],
  [`caOption(${long.length} CAs)`, caOption(long)],
];
for (const [label, trust] of cases) {
  const { cpu, wall } = await perHandshake(trust);
  console.log(`${label.padEnd(20)} ${cpu.toFixed(1)} ms CPU, ${wall.toFixed(1)} ms per handshake`);
}
server.close();
await Deno.remove(dir, { recursive: true });
