/**
 * A minimal scripted SMTP server on loopback for tests of the wire itself:
 * it records the command lines of each read, can advertise PIPELINING, and
 * can wait before answering a verb (`"."` for the end of a message).
 */

const encoder = new TextEncoder();

export interface ScriptedSmtpOptions {
  /** Advertise PIPELINING in the EHLO answer. */
  pipelining?: boolean;
  /** Milliseconds to wait before answering a verb: "GREETING", "EHLO", "RCPT", "." … */
  delays?: Record<string, number>;
  /** Close the connection right after answering the `nth` (1-based, all connections) `verb`. */
  hangUpAfter?: { verb: string; nth: number };
}

export function scriptedSmtpServer(opts: ScriptedSmtpOptions = {}) {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const reads: string[][] = [];
  const conns = new Set<Deno.Conn>();
  let messages = 0;
  let hangUps = 0;
  const seen = new Map<string, number>();
  const ehlo = opts.pipelining
    ? "250-scripted\r\n250-PIPELINING\r\n250 8BITMIME"
    : "250-scripted\r\n250 8BITMIME";
  const serving = (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      void (async () => {
        const reply = async (verb: string, text: string) => {
          const ms = opts.delays?.[verb] ?? 0;
          if (ms > 0) await new Promise((r) => setTimeout(r, ms));
          await conn.write(encoder.encode(text + "\r\n"));
          const nth = (seen.get(verb) ?? 0) + 1;
          seen.set(verb, nth);
          if (opts.hangUpAfter?.verb === verb && opts.hangUpAfter.nth === nth) {
            hangUps++;
            throw new Error("hung up"); // the finally below closes the connection
          }
        };
        const decoder = new TextDecoder();
        let inData = false;
        let buffered = "";
        const buf = new Uint8Array(64 * 1024);
        try {
          await reply("GREETING", "220 scripted ESMTP");
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            buffered += decoder.decode(buf.subarray(0, n), { stream: true });
            if (inData) {
              if (!buffered.includes("\r\n.\r\n")) continue;
              buffered = buffered.slice(buffered.indexOf("\r\n.\r\n") + 5);
              inData = false;
              messages++;
              await reply(".", "250 queued");
              continue;
            }
            const lines = buffered.split("\r\n");
            buffered = lines.pop() ?? "";
            reads.push(lines);
            for (const line of lines) {
              const verb = line.slice(0, 4).toUpperCase();
              if (verb === "EHLO") await reply(verb, ehlo);
              else if (verb === "DATA") {
                inData = true;
                await reply(verb, "354 go on");
              } else if (verb === "QUIT") {
                await reply(verb, "221 bye");
                return;
              } else await reply(verb, "250 ok");
            }
          }
        } catch {
          // the client went away
        } finally {
          conns.delete(conn);
          try {
            conn.close();
          } catch {
            // already closed
          }
        }
      })();
    }
  })().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    /** The command lines of each read, in order. */
    reads,
    /** Messages received whole. */
    get messages() {
      return messages;
    },
    /** Connections closed by `hangUpAfter`. */
    get hangUps() {
      return hangUps;
    },
    close: async () => {
      listener.close();
      for (const conn of conns) conn.close();
      await serving;
    },
  };
}
