/**
 * What opening a new request's SMTP transactions while its claim is written
 * (`Mailer.openEnvelopes`, `src/mail/_smtp_envelope_gate.ts`) saves, against
 * aiosmtpd (STARTTLS + AUTH) behind a relay that holds every chunk for a
 * while each way, as a mail server on another host would (a relay in this
 * process: with no hold it already costs the floor ~3 ms; a hold is at least
 * the time asked, Deno's timers may clamp it to 4 ms).
 *
 *   deno run -A scripts/open_ahead.ts [--claim-ms 2] [--delays 0,2] [--rounds 200]
 *
 * Per hold it times, `rounds` times each: the plugin's path of a
 * new request (a claim of `--claim-ms`, a timer standing for the cluster's
 * round trip, then its 3 emails sent at once by the SMTP mailer) with and
 * without the transactions opened when the claim starts, and the floor
 * (the 3 emails alone, no claim). Prints the p50 and p90 of each.
 */
import { parseArgs } from "node:util";
import { localhostTls, startAiosmtpd } from "./bench/servers.ts";
import { percentile, round } from "./bench/stats.ts";
import { createSmtpMailer } from "../src/mail/smtp.ts";
import { Secret } from "../src/lib/secret.ts";

const { values: flags } = parseArgs({
  options: {
    "claim-ms": { type: "string", default: "2" },
    delays: { type: "string", default: "0,2" },
    rounds: { type: "string", default: "200" },
  },
});
const CLAIM_MS = Number(flags["claim-ms"]);
const ROUNDS = Number(flags.rounds);
const WARM_UP = 10;

/** A TCP relay to `port` that holds every chunk `delayMs` before passing it on, each way. */
function delayRelay(port: number, delayMs: number) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  const pump = async (from: Deno.Conn, to: Deno.Conn) => {
    // Chunks leave in order: each write waits for the one before and for its own time.
    let last = Promise.resolve();
    try {
      for await (const chunk of from.readable) {
        // The timer starts here, outside any timer's callback: nested ones are clamped to 4 ms.
        const held = delayMs > 0 ? sleep(delayMs) : undefined;
        last = last.then(async () => {
          await held;
          await to.write(chunk);
        });
        last.catch(() => {}); // a failed write ends the pump below
      }
      await last;
    } catch {
      // One side went away.
    } finally {
      try {
        await to.closeWrite();
      } catch {
        // Closed already.
      }
    }
  };
  const serving = (async () => {
    for await (const client of listener) {
      const server = await Deno.connect({ hostname: "127.0.0.1", port });
      client.setNoDelay(true);
      server.setNoDelay(true);
      conns.add(client).add(server);
      void Promise.allSettled([pump(client, server), pump(server, client)]);
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    async close() {
      listener.close();
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // Closed already.
        }
      }
      await serving;
    },
  };
}

const p = (xs: number[], q: number) => round(percentile(xs, q * 100), 2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const tls = await localhostTls("open-ahead");
const server = await startAiosmtpd(tls.certPath, tls.keyPath);
console.log(
  `open ahead: aiosmtpd (STARTTLS + AUTH) behind a delaying relay, claim ${CLAIM_MS} ms, ` +
    `3 emails, ${ROUNDS} rounds (${Deno.build.target}, deno ${Deno.version.deno})`,
);
try {
  for (const delay of flags.delays!.split(",").map(Number)) {
    const relay = delayRelay(server.port, delay);
    const mailer = createSmtpMailer(
      {
        kind: "smtp",
        host: "localhost",
        port: relay.port,
        starttlsPolicy: "mandatory",
        ca: tls.ca.cert,
        username: "bench",
        password: new Secret("bench-Pa55word"),
      },
      "Teleport <noreply@example.com>",
      { trustedCas: () => [] },
    );
    const times: Record<string, number[]> = { floor: [], plugin: [], "plugin, opened ahead": [] };
    try {
      for (let r = 0; r < ROUNDS + WARM_UP; r++) {
        for (const kind of Object.keys(times)) {
          const to = [0, 1, 2].map((i) => `r${r}-${i}@example.com`);
          const t0 = performance.now();
          if (kind !== "floor") {
            if (kind !== "plugin") mailer.openEnvelopes!(to);
            await sleep(CLAIM_MS);
          }
          await Promise.all(
            to.map((address) =>
              mailer.send({
                to: address,
                subject: `round ${r}`,
                text: "Hello",
                html: "<p>Hello</p>",
              })
            ),
          );
          if (r >= WARM_UP) times[kind]!.push(performance.now() - t0);
          await sleep(5);
        }
      }
    } finally {
      await mailer.close();
      await relay.close();
    }
    const line = Object.entries(times).map(([k, v]) => `${k} ${p(v, 0.5)} / ${p(v, 0.9)}`);
    console.log(`  relay hold ${delay} ms each way, p50 / p90 ms: ${line.join("; ")}`);
  }
} finally {
  await server.stop();
}
