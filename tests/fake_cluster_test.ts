/**
 * The fake cluster's plugin-data compare-and-swap, as Teleport's
 * UpdatePluginData behaves (SPEC §8), through its `TeleportClient`; the gRPC
 * test server serves the same store (tests/teleport_server_test.ts).
 */
import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { CompareFailedError, isTeleportError, type PluginData } from "../src/teleport/types.ts";
import { FakeCluster, FakeTeleportClient, newAccessRequest, StatusError } from "./fake_cluster.ts";

const REQ = "r1";

/** What one update leaves stored, or the kind it is refused with. */
type Outcome = { stored: PluginData | undefined } | { refused: "compare_failed" | "not_found" };

const CASES: [string, PluginData | undefined, PluginData, PluginData, Outcome][] = [
  // name, stored before, set, expect, outcome
  ["expect met", { user: "u" }, { roles: "r" }, { user: "u" }, {
    stored: { user: "u", roles: "r" },
  }],
  ["expect not met", { user: "u" }, { user: "v" }, { user: "w" }, { refused: "compare_failed" }],
  ['missing key counts as ""', { user: "u" }, { resolution: "APPROVED" }, { resolution: "" }, {
    stored: { user: "u", resolution: "APPROVED" },
  }],
  ['missing key is not "DENIED"', { user: "u" }, { resolution: "APPROVED" }, {
    resolution: "DENIED",
  }, { refused: "compare_failed" }],
  ["create if absent, nothing stored", undefined, { user: "u" }, { user: "" }, {
    stored: { user: "u" },
  }],
  ["create if absent, already created", { user: "u" }, { user: "v" }, { user: "" }, {
    refused: "compare_failed",
  }],
  ["empty expect is no condition", { user: "u" }, { user: "v" }, {}, { stored: { user: "v" } }],
  ['"" in set deletes the key', { user: "u", roles: "r" }, { roles: "" }, { user: "u" }, {
    stored: { user: "u" },
  }],
  ["deleting the last key removes the record", { user: "u" }, { user: "" }, {}, {
    stored: undefined,
  }],
];

Deno.test('UpdatePluginData: every expect key must equal the stored value; set writes, "" deletes', async () => {
  for (const [name, before, set, expect, outcome] of CASES) {
    const cluster = new FakeCluster();
    cluster.putRequest(newAccessRequest(REQ));
    if (before) cluster.setPluginData(REQ, before);
    const client = new FakeTeleportClient(cluster);
    const result = await client.updatePluginData(REQ, set, expect).then(
      () => undefined,
      (error: unknown) => error,
    );
    if ("stored" in outcome) {
      assert.equal(result, undefined, name);
      assert.deepEqual(await client.getPluginData(REQ), outcome.stored, name);
    } else {
      assert.ok(isTeleportError(result, outcome.refused), `${name}: ${result}`);
      assert.deepEqual(await client.getPluginData(REQ), before, `${name}: nothing written`);
    }
  }
});

Deno.test("refusals are the real client's: CompareFailedError naming the request, not_found", async () => {
  const cluster = new FakeCluster();
  cluster.putRequest(newAccessRequest(REQ));
  const client = new FakeTeleportClient(cluster);
  await client.updatePluginData(REQ, { user: "u" }, { user: "" });

  const stale = await client.updatePluginData(REQ, { user: "v" }, { user: "" }).catch((e) => e);
  assert.ok(stale instanceof CompareFailedError);
  assert.equal(
    stale.message,
    'Plugin data of request "r1" changed: expectations not met for field "user"',
  );
  assert.equal(stale.details, 'expectations not met for field "user"');

  const unknown = await client.updatePluginData("nope", { user: "u" }, {}).catch((e) => e);
  assert.ok(isTeleportError(unknown, "not_found"), String(unknown));
  assert.equal(unknown.message, 'UpdatePluginData failed: access request "nope" not found');
  assert.deepEqual(await client.getPluginData("nope"), undefined);

  // The data object outlives its request; a request gone without data is unknown.
  cluster.putRequest(newAccessRequest("r2"));
  cluster.deleteRequest(REQ);
  cluster.deleteRequest("r2");
  await client.updatePluginData(REQ, { resolution: "EXPIRED" }, { resolution: "" });
  assert.deepEqual(client.data.get(REQ), { user: "u", resolution: "EXPIRED" });
  await assert.rejects(
    client.updatePluginData("r2", { user: "u" }, {}),
    (e: unknown) => isTeleportError(e, "not_found"),
  );

  // What the gRPC server answers with, before the client classifies it.
  assert.throws(
    () => cluster.updatePluginData(REQ, { user: "x" }, { user: "" }),
    (e: unknown) =>
      e instanceof StatusError && e.code === status.FAILED_PRECONDITION &&
      e.details === 'expectations not met for field "user"',
  );
});

Deno.test("hooks: calls are recorded, failNext classifies a status, watch sees changes", async () => {
  const cluster = new FakeCluster();
  const client = new FakeTeleportClient(cluster);
  client.failNext("getPluginData", { code: status.UNAVAILABLE, details: "blip" });
  await assert.rejects(
    client.getPluginData(REQ),
    (e: unknown) => isTeleportError(e, "transient") && /GetPluginData failed: blip/.test(e.message),
  );
  assert.equal(await client.getPluginData(REQ), undefined);
  assert.equal(client.callCount("getPluginData"), 2);

  const events = client.watch(["access_request"])[Symbol.asyncIterator]();
  assert.deepEqual((await events.next()).value, {
    type: "init",
    acceptedKinds: ["access_request"],
  });
  cluster.putRule({
    name: "ignored",
    subjects: ["access_request"],
    states: [],
    condition: "",
    notification: { name: "email", recipients: [] },
    desiredState: "",
  });
  const put = cluster.putRequest(newAccessRequest(REQ));
  assert.deepEqual((await events.next()).value, {
    type: "put",
    kind: "access_request",
    request: put,
  });
  cluster.deleteRequest(REQ);
  assert.deepEqual((await events.next()).value, {
    type: "delete",
    kind: "access_request",
    name: REQ,
  });
  client.dropWatches();
  await assert.rejects(events.next(), (e: unknown) => isTeleportError(e, "transient"));
});
