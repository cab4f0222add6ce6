/**
 * A minimal reproduction of the 40–48 ms SMTP stall (see
 * src/mail/_smtp_no_pipelining.ts): Nodemailer's pool, TCP_NODELAY on,
 * against smtp-server 3.13 in its own process (STARTTLS + AUTH), with
 * Nodemailer as shipped (PIPELINING used) and with pipelining turned off.
 * Prints the p50 of one message over a warm connection for each.
 *
 *   deno run -A scripts/repro_pipelining_stall.ts [messages]
 *
 * To see where the time goes: `strace -f -tt -e trace=sendto,recvfrom` on
 * it shows the server's second and third replies to a pipelined
 * MAIL/RCPT/DATA leaving ~40 ms after the first (the server's Nagle
 * waiting for our delayed ACK), while `setsockopt(TCP_NODELAY)` is set on
 * the client's socket.
 */
import nodemailer from "nodemailer";
import { localhostTls, startStallSink } from "./bench/servers.ts";
import { percentile } from "./bench/stats.ts";

/** Messages measured per mode, after a warm-up of 5. */
const MESSAGES = Number(Deno.args[0] ?? 40);

const dir = await Deno.makeTempDir({ prefix: "teleport-email-repro-" });
const { ca, certPath, keyPath } = await localhostTls("repro CA", dir);
const server = await startStallSink(certPath, keyPath);

async function p50(): Promise<number> {
  const transport = nodemailer.createTransport({
    host: "localhost",
    port: server.port,
    requireTLS: true,
    pool: true,
    maxConnections: 1,
    tls: { ca: [ca.cert] },
    auth: { user: "repro", pass: "repro" },
  });
  const times: number[] = [];
  for (let i = 0; i < MESSAGES + 5; i++) {
    const t0 = performance.now();
    await transport.sendMail({
      from: "a@example.com",
      to: "b@example.com",
      subject: "s",
      text: "t",
    });
    if (i >= 5) times.push(performance.now() - t0);
  }
  transport.close();
  return percentile(times, 50);
}

try {
  const shipped = await p50();
  await import("../src/mail/_smtp_no_pipelining.ts");
  const unpipelined = await p50();
  console.log(`Nodemailer as shipped (PIPELINING): p50 ${shipped.toFixed(2)} ms per message`);
  console.log(`without pipelining:                 p50 ${unpipelined.toFixed(2)} ms per message`);
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}
