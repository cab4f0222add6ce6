import assert from "node:assert/strict";
import { CompareFailedError, type PluginData } from "../teleport/types.ts";
import { MAX_MODIFY_ATTEMPTS, modifyPluginData, planWrite } from "./cas.ts";
import { decodePluginData, type EmailPluginData, EMPTY_PLUGIN_DATA } from "./plugin_data.ts";

const REQ = "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80";

/**
 * Teleport's UpdatePluginData semantics (teleport-wire/README.md): `expect`
 * is checked only when it has an entry; each expected key must equal the
 * stored value (missing = ""); in `set`, "" deletes.
 */
class FakePluginStore {
  readonly records = new Map<string, Record<string, string>>();
  readonly updates: { set: PluginData; expect: PluginData }[] = [];
  reads = 0;
  /** Runs inside every update before the check: a concurrent writer. */
  interfere: ((store: FakePluginStore, call: number) => void) | undefined;
  failWith: Error | undefined;

  getPluginData(requestId: string): Promise<PluginData | undefined> {
    this.reads++;
    const record = this.records.get(requestId);
    return Promise.resolve(record === undefined ? undefined : { ...record });
  }

  updatePluginData(requestId: string, set: PluginData, expect: PluginData): Promise<void> {
    this.updates.push({ set: { ...set }, expect: { ...expect } });
    if (this.failWith !== undefined) return Promise.reject(this.failWith);
    this.interfere?.(this, this.updates.length);
    const stored = this.records.get(requestId) ?? {};
    for (const [key, value] of Object.entries(expect)) {
      if ((stored[key] ?? "") !== value) {
        return Promise.reject(
          new CompareFailedError(`expectations not met for field "${key}"`),
        );
      }
    }
    this.write(requestId, set);
    return Promise.resolve();
  }

  write(requestId: string, set: PluginData): void {
    const next = { ...this.records.get(requestId) };
    for (const [key, value] of Object.entries(set)) {
      if (value === "") delete next[key];
      else next[key] = value;
    }
    this.records.set(requestId, next);
  }
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
  const store = new FakePluginStore();
  const result = await modifyPluginData(store, REQ, createIfAbsent);

  assert.equal(result.changed, true);
  assert.deepEqual(result.data, created);
  assert.deepEqual(store.updates, [{
    set: { user: "alice@example.com", roles: "editor,dba", request_reason: "hotfix" },
    expect: NOTHING_STORED,
  }]);
  assert.deepEqual(store.records.get(REQ), {
    user: "alice@example.com",
    roles: "editor,dba",
    request_reason: "hotfix",
  });
});

Deno.test("create: only one of two racing creators wins", async () => {
  const store = new FakePluginStore();
  store.interfere = (s, call) => {
    if (call === 1) {
      s.write(REQ, { user: "alice@example.com", roles: "editor", reviews_count: "1" });
    }
  };
  let calls = 0;
  const result = await modifyPluginData(store, REQ, (current) => {
    calls++;
    return createIfAbsent(current);
  });

  assert.equal(result.changed, false);
  assert.equal(calls, 2, "re-read and re-applied after the compare failure");
  assert.equal(result.data?.reviewsCount, 1, "returns the winner's record");
  assert.equal(store.updates.length, 1);
});

Deno.test("update: expects every stored and known key as read, sets only what changes", async () => {
  const store = new FakePluginStore();
  const stored = {
    user: "alice@example.com",
    roles: "editor",
    email_threads: "ops@example.com/t/m@h",
    claim: "host-1",
  };
  store.records.set(REQ, { ...stored });

  const result = await modifyPluginData(store, REQ, bumpReviews(2));

  assert.equal(result.changed, true);
  assert.deepEqual(store.updates, [{
    set: { reviews_count: "2" },
    expect: { ...NOTHING_STORED, ...stored },
  }]);
  assert.deepEqual(store.records.get(REQ), { ...stored, reviews_count: "2" });
  assert.deepEqual(result.data, decodePluginData(store.records.get(REQ)));
});

Deno.test('update: keys that disappear are set to "" (deleted)', async () => {
  const store = new FakePluginStore();
  store.records.set(REQ, {
    user: "u",
    resolve_reason: "old",
    email: "old@example.com",
    timestamp: "2021-01-01 00:00:00 +0000 UTC",
  });

  await modifyPluginData(store, REQ, (current) => current && { ...current, resolveReason: "" });

  assert.deepEqual(store.updates[0]?.set, {
    resolve_reason: "",
    email: "",
    timestamp: "",
    email_threads: "old@example.com/2021-01-01 00:00:00 +0000 UTC/",
  });
  assert.deepEqual(store.records.get(REQ), {
    user: "u",
    email_threads: "old@example.com/2021-01-01 00:00:00 +0000 UTC/",
  });
});

Deno.test("a concurrent writer's change is kept: the update re-reads and re-applies", async () => {
  const store = new FakePluginStore();
  store.records.set(REQ, { user: "u", roles: "r" });
  store.interfere = (s, call) => {
    if (call === 1) s.write(REQ, { resolution: "APPROVED", resolve_reason: "ok" });
  };
  const seen: (EmailPluginData | undefined)[] = [];
  const result = await modifyPluginData(store, REQ, (current) => {
    seen.push(current);
    return current && { ...current, reviewsCount: 1 };
  });

  assert.equal(result.changed, true);
  assert.equal(seen.length, 2);
  assert.equal(seen[1]?.resolution, "APPROVED");
  assert.deepEqual(store.records.get(REQ), {
    user: "u",
    roles: "r",
    reviews_count: "1",
    resolution: "APPROVED",
    resolve_reason: "ok",
  });
});

Deno.test("gives up after 5 compare failures with CompareFailedError", async () => {
  const store = new FakePluginStore();
  store.records.set(REQ, { user: "u" });
  store.interfere = (s, call) => s.write(REQ, { reviews_count: String(100 + call) });

  await assert.rejects(
    modifyPluginData(store, REQ, (current) => current && { ...current, user: "v" }),
    (error: unknown) => {
      assert.ok(error instanceof CompareFailedError);
      assert.match(error.message, /request "0b8e9c2e-[^"]+".* 5 times/);
      assert.ok(error.cause instanceof CompareFailedError);
      return true;
    },
  );
  assert.equal(MAX_MODIFY_ATTEMPTS, 5);
  assert.equal(store.reads, 5);
  assert.equal(store.updates.length, 5);
});

Deno.test("attempts option bounds the rounds; it must be at least 1", async () => {
  const store = new FakePluginStore();
  store.interfere = (s, call) => s.write(REQ, { user: `other-${call}` });
  await assert.rejects(
    modifyPluginData(store, REQ, () => created, { attempts: 2 }),
    CompareFailedError,
  );
  assert.equal(store.updates.length, 2);
  await assert.rejects(modifyPluginData(store, REQ, () => created, { attempts: 0 }), RangeError);
});

Deno.test("no write when the update returns undefined or changes nothing", async () => {
  const store = new FakePluginStore();
  store.records.set(REQ, { user: "u", reviews_count: "3" });

  const unchanged = await modifyPluginData(store, REQ, bumpReviews(2));
  assert.deepEqual(unchanged, {
    data: decodePluginData({ user: "u", reviews_count: "3" }),
    changed: false,
    raw: { user: "u", reviews_count: "3" },
  });

  const same = await modifyPluginData(store, REQ, (current) => current && { ...current });
  assert.equal(same.changed, false);

  const absent = await modifyPluginData(store, "other", (current) => current);
  assert.deepEqual(absent, { data: undefined, changed: false });

  assert.equal(store.updates.length, 0);
});

Deno.test("a known map saves the read; a stale one costs a compare failure and a read", async () => {
  const store = new FakePluginStore();
  store.records.set(REQ, { user: "u", reviews_count: "1" });
  const fresh = await modifyPluginData(store, REQ, bumpReviews(2), {
    known: { user: "u", reviews_count: "1" },
  });
  assert.equal(fresh.changed, true);
  assert.equal(store.reads, 0, "the known map stood in for the read");
  assert.deepEqual(fresh.raw, { user: "u", reviews_count: "2" });

  let conflicts = 0;
  const stale = await modifyPluginData(store, REQ, bumpReviews(3), {
    known: { user: "u", reviews_count: "1" },
    onConflict: () => conflicts++,
  });
  assert.equal(stale.changed, true);
  assert.equal(store.reads, 1);
  assert.equal(conflicts, 0, "a stale guess is not another writer's conflict");
  assert.equal(store.records.get(REQ)!.reviews_count, "3");

  const noop = await modifyPluginData(store, REQ, bumpReviews(3), {
    known: { user: "u", reviews_count: "1" },
  });
  assert.equal(noop.changed, false, "no change is decided on what is stored, not on the guess");
});

Deno.test("a record without values counts as absent", async () => {
  const store = new FakePluginStore();
  store.records.set(REQ, {});
  const result = await modifyPluginData(store, REQ, createIfAbsent);
  assert.equal(result.changed, true);
});

Deno.test("errors other than a compare failure are thrown at once", async () => {
  const store = new FakePluginStore();
  store.failWith = new Error("unavailable");
  await assert.rejects(modifyPluginData(store, REQ, createIfAbsent), /unavailable/);
  assert.equal(store.updates.length, 1);

  const throwing = new FakePluginStore();
  await assert.rejects(
    modifyPluginData(throwing, REQ, () => {
      throw new TypeError("bad update");
    }),
    TypeError,
  );
  assert.equal(throwing.updates.length, 0);
});

Deno.test("an aborted signal stops before the next round", async () => {
  const store = new FakePluginStore();
  const controller = new AbortController();
  store.interfere = (s) => {
    s.write(REQ, { user: "other" });
    controller.abort(new Error("shutting down"));
  };
  await assert.rejects(
    modifyPluginData(store, REQ, () => created, { signal: controller.signal }),
    /shutting down/,
  );
  assert.equal(store.updates.length, 1);
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
