/**
 * A bench SMTP sink that triggers the delayed-ACK stall: smtp-server 3.13
 * (its replies to pipelined commands are separate writes, with Nagle on),
 * STARTTLS and AUTH (any credentials), in a process of its own. Prints
 * `LISTEN <port>` once listening, then `+` for every message accepted.
 *
 *   deno run -A scripts/bench/stall_sink.ts <cert.pem> <key.pem>
 */
import { SMTPServer } from "npm:smtp-server@3.13.6";

const [certPath, keyPath] = Deno.args;
if (!certPath || !keyPath) throw new Error("usage: stall_sink.ts <cert.pem> <key.pem>");
const encoder = new TextEncoder();
const out = (line: string) => Deno.stdout.writeSync(encoder.encode(line + "\n"));

/** The parts of smtp-server 3.13's callbacks the sink uses (the package has no types). */
type Done = (error: Error | null, result?: { user: string }) => void;
interface DataStream {
  on(event: "data" | "end", listener: () => void): void;
}

const server = new SMTPServer({
  key: Deno.readTextFileSync(keyPath),
  cert: Deno.readTextFileSync(certPath),
  logger: false,
  onAuth(_auth: unknown, _session: unknown, callback: Done) {
    callback(null, { user: "bench" });
  },
  onData(stream: DataStream, _session: unknown, callback: Done) {
    stream.on("data", () => {});
    stream.on("end", () => {
      callback(null);
      out("+");
    });
  },
});
server.listen(0, "127.0.0.1", () => {
  const address = server.server.address() as { port: number };
  out(`LISTEN ${address.port}`);
});
Deno.addSignalListener("SIGTERM", () => server.close(() => Deno.exit(0)));
