import assert from "node:assert/strict";
import type { MailgunConfig } from "../config/types.ts";
import { Secret } from "../lib/secret.ts";
import { type FakeMailgun, startMailgunServer } from "../../tests/mailgun_server.ts";
import { rejection } from "../../tests/assert.ts";
import { type Mailer, MailError } from "./mailer.ts";
import {
  createMailgunMailer,
  mailgunHttpError,
  type MailgunMailerDeps,
  mailgunNetworkError,
} from "./mailgun.ts";

const KEY = "key-0123456789abcdef0123456789abcdef";
const DOMAIN = "mg.example.com";
const SENDER = "Teleport <noreply@example.com>";

async function withMailgun(
  run: (mailer: Mailer, api: FakeMailgun) => Promise<void>,
  cfg: Partial<MailgunConfig> = {},
  deps: MailgunMailerDeps = {},
): Promise<void> {
  const api = startMailgunServer({ apiKey: KEY, domains: [DOMAIN] });
  const mailer = createMailgunMailer(
    { kind: "mailgun", domain: DOMAIN, privateKey: new Secret(KEY), apiBase: api.url, ...cfg },
    SENDER,
    deps,
  );
  try {
    await run(mailer, api);
  } finally {
    await mailer.close();
    await api.close();
  }
}

/** The `MailError` a send or health check rejects with. */
const mailError = (promise: Promise<unknown>) => rejection(promise, MailError);

Deno.test("mailgun: sends the fields with basic auth to the configured api_base", async () => {
  await withMailgun(async (mailer, api) => {
    const sent = await mailer.send({
      to: "alice@example.com",
      subject: "teleport Role Request 1234",
      text: "You have a new Role Request",
      html: "<p>You have a new Role Request</p>",
    });
    const [req] = api.requests;
    assert.ok(req);
    assert.equal(req.method, "POST");
    assert.equal(req.path, `/v3/${DOMAIN}/messages`);
    assert.match(req.contentType, /^multipart\/form-data/);
    assert.deepEqual(req.auth, { username: "api", password: KEY });
    assert.equal(req.status, 200);
    assert.deepEqual(Object.fromEntries(req.fields), {
      from: SENDER,
      to: "alice@example.com",
      subject: "teleport Role Request 1234",
      text: "You have a new Role Request",
      html: "<p>You have a new Role Request</p>",
      "h:Auto-Submitted": "auto-generated",
      "o:require-tls": "yes",
    });
    assert.equal(`<${sent.messageId}>`, api.ids[0]);
    assert.doesNotMatch(sent.messageId, /[<>]/);
    assert.match(sent.messageId, new RegExp(`@${DOMAIN.replaceAll(".", "\\.")}$`));
  });
});

Deno.test("mailgun: replies carry In-Reply-To and References in one pair of brackets", async () => {
  await withMailgun(async (mailer, api) => {
    const first = await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
    // The id as Mailgun returned it (bracketed), as we store it, and double-bracketed.
    for (const id of [api.ids[0] ?? "", first.messageId, `<${api.ids[0]}>`]) {
      await mailer.send({ to: "a@example.com", subject: "s", text: "r", inReplyTo: id });
    }
    for (const req of api.requests.slice(1)) {
      assert.equal(req.field("h:In-Reply-To"), `<${first.messageId}>`);
      assert.equal(req.field("h:References"), `<${first.messageId}>`);
    }
  });
});

Deno.test("mailgun: an EU api_base is used as given", async () => {
  // The fake stands in for https://api.eu.mailgun.net: whatever api_base says is where we post.
  const api = startMailgunServer({ apiKey: KEY, domains: [DOMAIN] });
  try {
    const eu = createMailgunMailer(
      { kind: "mailgun", domain: DOMAIN, privateKey: new Secret(KEY), apiBase: api.url },
      SENDER,
    );
    await eu.send({ to: "a@example.com", subject: "s", text: "t" });
    assert.equal(api.requests.length, 1);
    const nowhere = createMailgunMailer(
      {
        kind: "mailgun",
        domain: DOMAIN,
        privateKey: new Secret(KEY),
        apiBase: "http://127.0.0.1:1",
      },
      SENDER,
    );
    const err = await mailError(nowhere.send({ to: "a@example.com", subject: "s", text: "t" }));
    assert.match(err.message, /via "http:\/\/127\.0\.0\.1:1"/);
    assert.equal(api.requests.length, 1);
  } finally {
    await api.close();
  }
});

Deno.test("mailgun: CR/LF in the subject or a header value is flattened", async () => {
  await withMailgun(async (mailer, api) => {
    await mailer.send({
      to: "a@example.com",
      subject: "Role Request\r\nBcc: x@evil.example",
      text: "t",
      headers: { "X-Reason": "why\r\nBcc: x@evil.example" },
    });
    const [req] = api.requests;
    assert.equal(req?.field("subject"), "Role Request Bcc: x@evil.example");
    assert.equal(req?.field("h:X-Reason"), "why Bcc: x@evil.example");
    assert.equal(req?.field("bcc"), undefined);
  });
});

Deno.test("mailgun: 429 and 5xx are transient", async () => {
  await withMailgun(async (mailer, api) => {
    api.script(
      { status: 429, body: { message: "Too many requests" } },
      { status: 500, body: { message: "Internal error" } },
      { status: 503, body: "<html>Service Unavailable</html>" },
    );
    for (const status of [429, 500, 503]) {
      const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.equal(err.transient, true, `HTTP ${status}`);
      assert.equal(err.status, status);
      assert.equal(err.code, `HTTP_${status}`);
      assert.equal(err.recipient, "a@example.com");
    }
    await mailer.send({ to: "a@example.com", subject: "s", text: "t" });
  });
});

Deno.test("mailgun: 400 is permanent and keeps the API's message", async () => {
  await withMailgun(async (mailer, api) => {
    api.script({ status: 400, body: { message: "'to' parameter is not a valid address" } });
    const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
    assert.equal(err.transient, false);
    assert.equal(err.status, 400);
    assert.equal(err.response, "'to' parameter is not a valid address");
    assert.match(err.message, /HTTP 400 .*'to' parameter is not a valid address/);
  });
});

Deno.test("mailgun: a wrong key is a 401, a mailer down (transient: a rotated key is fixed, no recipient given up on), that does not show the key", async () => {
  const wrongKey = "key-ffffffffffffffffffffffffffffffff";
  await withMailgun(async (mailer, api) => {
    for (
      const err of [
        await mailError(mailer.checkHealth()),
        await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" })),
      ]
    ) {
      assert.equal(err.transient, true);
      assert.equal(err.status, 401);
      assert.equal(err.response, "Forbidden");
      const everything = `${err.message} ${JSON.stringify(err)} ${Deno.inspect(err)}`;
      assert.ok(!everything.includes(wrongKey), everything);
    }
    assert.equal(api.requests[0]?.auth?.password, wrongKey);
  }, { privateKey: new Secret(wrongKey) });
});

Deno.test("mailgun: an unknown domain is a mailer down (transient) until the config is fixed", async () => {
  await withMailgun(async (mailer) => {
    const err = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
    assert.equal(err.transient, true);
    assert.equal(err.status, 404);
    assert.match(err.response ?? "", /Domain not found/);
  }, { domain: "other.example.com" });
});

Deno.test("mailgun: no answer (refused, timed out) is transient, not a 400", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const closedPort = listener.addr.port;
  listener.close();
  const refused = createMailgunMailer(
    {
      kind: "mailgun",
      domain: DOMAIN,
      privateKey: new Secret(KEY),
      apiBase: `http://127.0.0.1:${closedPort}`,
    },
    SENDER,
  );
  const err = await mailError(refused.send({ to: "a@example.com", subject: "s", text: "t" }));
  assert.equal(err.transient, true);
  assert.equal(err.code, "ECONNREFUSED");
  assert.equal(err.status, undefined);

  await withMailgun(
    async (mailer, api) => {
      api.script({ status: 200, body: { id: "<late@mg>", message: "Queued" }, delayMs: 300 });
      const slow = await mailError(mailer.send({ to: "a@example.com", subject: "s", text: "t" }));
      assert.equal(slow.transient, true);
      assert.equal(slow.code, "ETIMEDOUT");
      assert.match(slow.message, /no answer within 50 ms \(ETIMEDOUT\)/);
    },
    {},
    { timeoutMs: 50 },
  );
});

Deno.test("mailgun: the health check is a test-mode send to the sender", async () => {
  await withMailgun(async (mailer, api) => {
    await mailer.checkHealth();
    const [req] = api.requests;
    assert.equal(req?.field("o:testmode"), "yes");
    assert.equal(req?.field("from"), SENDER);
    assert.equal(req?.field("to"), "noreply@example.com");
    api.script({ status: 500, body: { message: "down" } });
    const err = await mailError(mailer.checkHealth());
    assert.equal(err.transient, true);
    assert.match(
      err.message,
      /^Mailgun health check via "http:\/\/127\.0\.0\.1:\d+" failed: HTTP 500/,
    );
  });
});

Deno.test("mailgun: an aborted send rejects with the signal's reason", async () => {
  await withMailgun(async (mailer, api) => {
    const controller = new AbortController();
    const reason = new Error("shutting down");
    api.script({ status: 200, body: { id: "<x@mg>", message: "Queued" }, delayMs: 200 });
    const sending = mailer.send(
      { to: "a@example.com", subject: "s", text: "t" },
      controller.signal,
    );
    setTimeout(() => controller.abort(reason), 20);
    await assert.rejects(sending, (err) => err === reason);
    await api.waitFor(1);
  });
});

Deno.test("mailgun: error mapping of answers and of requests without one", () => {
  const context = {
    what: "send",
    apiBase: "https://api.mailgun.net",
    recipient: "a@b.c",
    key: "k3y",
  };
  const http = (status: number, body: string) =>
    mailgunHttpError({ status, statusText: "", body }, context);
  const answers: Array<[MailError, boolean, string]> = [
    [http(400, JSON.stringify({ message: "bad" })), false, "HTTP_400"],
    [http(413, "too large"), false, "HTTP_413"],
    [http(402, "pay"), true, "HTTP_402"],
    [http(403, "domain disabled"), true, "HTTP_403"],
    [
      http(
        403,
        JSON.stringify({
          message: "Domain sandbox123.mailgun.org is not allowed to send: Free accounts are for " +
            "test purposes only. Please upgrade or add the address to authorized recipients in " +
            "Account Settings.",
        }),
      ),
      false,
      "HTTP_403",
    ],
    [http(301, ""), true, "HTTP_301"],
    [http(429, "slow down"), true, "HTTP_429"],
    [http(502, "<html>"), true, "HTTP_502"],
  ];
  const fetchFailed = (why: string) => new TypeError("fetch failed", { cause: new Error(why) });
  const network = (err: unknown, timedOut = false) =>
    mailgunNetworkError(err, { ...context, timedOut, timeoutMs: 10_000 });
  const failures: Array<[MailError, boolean, string]> = [
    [
      network(fetchFailed("tcp connect error: Connection refused (os error 111)")),
      true,
      "ECONNREFUSED",
    ],
    [network(fetchFailed("connection reset by peer")), true, "ECONNRESET"],
    [network(fetchFailed("dns error: failed to lookup address information")), true, "ENOTFOUND"],
    [network(fetchFailed("invalid peer certificate: UnknownIssuer")), true, "ERR_TLS_CERT"],
    [network(new DOMException("timed out", "TimeoutError"), true), true, "ETIMEDOUT"],
    [network(new TypeError("boom")), true, "ENETWORK"],
  ];
  for (const [err, transient, code] of [...answers, ...failures]) {
    assert.equal(err.transient, transient, err.message);
    assert.equal(err.code, code, err.message);
    assert.equal(err.recipient, "a@b.c");
    assert.equal(err.server, "api.mailgun.net");
  }
  const leaky = http(401, "bad key k3y");
  assert.ok(!leaky.message.includes("k3y"));
  assert.equal(leaky.response, "bad key [redacted]");
});
