/**
 * The compare-and-swap helper against the fake cluster's client
 * (tests/fake_cluster.ts), which keeps Teleport's UpdatePluginData semantics
 * and rejects as the real client does.
 */
import assert from "node:assert/strict";
import { CompareFailedError, type PluginData, TeleportError } from "../teleport/types.ts";
import { FakeCluster, FakeTeleportClient, newAccessRequest } from "../../tests/fake_cluster.ts";
import { MAX_MODIFY_ATTEMPTS, modifyPluginData, planWrite } from "./cas.ts";
import { decodePluginData, type EmailPluginData, EMPTY_PLUGIN_DATA } from "./plugin_data.ts";

const REQ = "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80";

/**
 * A cluster holding request `REQ` without plugin data, a client of it, and
 * `write`: another writer's unconditional update of `REQ`'s data.
 */
function setup() {
  const cluster = new FakeCluster();
  cluster.putRequest(newAccessRequest(REQ));
  const client = new FakeTeleportClient(cluster);
  const write = (set: PluginData) => cluster.updatePluginData(REQ, set, {});
  return { client, write };
}

/** Runs `interfere(n)` inside the n-th update, before its check: a concurrent writer. */
function onUpdate(client: FakeTeleportClient, interfere: (n: number) => void): void {
  client.beforeCall = (call) => {
    if (call.method === "updatePluginData") interfere(call.count);
  };
}

/** Every key the Go plugin reads, absent: what a create expects. */
const NOTHING_STORED = {
  user: "",
  roles: "",
  request_reason: "",
  reviews_count: "",
  resolution: "",
  resolve_reason: "",
  email_threads: "",
  email: "",
  timestamp: "",
};

const created: EmailPluginData = {
  ...EMPTY_PLUGIN_DATA,
  user: "alice@example.com",
  roles: ["editor", "dba"],
  requestReason: "hotfix",
};

const createIfAbsent = (current: EmailPluginData | undefined) =>
  current === undefined ? created : undefined;

const bumpReviews = (to: number) => (current: EmailPluginData | undefined) =>
  current === undefined || current.reviewsCount >= to
    ? undefined
    : { ...current, reviewsCount: to };

Deno.test("create: writes the record, expecting every known key to be absent", async () => {
  const { client } = setup();
  const result = await modifyPluginData(client, REQ, createIfAbsent);

  assert.equal(result.changed, true);
  assert.deepEqual(result.data, created);
  assert.deepEqual(client.updates, [{
    requestId: REQ,
    set: { user: "alice@example.com", roles: "editor,dba", request_reason: "hotfix" },
    expect: NOTHING_STORED,
  }]);
  assert.deepEqual(client.data.get(REQ), {
    user: "alice@example.com",
    roles: "editor,dba",
    request_reason: "hotfix",
  });
});

Deno.test("create: only one of two racing creators wins", async () => {
  const { client, write } = setup();
  onUpdate(client, (call) => {
    if (call === 1) write({ user: "alice@example.com", roles: "editor", reviews_count: "1" });
  });
  let calls = 0;
  const result = await modifyPluginData(client, REQ, (current) => {
    calls++;
    return createIfAbsent(current);
  });

  assert.equal(result.changed, false);
  assert.equal(calls, 2, "re-read and re-applied after the compare failure");
  assert.equal(result.data?.reviewsCount, 1, "returns the winner's record");
  assert.equal(client.updates.length, 1);
});

Deno.test("update: expects every stored and known key as read, sets only what changes", async () => {
  const { client } = setup();
  const stored = {
    user: "alice@example.com",
    roles: "editor",
    email_threads: "ops@example.com/t/m@h",
    claim: "host-1",
  };
  client.data.set(REQ, { ...stored });

  const result = await modifyPluginData(client, REQ, bumpReviews(2));

  assert.equal(result.changed, true);
  assert.deepEqual(client.updates, [{
    requestId: REQ,
    set: { reviews_count: "2" },
    expect: { ...NOTHING_STORED, ...stored },
  }]);
  assert.deepEqual(client.data.get(REQ), { ...stored, reviews_count: "2" });
  assert.deepEqual(result.data, decodePluginData(client.data.get(REQ)));
});

Deno.test('update: keys that disappear are set to "" (deleted)', async () => {
  const { client } = setup();
  client.data.set(REQ, {
    user: "u",
    resolve_reason: "old",
    email: "old@example.com",
    timestamp: "2021-01-01 00:00:00 +0000 UTC",
  });

  await modifyPluginData(client, REQ, (current) => current && { ...current, resolveReason: "" });

  assert.deepEqual(client.updates[0]?.set, {
    resolve_reason: "",
    email: "",
    timestamp: "",
    email_threads: "old@example.com/2021-01-01 00:00:00 +0000 UTC/",
  });
  assert.deepEqual(client.data.get(REQ), {
    user: "u",
    email_threads: "old@example.com/2021-01-01 00:00:00 +0000 UTC/",
  });
});

Deno.test("a concurrent writer's change is kept: the update re-reads and re-applies", async () => {
  const { client, write } = setup();
  client.data.set(REQ, { user: "u", roles: "r" });
  onUpdate(client, (call) => {
    if (call === 1) write({ resolution: "APPROVED", resolve_reason: "ok" });
  });
  const seen: (EmailPluginData | undefined)[] = [];
  const result = await modifyPluginData(client, REQ, (current) => {
    seen.push(current);
    return current && { ...current, reviewsCount: 1 };
  });

  assert.equal(result.changed, true);
  assert.equal(seen.length, 2);
  assert.equal(seen[1]?.resolution, "APPROVED");
  assert.deepEqual(client.data.get(REQ), {
    user: "u",
    roles: "r",
    reviews_count: "1",
    resolution: "APPROVED",
    resolve_reason: "ok",
  });
});

Deno.test("gives up after 5 compare failures with CompareFailedError", async () => {
  const { client, write } = setup();
  client.data.set(REQ, { user: "u" });
  onUpdate(client, (call) => write({ reviews_count: String(100 + call) }));

  await assert.rejects(
    modifyPluginData(client, REQ, (current) => current && { ...current, user: "v" }),
    (error: unknown) => {
      assert.ok(error instanceof CompareFailedError);
      assert.match(error.message, /request "0b8e9c2e-[^"]+".* 5 times/);
      assert.ok(error.cause instanceof CompareFailedError);
      return true;
    },
  );
  assert.equal(MAX_MODIFY_ATTEMPTS, 5);
  assert.equal(client.callCount("getPluginData"), 5);
  assert.equal(client.updates.length, 5);
});

Deno.test("attempts option bounds the rounds; it must be at least 1", async () => {
  const { client, write } = setup();
  onUpdate(client, (call) => write({ user: `other-${call}` }));
  await assert.rejects(
    modifyPluginData(client, REQ, () => created, { attempts: 2 }),
    CompareFailedError,
  );
  assert.equal(client.updates.length, 2);
  await assert.rejects(modifyPluginData(client, REQ, () => created, { attempts: 0 }), RangeError);
});

Deno.test("no write when the update returns undefined or changes nothing", async () => {
  const { client } = setup();
  client.data.set(REQ, { user: "u", reviews_count: "3" });

  const unchanged = await modifyPluginData(client, REQ, bumpReviews(2));
  assert.deepEqual(unchanged, {
    data: decodePluginData({ user: "u", reviews_count: "3" }),
    changed: false,
    raw: { user: "u", reviews_count: "3" },
  });

  const same = await modifyPluginData(client, REQ, (current) => current && { ...current });
  assert.equal(same.changed, false);

  const absent = await modifyPluginData(client, "other", (current) => current);
  assert.deepEqual(absent, { data: undefined, changed: false });

  assert.equal(client.updates.length, 0);
});

Deno.test("a known map saves the read; a stale one costs a compare failure and a read", async () => {
  const { client } = setup();
  client.data.set(REQ, { user: "u", reviews_count: "1" });
  const fresh = await modifyPluginData(client, REQ, bumpReviews(2), {
    known: { user: "u", reviews_count: "1" },
  });
  assert.equal(fresh.changed, true);
  assert.equal(client.callCount("getPluginData"), 0, "the known map stood in for the read");
  assert.deepEqual(fresh.raw, { user: "u", reviews_count: "2" });

  let conflicts = 0;
  const stale = await modifyPluginData(client, REQ, bumpReviews(3), {
    known: { user: "u", reviews_count: "1" },
    onConflict: () => conflicts++,
  });
  assert.equal(stale.changed, true);
  assert.equal(client.callCount("getPluginData"), 1);
  assert.equal(conflicts, 0, "a stale guess is not another writer's conflict");
  assert.equal(client.data.get(REQ)!.reviews_count, "3");

  const noop = await modifyPluginData(client, REQ, bumpReviews(3), {
    known: { user: "u", reviews_count: "1" },
  });
  assert.equal(noop.changed, false, "no change is decided on what is stored, not on the guess");
});

Deno.test("a record without values counts as absent", async () => {
  const { client } = setup();
  client.data.set(REQ, {});
  const result = await modifyPluginData(client, REQ, createIfAbsent);
  assert.equal(result.changed, true);
});

Deno.test("errors other than a compare failure are thrown at once", async () => {
  const { client } = setup();
  client.failNext(
    "updatePluginData",
    new TeleportError("transient", "UpdatePluginData failed: unavailable"),
  );
  await assert.rejects(modifyPluginData(client, REQ, createIfAbsent), /unavailable/);
  assert.equal(client.updates.length, 1);

  const throwing = setup().client;
  await assert.rejects(
    modifyPluginData(throwing, REQ, () => {
      throw new TypeError("bad update");
    }),
    TypeError,
  );
  assert.equal(throwing.updates.length, 0);
});

Deno.test("an aborted signal stops before the next round", async () => {
  const { client, write } = setup();
  const controller = new AbortController();
  onUpdate(client, () => {
    write({ user: "other" });
    controller.abort(new Error("shutting down"));
  });
  await assert.rejects(
    modifyPluginData(client, REQ, () => created, { signal: controller.signal }),
    /shutting down/,
  );
  assert.equal(client.updates.length, 1);
});

Deno.test('planWrite: set = changes ("" deletes), expect = every key read or written', () => {
  const cases: [string, PluginData, PluginData, PluginData, PluginData][] = [
    // name, stored, wanted, set, expect
    ["create", {}, { user: "u" }, { user: "u" }, { user: "" }],
    ["no change", { user: "u" }, { user: "u" }, {}, { user: "u" }],
    ["change", { user: "u", roles: "a" }, { user: "v", roles: "a" }, { user: "v" }, {
      user: "u",
      roles: "a",
    }],
    ["delete", { user: "u", roles: "a" }, { user: "u" }, { roles: "" }, { user: "u", roles: "a" }],
    ["add", { user: "u" }, { user: "u", resolution: "EXPIRED" }, { resolution: "EXPIRED" }, {
      user: "u",
      resolution: "",
    }],
    ["empty wanted value deletes", { user: "u" }, { user: "" }, { user: "" }, { user: "u" }],
  ];
  for (const [name, stored, wanted, set, expect] of cases) {
    assert.deepEqual(planWrite(stored, wanted), { set, expect }, name);
  }
  assert.deepEqual(
    planWrite({ user: "u", resolution: "DENIED" }, { user: "v", resolution: "DENIED" }, [
      "user",
      "resolution",
      "reviews_count",
    ]),
    {
      set: { user: "v" },
      expect: { user: "u", resolution: "DENIED", reviews_count: "" },
    },
    "watched keys are expected as read even when untouched",
  );
});
