/**
 * IdentityStore against real identity files and the fake Auth Service over
 * loopback: startup checks, reloads (periodic and on demand), broken files,
 * and the reconnect before the live certificate expires.
 */

import { type Defer, withTeardown } from "../../tests/bounded.ts";
import assert from "node:assert/strict";
import type { TeleportConfig } from "../config/types.ts";
import { connectTeleport, type GrpcTeleportClient } from "./client.ts";
import { defaultIdentityFs, IdentityStore, RECONNECT_BEFORE_EXPIRY_MS } from "./identity_store.ts";
import { type Clock, FakeClock } from "../lib/clock.ts";
import { runWatcher } from "./watcher.ts";
import { type ClientIdentity, TeleportTestServer } from "../../tests/teleport_server.ts";
import { captureTestLogs } from "../../tests/test_log.ts";

/** Upper bound of one test; each should take well under 5 s. */
const TEST_TIMEOUT_MS = 15_000;
/** How long to wait for something asynchronous to show. */
const WAIT_MS = 5_000;
/** The default refresh interval (`refresh_identity_interval = "1m"`). */
const MINUTE_MS = 60_000;
const HOUR_MS = 3600_000;
const DAY_MS = 24 * HOUR_MS;

// --- logs ------------------------------------------------------------------

const testLogger = captureTestLogs();

// --- helpers ---------------------------------------------------------------

/** A test with a deadline, a temporary directory and a teardown stack run however it ends. */
function bounded(name: string, fn: (defer: Defer, dir: string) => Promise<void>): void {
  Deno.test(name, async () => {
    const dir = await Deno.makeTempDir({ prefix: "identity-store-test-" });
    await withTeardown(TEST_TIMEOUT_MS, (defer) => {
      defer(() => Deno.remove(dir, { recursive: true }));
      return fn(defer, dir);
    });
  });
}

async function startServer(defer: Defer): Promise<TeleportTestServer> {
  const server = await TeleportTestServer.start({ keyType: "ec" });
  defer(() => server.close());
  return server;
}

function config(identityFile: string, o: Partial<TeleportConfig> = {}): TeleportConfig {
  return {
    addr: "127.0.0.1:3025",
    credentials: { kind: "identity", identityFile },
    refreshIdentity: true,
    refreshIdentityIntervalMs: MINUTE_MS,
    ...o,
  };
}

/** A store reading `path`, with its log lines; its timers end with the test. */
function newStore(
  defer: Defer,
  path: string,
  o: Partial<TeleportConfig> = {},
  clock?: Clock,
) {
  const { log, lines } = testLogger();
  const store = new IdentityStore({
    config: config(path, o),
    fs: defaultIdentityFs(),
    log,
    ...(clock ? { clock } : {}),
  });
  const stop = new AbortController();
  store.runRefresh(stop.signal);
  defer(() => stop.abort());
  return { store, lines, stop };
}

async function connect(
  defer: Defer,
  server: TeleportTestServer,
  store: IdentityStore,
): Promise<GrpcTeleportClient> {
  const { client } = await connectTeleport({
    addr: server.addr,
    credentials: store.credentials,
    clusterName: store.identity.clusterName,
    env: {},
    log: testLogger().log,
    timeoutMs: WAIT_MS,
  });
  defer(() => client.close());
  return client;
}

/** The serial grpc-js's peer certificate gives vs. X509Certificate's: compare normalized. */
function sameSerial(a: string, b: string): boolean {
  const n = (s: string) => s.toLowerCase().replace(/^0+/, "");
  return n(a) === n(b);
}

/** The certificate serial the server saw on the latest call of `method`. */
function lastSerial(server: TeleportTestServer, method = "Ping"): string | undefined {
  return server.peers.findLast((p) => p.method === method)?.serial;
}

async function eventually(condition: () => boolean, what: string, ms = WAIT_MS): Promise<void> {
  const end = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > end) throw new Error(`Timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Pings until a call gets through (the server may have just restarted). */
async function pingThrough(client: GrpcTeleportClient): Promise<void> {
  const end = Date.now() + WAIT_MS;
  for (;;) {
    try {
      await client.ping();
      return;
    } catch (error) {
      if (Date.now() > end) throw error;
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

/** Writes an identity file with a new certificate (optionally with given validity). */
function renew(
  server: TeleportTestServer,
  path: string,
  o: { notBefore?: Date; notAfter?: Date; user?: string } = {},
): Promise<ClientIdentity> {
  return server.writeIdentity(path, o);
}

/**
 * A server, an identity file `${dir}/identity` it issued (with `validity`)
 * and a store that loaded it; its timers end with the test.
 */
async function loadedStore(
  defer: Defer,
  dir: string,
  validity: { notBefore?: Date; notAfter?: Date } = {},
  o: Partial<TeleportConfig> = {},
  clock?: Clock,
) {
  const server = await startServer(defer);
  const path = `${dir}/identity`;
  const first = await renew(server, path, validity);
  const loaded = newStore(defer, path, o, clock);
  await loaded.store.load();
  return { server, path, first, ...loaded };
}

/** A {@linkcode loadedStore} and a client connected with the store's credentials. */
async function connectedStore(
  defer: Defer,
  dir: string,
  validity: { notBefore?: Date; notAfter?: Date } = {},
) {
  const loaded = await loadedStore(defer, dir, validity);
  const client = await connect(defer, loaded.server, loaded.store);
  return { ...loaded, client };
}

/**
 * A {@linkcode loadedStore} without periodic refresh, timed by a fake clock
 * and marked connected; it counts the reconnects it asks for.
 */
async function clockedStore(
  defer: Defer,
  dir: string,
  validity: { notBefore?: Date; notAfter?: Date } = {},
) {
  const clock = new FakeClock(Date.now());
  const loaded = await loadedStore(defer, dir, validity, { refreshIdentity: false }, clock);
  loaded.store.markConnected();
  const reconnects = { count: 0 };
  loaded.store.onReconnectNeeded(() => reconnects.count++);
  return { ...loaded, clock, reconnects };
}

// --- 6. startup checks -----------------------------------------------------

bounded(
  "load() refuses an expired identity: which certificate, when, how to renew",
  async (defer, dir) => {
    const server = await startServer(defer);
    const path = `${dir}/identity`;
    const expired = await renew(server, path, {
      user: "bot-email",
      notBefore: new Date(Date.now() - 2 * HOUR_MS),
      notAfter: new Date(Date.now() - HOUR_MS),
    });
    const { store } = newStore(defer, path);
    const error = await store.load().then(
      () => assert.fail("an expired identity was accepted"),
      (e: Error) => e,
    );
    const m = error.message;
    assert.match(m, /^TLS certificate "CN=bot-email, O=access-plugin" \(serial 0*([0-9A-F]+)\)/i);
    assert.ok(sameSerial(/serial ([0-9A-F]+)/i.exec(m)?.[1] ?? "", expired.serial), m);
    assert.ok(m.includes(`from "${path}"`), m);
    assert.ok(m.includes(`expired at ${expired.notAfter.toISOString()}`), m);
    assert.ok(
      m.includes(`renew it with "tctl auth sign --user=bot-email --format=file --out=${path}"`),
      m,
    );
    assert.match(m, /Machine ID \(tbot\)/);
    assert.throws(() => store.identity, /Identity not loaded yet/);
  },
);

bounded(
  "load() warns when the certificate expires within the refresh interval",
  async (defer, dir) => {
    const server = await startServer(defer);
    const path = `${dir}/identity`;
    const soon = await renew(server, path, { notAfter: new Date(Date.now() + 30_000) });
    const { store, lines } = newStore(defer, path);
    const identity = await store.load();
    assert.ok(sameSerial(identity.serial, soon.serial));
    const warnings = lines().filter((l) => / WARN /.test(l));
    assert.equal(warnings.length, 1, lines().join(""));
    // (The log quotes values that contain quotes: match the parts without any.)
    const w = warnings[0]!;
    assert.ok(w.includes(`CN=access-plugin`), w);
    assert.ok(w.includes(`expires at ${soon.notAfter.toISOString()} (in `), w);
    assert.ok(w.includes(`within the refresh interval of 1m; renew it with`), w);
    assert.ok(w.includes(`tctl auth sign --user=access-plugin --format=file --out=`), w);

    // A day of validity left: no warning.
    const later = `${dir}/identity-later`;
    await renew(server, later);
    const quiet = newStore(defer, later);
    await quiet.store.load();
    assert.deepEqual(quiet.lines().filter((l) => / WARN /.test(l)), []);
  },
);

// --- 7. reloads --------------------------------------------------------------

bounded(
  "reload(): the live connection keeps its certificate, the next new one presents the new one",
  async (defer, dir) => {
    const { server, path, first, store, lines, client } = await connectedStore(defer, dir);
    assert.equal(lastSerial(server), first.serial);

    assert.equal(await store.reload("test"), false, "an unchanged file is not a change");
    const second = await renew(server, path);
    assert.equal(await store.reload("test"), true);
    assert.ok(sameSerial(store.identity.serial, second.serial));
    assert.ok(
      lines().some((l) =>
        new RegExp(`INFO  Identity reloaded \\(test\\): certificate serial 0*${second.serial}`, "i")
          .test(l)
      ),
      lines().join(""),
    );

    // The open connection is not disturbed...
    await client.ping();
    assert.equal(lastSerial(server), first.serial);
    // ...and the next connection (the server restarted) uses the new certificate.
    await server.restart();
    await pingThrough(client);
    assert.equal(lastSerial(server), second.serial);
    assert.deepEqual(server.serialsSeen, [first.serial, second.serial]);
  },
);

bounded(
  "reload(): a half-written, garbage or expired file keeps the old credentials and logs an error",
  async (defer, dir) => {
    const { server, path, first: good, store, lines, client } = await connectedStore(defer, dir);
    const goodText = await Deno.readTextFile(path);

    const broken: [what: string, text: string, message: RegExp][] = [
      [
        "cut in a PEM block",
        goodText.slice(0, Math.floor(goodText.length * 0.8)),
        /Cannot reload the identity \(test\), keeping the current one: .*unterminated PEM block \(truncated file\?\)/,
      ],
      ["empty", "", /Cannot reload the identity \(test\), keeping the current one: .* is empty/],
      [
        "garbage",
        "\x00\x01 not an identity file\n",
        /Cannot reload the identity \(test\), keeping the current one: .*has no PEM blocks/,
      ],
    ];
    for (const [what, text, message] of broken) {
      await Deno.writeTextFile(path, text);
      const before = lines().length;
      assert.equal(await store.reload("test"), false, what);
      const logged = lines().slice(before);
      assert.ok(logged.some((l) => / ERROR /.test(l) && message.test(l)), `${what}: ${logged}`);
      assert.ok(sameSerial(store.identity.serial, good.serial), what);
    }

    const before = lines().length;
    await renew(server, path, {
      notBefore: new Date(Date.now() - 2 * HOUR_MS),
      notAfter: new Date(Date.now() - HOUR_MS),
    });
    assert.equal(await store.reload("test"), false);
    assert.ok(
      lines().slice(before).some((l) =>
        /ERROR Not using the reloaded identity \(test\): .* expired at /.test(l)
      ),
      lines().join(""),
    );

    // New connections still work, with the old certificate.
    await server.restart();
    await pingThrough(client);
    assert.equal(lastSerial(server), good.serial);
    assert.deepEqual(server.serialsSeen, [good.serial]);
  },
);

bounded("refresh_identity: the file is re-read every interval", async (defer, dir) => {
  const server = await startServer(defer);
  const path = `${dir}/identity`;
  await renew(server, path);
  const { store } = newStore(defer, path, { refreshIdentityIntervalMs: 50 });
  await store.load();
  const next = await renew(server, path);
  await eventually(() => sameSerial(store.identity.serial, next.serial), "the periodic reload");
});

bounded(
  "reconnect before expiry: the watch stream moves to a new connection with the new certificate",
  async (defer, dir) => {
    // Closer to expiry than the reconnect margin: a new certificate means reconnect now.
    const { server, path, first: old, store, lines, client } = await connectedStore(defer, dir, {
      notAfter: new Date(Date.now() + RECONNECT_BEFORE_EXPIRY_MS / 2),
    });
    store.markConnected();
    let reconnects = 0;
    store.onReconnectNeeded(() => {
      reconnects++;
      client.reconnect();
      store.markConnected();
    });

    const stop = new AbortController();
    let inits = 0;
    const seen: string[] = [];
    const done = runWatcher({
      client,
      kinds: ["access_request"],
      handleEvent: (event) => {
        if (event.type === "put" && event.kind === "access_request") seen.push(event.request.id);
        return Promise.resolve();
      },
      reconcile: () => Promise.resolve([]),
      onInit: () => void inits++,
      log: testLogger().log,
      shutdownGraceMs: 100,
    }, stop.signal);
    defer(async () => {
      stop.abort();
      await done;
    });
    await eventually(() => inits === 1, "the first INIT");
    const oldWatch = server.peers.findLast((p) => p.method === "WatchEvents")!;
    assert.equal(oldWatch.serial, old.serial);

    const fresh = await renew(server, path);
    assert.equal(await store.reload("test"), true);
    await eventually(() => reconnects === 1, "onReconnectNeeded");
    assert.ok(
      lines().some((l) => /certificate expires soon: reconnecting with the new one/.test(l)),
      lines().join(""),
    );
    await eventually(() => inits === 2, "the watch stream back");
    const newWatch = server.peers.findLast((p) => p.method === "WatchEvents")!;
    assert.equal(newWatch.serial, fresh.serial);
    assert.notEqual(newWatch.peer, oldWatch.peer, "a new connection");
    await server.waitForWatchers(1);
    server.createRequest({ id: "after-rotation", user: "u@example.com", roles: ["r"] });
    await eventually(() => seen.includes("after-rotation"), "the event on the new stream");
    // Calls go over the new connection too.
    await client.ping();
    assert.equal(lastSerial(server), fresh.serial);
    // Once per rotation: the new connection's certificate is the newest one.
    assert.equal(reconnects, 1);
  },
);

bounded(
  "a live certificate valid for weeks is not reopened at once (no timer overflow)",
  async (defer, dir) => {
    // `tctl auth sign --ttl=...` for a plugin is often long: beyond setTimeout's 24.8 days.
    const { server, path, first: live, clock, store, reconnects } = await clockedStore(defer, dir, {
      notAfter: new Date(Date.now() + 30 * DAY_MS),
    });
    await renew(server, path, { notAfter: new Date(Date.now() + 60 * DAY_MS) });
    assert.equal(await store.reload("test"), true);
    // Armed for the margin (two refresh intervals at least) before the live certificate ends.
    const due = live.notAfter.getTime() - Math.max(RECONNECT_BEFORE_EXPIRY_MS, 2 * MINUTE_MS);
    assert.equal(clock.nextDue, due);
    await clock.tick(due - clock.now() - 1);
    assert.equal(reconnects.count, 0);
    await clock.tick(1);
    assert.equal(reconnects.count, 1);
  },
);

bounded(
  "without refresh_identity, a reconnect armed by a reload still ends with the signal",
  async (defer, dir) => {
    const { server, path, clock, store, stop, reconnects } = await clockedStore(defer, dir);
    // SIGHUP reloads even without refresh_identity; the new certificate arms the reconnect.
    await renew(server, path, { notAfter: new Date(Date.now() + 2 * DAY_MS) });
    assert.equal(await store.reload("SIGHUP"), true);
    assert.equal(clock.pendingTimers, 1, "the reconnect is armed");
    stop.abort();
    assert.equal(clock.pendingTimers, 0, "the reconnect timer outlived the signal");
    // A reload after the stop arms nothing either.
    await renew(server, path, { notAfter: new Date(Date.now() + 3 * DAY_MS) });
    assert.equal(await store.reload("SIGHUP"), true);
    assert.equal(clock.pendingTimers, 0);
    await clock.tick(3 * DAY_MS);
    assert.equal(reconnects.count, 0);
  },
);

// --- hardening (issue 12) ------------------------------------------------------

/** An IdentityFs over the real files that counts its reads. */
function countingFs() {
  const real = defaultIdentityFs();
  const counter = { reads: 0 };
  return {
    counter,
    fs: {
      readTextFile: (path: string) => {
        counter.reads++;
        return real.readTextFile(path);
      },
      stat: real.stat,
    },
  };
}

bounded(
  "refresh_identity_interval of 597h (over setInterval's 2^31-1 ms) does not spin",
  async (defer, dir) => {
    const server = await startServer(defer);
    const path = `${dir}/identity`;
    await renew(server, path);
    const { counter, fs } = countingFs();
    const store = new IdentityStore({
      config: config(path, { refreshIdentityIntervalMs: 597 * HOUR_MS }),
      fs,
      log: testLogger().log,
    });
    await store.load();
    const stop = new AbortController();
    defer(() => stop.abort());
    // The real clock: a raw setInterval of 597 h fires at once, again and again (the file
    // was re-read 500-600 times a second).
    store.runRefresh(stop.signal);
    const before = counter.reads;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(counter.reads - before, 0, "the identity was re-read before its interval");

    // And on a fake clock it is re-read once the interval has passed, not before.
    const clock = new FakeClock(Date.now());
    const timed = new IdentityStore({
      config: config(path, { refreshIdentityIntervalMs: 597 * HOUR_MS }),
      fs,
      log: testLogger().log,
      clock,
    });
    await timed.load();
    timed.runRefresh(stop.signal);
    const start = counter.reads;
    await clock.tick(597 * HOUR_MS - 1);
    assert.equal(counter.reads - start, 0);
    await clock.tick(1);
    assert.equal(counter.reads - start, 1);
  },
);

bounded(
  "reload(): an identity of another cluster (no CA in common) is not switched to",
  async (defer, dir) => {
    const server = await startServer(defer);
    const other = await TeleportTestServer.start({ keyType: "ec" });
    defer(() => other.close());
    const path = `${dir}/identity`;
    const good = await renew(server, path);
    const { store, lines } = newStore(defer, path);
    await store.load();
    const client = await connect(defer, server, store);
    store.markConnected();

    // Written for a cluster whose CA the live connection does not trust: accepted, this
    // identity only failed at the next reconnect.
    await other.writeIdentity(path);
    assert.equal(await store.reload("test"), false);
    assert.ok(sameSerial(store.identity.serial, good.serial));
    assert.ok(
      lines().some((l) =>
        / ERROR Not using the reloaded identity \(test\): its CA certificates share none with the current identity's/
          .test(l)
      ),
      lines().join(""),
    );
    // The next connection still works, with the old certificate.
    await server.restart();
    await pingThrough(client);
    assert.equal(lastSerial(server), good.serial);

    // A renewal by the same cluster is used as before.
    const next = await renew(server, path);
    assert.equal(await store.reload("test"), true);
    assert.ok(sameSerial(store.identity.serial, next.serial));
  },
);

bounded(
  "defaultIdentityFs refuses what is not a small regular file, at once",
  async (_defer, dir) => {
    const fs = defaultIdentityFs();
    const big = `${dir}/big`;
    {
      using file = await Deno.open(big, { write: true, create: true });
      await file.truncate(4 * 1024 * 1024 + 1);
    }
    await assert.rejects(fs.readTextFile("/dev/zero"), /is a character device, not a regular file/);
    await assert.rejects(fs.readTextFile(dir), /is a directory/);
    await assert.rejects(fs.readTextFile(big), /is larger than the 4 MiB limit/);
  },
);
