/**
 * The Mailgun mailer against hostile or odd answers (issue 12): an echoed
 * Authorization header, `Retry-After`, a 200 without an id, and the key never
 * sent over plain http (nor an `api_base`'s user info printed).
 */
import assert from "node:assert/strict";
import { rejection as rejectionOf } from "../../tests/assert.ts";
import type { MailgunConfig } from "../config/types.ts";
import { Secret } from "../lib/secret.ts";
import { type FakeMailgun, startMailgunServer } from "../../tests/mailgun_server.ts";
import { base64, type Mailer, MailError } from "./mailer.ts";
import { createMailgunMailer, parseRetryAfter } from "./mailgun.ts";

const KEY = "key-0123456789abcdef0123456789abcdef";
const DOMAIN = "mg.example.com";
const SENDER = "Teleport <noreply@example.com>";
const EMAIL = { to: "a@example.com", subject: "s", text: "t" };

function config(o: Partial<MailgunConfig> = {}): MailgunConfig {
  return {
    kind: "mailgun",
    domain: DOMAIN,
    privateKey: new Secret(KEY),
    apiBase: "http://127.0.0.1:1",
    ...o,
  };
}

async function withMailgun(run: (mailer: Mailer, api: FakeMailgun) => Promise<void>) {
  const api = startMailgunServer({ apiKey: KEY, domains: [DOMAIN] });
  const mailer = createMailgunMailer(config({ apiBase: api.url }), SENDER);
  try {
    await run(mailer, api);
  } finally {
    await mailer.close();
    await api.close();
  }
}

const rejection = (promise: Promise<unknown>) => rejectionOf(promise, MailError);

Deno.test("mailgun: a 401 that echoes the Authorization header does not show the key", async () => {
  const basic = base64(`api:${KEY}`);
  const forms = [KEY, basic, basic.replace(/=+$/, ""), base64(KEY), basic.slice(0, 24)];
  await withMailgun(async (mailer, api) => {
    api.script(
      { status: 401, body: { message: `Invalid credentials: Basic ${basic}` } },
      { status: 401, body: `got "Authorization: Basic ${basic}" (${KEY}, ${base64(KEY)})` },
      { status: 401, body: { message: `truncated: ${basic.slice(0, 24)}...` } },
    );
    for (let i = 0; i < 3; i++) {
      const err = await rejection(mailer.send(EMAIL));
      assert.equal(err.status, 401);
      const everything = [err.message, err.response, JSON.stringify(err), Deno.inspect(err)]
        .join("\n");
      for (const form of forms) {
        assert.ok(!everything.includes(form), `${form} in: ${everything}`);
      }
      assert.match(everything, /\[redacted\]/);
    }
  });
});

Deno.test("mailgun: a key echoed across the answer's length limit shows no part of it", async () => {
  await withMailgun(async (mailer, api) => {
    // The cut (4,096 characters) falls inside the key.
    api.script({ status: 401, body: "x".repeat(4096 - 30) + ` ${KEY} echoed` });
    const err = await rejection(mailer.send(EMAIL));
    const everything = [err.message, err.response, Deno.inspect(err)].join("\n");
    for (let n = 6; n <= KEY.length; n++) {
      assert.ok(!everything.includes(KEY.slice(0, n)), `${n} characters of the key shown`);
    }
  });
});

/**
 * A loopback HTTP server that reads each request whole, counts it and gives
 * `answer` (raw bytes of a status line and headers, maybe part of a body),
 * then either hangs up or holds the connection open.
 */
function rawHttpServer(answer: string, then: "hang up" | "hold") {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  let posts = 0;
  const serving = (async () => {
    for await (const conn of listener) {
      (async () => {
        const buf = new Uint8Array(65536);
        let got = "";
        while (true) {
          const n = await conn.read(buf);
          if (n === null) return;
          got += new TextDecoder().decode(buf.subarray(0, n));
          const length = /content-length: (\d+)/i.exec(got);
          const end = got.indexOf("\r\n\r\n");
          if (length && end >= 0 && got.length - end - 4 >= Number(length[1])) break;
        }
        posts++;
        await conn.write(new TextEncoder().encode(answer));
        if (then === "hang up") conn.close();
        else held.push(conn);
      })().catch(() => {});
    }
  })();
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    posts: () => posts,
    async close() {
      listener.close();
      for (const conn of held) conn.close();
      await serving.catch(() => {});
    },
  };
}

Deno.test("mailgun: a 200 whose body breaks off or stalls counts as sent, once (Mailgun took it)", async () => {
  const head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 500\r\n\r\n";
  for (const [what, then] of [["breaks off", "hang up"], ["stalls", "hold"]] as const) {
    const server = rawHttpServer(`${head}{"id":"<a@`, then);
    const mailer = createMailgunMailer(config({ apiBase: server.url }), SENDER, {
      timeoutMs: 300,
    });
    try {
      const sent = await mailer.send(EMAIL);
      assert.match(sent.messageId, /@example\.com$/, `${what}: an id of our own`);
      assert.equal(server.posts(), 1, `${what}: posted once`);
    } finally {
      await server.close();
    }
  }
});

Deno.test("mailgun: Retry-After of a 429 or 503 is passed on", async () => {
  await withMailgun(async (mailer, api) => {
    api.script(
      { status: 429, body: { message: "slow down" }, headers: { "retry-after": "7" } },
      { status: 503, body: "busy", headers: { "retry-after": "120" } },
      { status: 429, body: { message: "slow down" } },
    );
    assert.equal((await rejection(mailer.send(EMAIL))).retryAfterMs, 7_000);
    assert.equal((await rejection(mailer.send(EMAIL))).retryAfterMs, 120_000);
    assert.equal((await rejection(mailer.send(EMAIL))).retryAfterMs, undefined);
  });
});

Deno.test("mailgun: Retry-After, in seconds or as an HTTP date", () => {
  const now = Date.UTC(2026, 11, 1, 12, 0, 0);
  const table: Array<[value: string | null, ms: number | undefined]> = [
    ["7", 7_000],
    [" 30 ", 30_000],
    ["0", 0],
    ["Tue, 01 Dec 2026 12:01:30 GMT", 90_000],
    // A date already past means "now".
    ["Tue, 01 Dec 2026 11:00:00 GMT", 0],
    ["-5", undefined],
    ["1.5", undefined],
    ["soon", undefined],
    ["", undefined],
    [null, undefined],
  ];
  for (const [value, ms] of table) {
    assert.equal(parseRetryAfter(value, now), ms, JSON.stringify(value));
  }
});

Deno.test("mailgun: a 200 without an id counts as sent, under a Message-ID of our own", async () => {
  await withMailgun(async (mailer, api) => {
    api.script({ status: 200, body: { message: "Queued. Thank you." } });
    const sent = await mailer.send(EMAIL);
    assert.match(sent.messageId, /^[^<>\s]+@example\.com$/, "an id in the sender's domain");
    // Replies follow, in that thread.
    await mailer.send({ ...EMAIL, inReplyTo: sent.messageId });
    assert.equal(api.requests[1]?.field("h:In-Reply-To"), `<${sent.messageId}>`);
    assert.equal(api.requests.length, 2);
  });
});

Deno.test("mailgun: the key is never sent over plain http off loopback without the opt-in", async () => {
  const mailer = createMailgunMailer(
    config({ apiBase: "http://mailgun-proxy.invalid:8080" }),
    SENDER,
  );
  for (const attempt of [() => mailer.send(EMAIL), () => mailer.checkHealth()]) {
    const err = await rejection(attempt());
    assert.equal(err.transient, false);
    assert.equal(err.code, "EINSECURE");
    assert.match(
      err.message,
      /refusing to send the API key unencrypted to "http:\/\/mailgun-proxy\.invalid:8080"/,
    );
  }
});

Deno.test("mailgun: an api_base with user info is never printed", async () => {
  const mailer = createMailgunMailer(
    config({ apiBase: `http://api:${KEY}@127.0.0.1:1` }),
    SENDER,
  );
  const err = await rejection(mailer.send(EMAIL));
  const everything = `${err.message} ${JSON.stringify(err)} ${Deno.inspect(err)}`;
  assert.ok(!everything.includes(KEY), everything);
  assert.match(err.message, /via "http:\/\/\*\*\*@127\.0\.0\.1:1"/);
});
