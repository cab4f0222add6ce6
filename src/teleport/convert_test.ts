import assert from "node:assert/strict";
import {
  toAccessMonitoringRule,
  toAccessRequest,
  toDate,
  toPingInfo,
  toPluginData,
  toRequestState,
  toUser,
  toWatchEvent,
  UNSET_TIME_SECONDS,
} from "./convert.ts";
import {
  decodeMessage,
  type PbEvent,
  type PbGetUserResponse,
  type PbListAccessMonitoringRulesResponse,
  type PbListAccessRequestsResponse,
  type PbPingResponse,
  type PbPluginDataSeq,
  type PbUser,
} from "./proto.ts";
import type { AccessRequest } from "./types.ts";
import { readWireVector } from "../../tests/fixtures/wire.ts";
import { emptyAccessRequest } from "../../tests/requests.ts";

async function decodeVector<T>(name: string, type: string): Promise<T> {
  return decodeMessage<T>(type, await readWireVector(name));
}

const event = (name: string) => decodeVector<PbEvent>(name, "proto.Event");
const at = (seconds: number, ms = 0) => new Date(seconds * 1000 + ms);

Deno.test("convert: event_put_promoted becomes a PROMOTED request with every detail", async () => {
  const ev = toWatchEvent(await event("event_put_promoted.bin"));
  const expected: AccessRequest = {
    id: "5d7c1a90-8e2b-4f3e-b1a4-0c9d8e7f6a51",
    user: "dave@example.com",
    roles: ["access"],
    state: "PROMOTED",
    created: at(1795392000),
    expires: at(1795478400),
    accessExpires: at(1795478400),
    requestReason: "Need node access <b>now</b>",
    resolveReason: "promoted to access list",
    systemAnnotations: { pagerduty_services: ["svc-a", "svc-b"] },
    reviews: [],
    suggestedReviewers: ["erin@example.com"],
    requestedResources: [
      { clusterName: "teleport.example.com", kind: "node", name: "db-prod-1", subResourceName: "" },
      {
        clusterName: "teleport.example.com",
        kind: "kube_cluster",
        name: "prod",
        subResourceName: "default/pod-a",
      },
    ],
    loginHint: "root",
    maxDuration: at(1795420800),
    assumeStartTime: at(1795395600),
    accessList: { name: "al-7", title: "Prod DB Admins" },
    revision: "7f1e2d",
  };
  assert.deepEqual(ev, { type: "put", kind: "access_request", request: expected });
  assert.ok(ev?.type === "put" && ev.kind === "access_request");
  // The zero-time sentinel is "unset", not year 1.
  assert.equal("sessionTtl" in ev.request, false);
  assert.equal("resourceExpiry" in ev.request, false);
});

Deno.test("convert: event_put_pending keeps sub-second creation time and reviewers' order", async () => {
  const ev = toWatchEvent(await event("event_put_pending.bin"));
  assert.ok(ev?.type === "put" && ev.kind === "access_request");
  const r = ev.request;
  assert.equal(r.id, "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80");
  assert.equal(r.state, "PENDING");
  assert.deepEqual(r.roles, ["editor", "dba"]);
  assert.deepEqual(r.created, at(1795392000, 123));
  assert.deepEqual(r.expires, at(1795435200));
  assert.equal(r.requestReason, "Deploying hotfix #42 \u2014 needs prod DB");
  assert.deepEqual(r.suggestedReviewers, ["bob@example.com", "not-an-email"]);
  assert.deepEqual(r.systemAnnotations, {});
  assert.deepEqual(r.requestedResources, []);
  for (const key of ["revision", "accessList", "maxDuration", "sessionTtl", "assumeStartTime"]) {
    assert.equal(key in r, false, key);
  }
});

Deno.test("convert: event_put_approved carries both reviews", async () => {
  const ev = toWatchEvent(await event("event_put_approved.bin"));
  assert.ok(ev?.type === "put" && ev.kind === "access_request");
  assert.equal(ev.request.state, "APPROVED");
  assert.equal(ev.request.resolveReason, "ok, go");
  assert.equal("expires" in ev.request, false, "no Metadata.Expires on this request");
  assert.deepEqual(ev.request.reviews, [
    {
      author: "bob@example.com",
      roles: ["editor-reviewer"],
      proposedState: "APPROVED",
      reason: "looks fine",
      created: at(1795392600),
    },
    {
      author: "carol@example.com",
      roles: [],
      proposedState: "APPROVED",
      reason: "ok, go",
      created: at(1795392660),
    },
  ]);
});

Deno.test("convert: DELETE, INIT and access monitoring rule events", async () => {
  assert.deepEqual(toWatchEvent(await event("event_delete.bin")), {
    type: "delete",
    kind: "access_request",
    name: "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80",
  });
  const init = toWatchEvent(await event("event_init.bin"));
  assert.deepEqual(init, { type: "init" });
  assert.equal("acceptedKinds" in init!, false);
  assert.deepEqual(toWatchEvent(await event("event_init_watch_status.bin")), {
    type: "init",
    acceptedKinds: ["access_request", "access_monitoring_rule"],
  });
  assert.deepEqual(toWatchEvent(await event("event_put_amr.bin")), {
    type: "put",
    kind: "access_monitoring_rule",
    rule: {
      name: "route-dba",
      revision: "r1",
      subjects: ["access_request"],
      states: [],
      condition: 'access_request.spec.roles.contains("dba")',
      notification: { name: "email", recipients: ["dba-team@example.com", "oncall@example.com"] },
    },
  });
});

Deno.test("convert: list responses", async () => {
  const list = await decodeVector<PbListAccessRequestsResponse>(
    "list_access_requests_response.bin",
    "proto.ListAccessRequestsResponse",
  );
  const requests = (list.AccessRequests ?? []).map(toAccessRequest);
  assert.deepEqual(
    requests.map((r) => [r.id, r.user, r.roles, r.state, r.resolveReason, r.created]),
    [
      ["a1", "u1@example.com", ["editor"], "PENDING", "", at(1795392000)],
      ["a2", "u2@example.com", ["dba"], "DENIED", "no", at(1795392100)],
    ],
  );
  const amr = await decodeVector<PbListAccessMonitoringRulesResponse>(
    "list_amr_response.bin",
    "teleport.accessmonitoringrules.v1.ListAccessMonitoringRulesWithFilterResponse",
  );
  assert.deepEqual((amr.rules ?? []).map(toAccessMonitoringRule), [{
    name: "route-dba",
    subjects: ["access_request"],
    states: [],
    condition: 'access_request.spec.roles.contains("dba")',
    notification: { name: "email", recipients: ["dba-team@example.com"] },
  }]);
});

Deno.test("convert: ping_response", async () => {
  const ping = await decodeVector<PbPingResponse>("ping_response.bin", "proto.PingResponse");
  assert.deepEqual(toPingInfo(ping), {
    clusterName: "teleport.example.com",
    serverVersion: "17.4.8",
    advancedAccessWorkflows: true,
    proxyPublicAddr: "teleport.example.com:443",
  });
  assert.deepEqual(toPingInfo({}), {
    clusterName: "",
    serverVersion: "",
    advancedAccessWorkflows: false,
    proxyPublicAddr: "",
  });
});

Deno.test("convert: plugin_data_seq", async () => {
  const seq = await decodeVector<PbPluginDataSeq>("plugin_data_seq.bin", "proto.PluginDataSeq");
  const id = "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80";
  const data = toPluginData(seq, "email", id);
  assert.deepEqual(Object.keys(data ?? {}), ["user", "roles", "request_reason", "email_threads"]);
  assert.equal(data?.user, "alice@example.com");
  assert.equal(data?.roles, "editor,dba");
  assert.deepEqual(toPluginData(seq, "email"), data);
  assert.equal(toPluginData(seq, "slack", id), undefined);
  assert.equal(toPluginData(seq, "email", "other-request"), undefined);
  assert.equal(toPluginData({ PluginData: [] }, "email"), undefined);
  assert.equal(toPluginData({}, "email"), undefined);
  // An entry without data is "stored but empty", not "none".
  assert.deepEqual(
    toPluginData({ PluginData: [{ Spec: { Entries: { email: {} } } }] }, "email"),
    {},
  );
});

Deno.test("convert: toDate", () => {
  const cases: [string, Parameters<typeof toDate>[0], Date | undefined][] = [
    ["absent", undefined, undefined],
    ["null", null, undefined],
    ["Go zero time", { seconds: UNSET_TIME_SECONDS, nanos: 0 }, undefined],
    ["before year 1", { seconds: UNSET_TIME_SECONDS - 1 }, undefined],
    ["Unix epoch is a real time", { seconds: 0, nanos: 0 }, new Date(0)],
    ["empty message is the epoch", {}, new Date(0)],
    ["nanos truncate to ms", { seconds: 10, nanos: 999_999_999 }, new Date(10_999)],
    ["string seconds (longs: String)", { seconds: "1795392000" }, at(1795392000)],
    ["garbage seconds", { seconds: "x" }, undefined],
  ];
  for (const [name, input, expected] of cases) assert.deepEqual(toDate(input), expected, name);
});

Deno.test("convert: toRequestState", () => {
  const cases: [Parameters<typeof toRequestState>[0], string][] = [
    ["PENDING", "PENDING"],
    ["PROMOTED", "PROMOTED"],
    [2, "APPROVED"],
    [3, "DENIED"],
    [0, "NONE"],
    [9, "NONE"],
    ["SOMETHING_NEW" as never, "NONE"],
    [undefined, "NONE"],
    [null, "NONE"],
  ];
  for (const [input, expected] of cases) {
    assert.equal(toRequestState(input), expected, String(input));
  }
});

Deno.test("convert: events the plugin does not handle become undefined", () => {
  const cases: [string, PbEvent][] = [
    ["PUT of a kind not in the schema", { Type: "PUT" }],
    ["DELETE without a resource", { Type: "DELETE" }],
    ["unknown operation", { Type: 7 }],
  ];
  for (const [name, pb] of cases) assert.equal(toWatchEvent(pb), undefined, name);
  assert.deepEqual(toWatchEvent({}), { type: "init" });
  assert.deepEqual(toWatchEvent({ Type: 1, AccessMonitoringRule: { metadata: { name: "r" } } }), {
    type: "put",
    kind: "access_monitoring_rule",
    rule: {
      name: "r",
      subjects: [],
      states: [],
      condition: "",
      notification: { name: "", recipients: [] },
    },
  });
  assert.deepEqual(toWatchEvent({ Type: 2, AccessRequest: { Metadata: { Name: "x" } } }), {
    type: "delete",
    kind: "access_request",
    name: "x",
  });
});

Deno.test("convert: hand-built messages without defaults convert to empty values", () => {
  assert.deepEqual(toAccessRequest({}), emptyAccessRequest());
  const withProto = toAccessRequest({
    Spec: { SystemAnnotations: { Values: JSON.parse('{"__proto__": {"Values": ["x"]}}') } },
  });
  assert.deepEqual(Object.keys(withProto.systemAnnotations), ["__proto__"]);
  assert.equal(Object.getPrototypeOf(withProto.systemAnnotations), Object.prototype);
});

Deno.test("convert: a user's traits from UsersService.GetUser and the legacy AuthService.GetUser", async () => {
  const res = await decodeVector<PbGetUserResponse>(
    "get_user_response.bin",
    "teleport.users.v1.GetUserResponse",
  );
  assert.deepEqual(toUser(res.user, "alice"), {
    name: "alice",
    roles: ["requester"],
    traits: { logins: ["alice"], team: ["dba", "oncall"] },
  });
  const legacy = await decodeVector<PbUser>("user_v2.bin", "types.UserV2");
  assert.deepEqual(toUser(legacy, "bob"), {
    name: "bob",
    roles: ["requester", "reviewer"],
    traits: { "github-teams": ["core"] },
  });
  assert.deepEqual(toUser(undefined, "ghost"), { name: "ghost", roles: [], traits: {} });
});

Deno.test("convert: a request's own expiry is Spec.ResourceExpiry, else Metadata.Expires; access ends at Spec.Expires", () => {
  const ts = (seconds: number) => ({ seconds, nanos: 0 });
  const v18 = toAccessRequest({
    Metadata: { Name: "r1", Expires: ts(1_800_000_000) },
    Spec: { ResourceExpiry: ts(1_790_000_000), Expires: ts(1_795_000_000) },
  });
  assert.deepEqual([v18.expires, v18.accessExpires], [at(1_790_000_000), at(1_795_000_000)]);
  const older = toAccessRequest({ Metadata: { Name: "r2", Expires: ts(1_800_000_000) }, Spec: {} });
  assert.deepEqual([older.expires, older.accessExpires], [at(1_800_000_000), undefined]);
});
