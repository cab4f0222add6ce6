import assert from "node:assert/strict";
import { getLogger } from "@logtape/logtape";
import { FakeClock } from "../lib/clock.ts";
import { FakeTeleportClient } from "../../tests/fake_cluster.ts";
import { USER_TRAITS_TTL_MS, USERS_DENIED_RETRY_MS, UserTraits } from "./traits.ts";

const signal = () => AbortSignal.timeout(5_000);

function setup() {
  const client = new FakeTeleportClient();
  client.cluster.users.set("alice", { team: ["dba"], level: ["l2"] });
  const clock = new FakeClock(0);
  return { client, clock, traits: new UserTraits(client, getLogger(["test"]), clock) };
}

Deno.test("user traits: read once per user for a while, then again", async () => {
  const { client, clock, traits } = setup();
  assert.deepEqual(await traits.get("alice", signal()), { team: ["dba"], level: ["l2"] });
  await traits.get("alice", signal());
  assert.equal(client.callCount("getUser"), 1);
  client.cluster.users.set("alice", { team: ["ops"] });
  await clock.tick(USER_TRAITS_TTL_MS);
  assert.deepEqual(await traits.get("alice", signal()), { team: ["ops"] });
  assert.equal(client.callCount("getUser"), 2);
});

Deno.test("user traits: none for a user that does not exist", async () => {
  const { traits } = setup();
  assert.deepEqual(await traits.get("ghost", signal()), {});
});

Deno.test("user traits: a refusal to read users gives no traits, and is asked again later", async () => {
  const { client, clock, traits } = setup();
  client.failNext("getUser", {
    code: 7,
    details: 'access denied to perform action "read" on "user"',
  });
  assert.deepEqual(await traits.get("alice", signal()), {});
  assert.deepEqual(await traits.get("alice", signal()), {}, "not asked again at once");
  assert.equal(client.callCount("getUser"), 1);
  await clock.tick(USERS_DENIED_RETRY_MS);
  assert.deepEqual(await traits.get("alice", signal()), { team: ["dba"], level: ["l2"] });
});

Deno.test("user traits: a failure that may pass is thrown (the request is retried)", async () => {
  const { client, traits } = setup();
  client.failNext("getUser", { code: 14, details: "connection refused" });
  await assert.rejects(traits.get("alice", signal()), /connection refused/);
});
