/**
 * Teleport's wire contract: every protoc-encoded vector in
 * `tests/fixtures/teleport-wire/` must decode, through our embedded schema, into
 * exactly what its `.txt` says, both with protobufjs directly and through the
 * gRPC deserializers the client runs in production.
 */

import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import type * as protoLoader from "@grpc/proto-loader";
import {
  AMR_SERVICE,
  AUTH_SERVICE,
  decodeMessage,
  messageType,
  teleportProto,
  USERS_SERVICE,
} from "../src/teleport/proto.ts";
import { listWireVectors, readWireVector } from "./fixtures/wire.ts";

const readVector = readWireVector;

// --- expected values, with every unset field at its default ----------------

const ts = (seconds: number, nanos = 0) => ({ seconds, nanos });

/** The fields of `teleport.header.v1.Metadata`, unset. */
const METADATA_DEFAULTS = {
  name: "",
  namespace: "",
  description: "",
  labels: {},
  expires: null,
  revision: "",
};

/** `types.Metadata`: the same fields as `teleport.header.v1.Metadata`, named in Go's case. */
function metadata(o: Record<string, unknown>) {
  const goCase = (name: string) => name[0]!.toUpperCase() + name.slice(1);
  const unset = Object.entries(METADATA_DEFAULTS).map(([name, value]) => [goCase(name), value]);
  return { ...Object.fromEntries(unset), ...o };
}

function headerMetadata(o: Record<string, unknown>) {
  return { ...METADATA_DEFAULTS, ...o };
}

function review(o: Record<string, unknown>) {
  return {
    Author: "",
    Roles: [],
    ProposedState: "NONE",
    Reason: "",
    Created: null,
    Annotations: null,
    ThresholdIndexes: [],
    accessList: null,
    AssumeStartTime: null,
    ...o,
  };
}

function requestSpec(o: Record<string, unknown>) {
  return {
    User: "",
    Roles: [],
    State: "NONE",
    Created: null,
    Expires: null,
    RequestReason: "",
    ResolveReason: "",
    ResolveAnnotations: null,
    SystemAnnotations: null,
    Thresholds: [],
    RoleThresholdMapping: {},
    Reviews: [],
    SuggestedReviewers: [],
    RequestedResourceIDs: [],
    LoginHint: "",
    DryRun: false,
    MaxDuration: null,
    SessionTTL: null,
    accessList: null,
    AssumeStartTime: null,
    ResourceExpiry: null,
    ...o,
  };
}

function accessRequest(meta: Record<string, unknown>, spec: Record<string, unknown>) {
  return {
    Kind: "access_request",
    SubKind: "",
    Version: "v3",
    Metadata: metadata(meta),
    Spec: requestSpec(spec),
  };
}

function resourceId(o: Record<string, unknown>) {
  return { ClusterName: "", Kind: "", Name: "", SubResourceName: "", ...o };
}

function watchKind(kind: string) {
  return { Kind: kind, LoadSecrets: false, Name: "", Filter: {}, SubKind: "" };
}

function amrRule(o: { name: string; revision?: string; recipients: string[] }) {
  return {
    metadata: headerMetadata({ name: o.name, revision: o.revision ?? "" }),
    kind: "access_monitoring_rule",
    sub_kind: "",
    version: "v1",
    spec: {
      subjects: ["access_request"],
      states: [],
      condition: 'access_request.spec.roles.contains("dba")',
      notification: { name: "email", recipients: o.recipients },
      automatic_review: null,
      desired_state: "",
    },
  };
}

const REQUEST_ID = "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80";
const REASON = "Deploying hotfix #42 \u2014 needs prod DB";

interface Vector {
  /** Fully qualified message type. */
  type: string;
  /** The gRPC method whose deserializer produces this message. */
  method: { service: string; name: string; side: "response" };
  expected: unknown;
}

const EVENT = { service: AUTH_SERVICE, name: "WatchEvents", side: "response" } as const;

/** A `proto.Event` vector, as the watch stream delivers it. */
function eventVector(expected: Record<string, unknown>): Vector {
  return { type: "proto.Event", method: EVENT, expected };
}

/** The `proto.Event` of a PUT access request. */
function requestPut(meta: Record<string, unknown>, spec: Record<string, unknown>): Vector {
  return eventVector({
    Type: "PUT",
    Resource: "AccessRequest",
    AccessRequest: accessRequest(meta, spec),
  });
}

const VECTORS: Record<string, Vector> = {
  "event_delete.bin": eventVector({
    Type: "DELETE",
    Resource: "ResourceHeader",
    ResourceHeader: {
      Kind: "access_request",
      SubKind: "",
      Version: "v3",
      Metadata: metadata({ Name: REQUEST_ID, Namespace: "default" }),
    },
  }),
  "event_init.bin": eventVector({ Type: "INIT" }),
  "event_init_watch_status.bin": eventVector({
    Type: "INIT",
    Resource: "WatchStatus",
    WatchStatus: {
      Kind: "watch_status",
      SubKind: "",
      Version: "v1",
      Metadata: metadata({ Name: "watch_status" }),
      Spec: { Kinds: [watchKind("access_request"), watchKind("access_monitoring_rule")] },
    },
  }),
  "event_put_amr.bin": eventVector({
    Type: "PUT",
    Resource: "AccessMonitoringRule",
    AccessMonitoringRule: amrRule({
      name: "route-dba",
      revision: "r1",
      recipients: ["dba-team@example.com", "oncall@example.com"],
    }),
  }),
  "event_put_approved.bin": requestPut({ Name: REQUEST_ID, Namespace: "default" }, {
    User: "alice@example.com",
    Roles: ["editor", "dba"],
    State: "APPROVED",
    Created: ts(1795392000),
    Expires: ts(1795435200),
    RequestReason: REASON,
    ResolveReason: "ok, go",
    Reviews: [
      review({
        Author: "bob@example.com",
        Roles: ["editor-reviewer"],
        ProposedState: "APPROVED",
        Reason: "looks fine",
        Created: ts(1795392600),
      }),
      review({
        Author: "carol@example.com",
        ProposedState: "APPROVED",
        Reason: "ok, go",
        Created: ts(1795392660),
      }),
    ],
    SuggestedReviewers: ["bob@example.com"],
  }),
  "event_put_pending.bin": requestPut(
    { Name: REQUEST_ID, Namespace: "default", Expires: ts(1795435200) },
    {
      User: "alice@example.com",
      Roles: ["editor", "dba"],
      State: "PENDING",
      Created: ts(1795392000, 123000000),
      Expires: ts(1795435200),
      RequestReason: REASON,
      SuggestedReviewers: ["bob@example.com", "not-an-email"],
    },
  ),
  "event_put_promoted.bin": requestPut(
    {
      Name: "5d7c1a90-8e2b-4f3e-b1a4-0c9d8e7f6a51",
      Namespace: "default",
      Expires: ts(1795478400),
      Revision: "7f1e2d",
    },
    {
      User: "dave@example.com",
      Roles: ["access"],
      State: "PROMOTED",
      Created: ts(1795392000),
      Expires: ts(1795478400),
      RequestReason: "Need node access <b>now</b>",
      ResolveReason: "promoted to access list",
      SystemAnnotations: { Values: { pagerduty_services: { Values: ["svc-a", "svc-b"] } } },
      Thresholds: [{ Name: "default", Filter: "", Approve: 1, Deny: 1 }],
      SuggestedReviewers: ["erin@example.com"],
      RequestedResourceIDs: [
        resourceId({ ClusterName: "teleport.example.com", Kind: "node", Name: "db-prod-1" }),
        resourceId({
          ClusterName: "teleport.example.com",
          Kind: "kube_cluster",
          Name: "prod",
          SubResourceName: "default/pod-a",
        }),
      ],
      LoginHint: "root",
      MaxDuration: ts(1795420800),
      SessionTTL: ts(-62135596800),
      accessList: { Name: "al-7", Title: "Prod DB Admins" },
      AssumeStartTime: ts(1795395600),
    },
  ),
  "list_access_requests_response.bin": {
    type: "proto.ListAccessRequestsResponse",
    method: { service: AUTH_SERVICE, name: "ListAccessRequests", side: "response" },
    expected: {
      AccessRequests: [
        accessRequest({ Name: "a1" }, {
          User: "u1@example.com",
          Roles: ["editor"],
          State: "PENDING",
          Created: ts(1795392000),
        }),
        accessRequest({ Name: "a2" }, {
          User: "u2@example.com",
          Roles: ["dba"],
          State: "DENIED",
          ResolveReason: "no",
          Created: ts(1795392100),
        }),
      ],
      NextKey: "a2",
    },
  },
  "list_amr_response.bin": {
    type: "teleport.accessmonitoringrules.v1.ListAccessMonitoringRulesWithFilterResponse",
    method: { service: AMR_SERVICE, name: "ListAccessMonitoringRulesWithFilter", side: "response" },
    expected: {
      rules: [amrRule({ name: "route-dba", recipients: ["dba-team@example.com"] })],
      next_page_token: "",
    },
  },
  "get_user_response.bin": {
    type: "teleport.users.v1.GetUserResponse",
    method: { service: USERS_SERVICE, name: "GetUser", side: "response" },
    expected: {
      user: {
        Kind: "user",
        SubKind: "",
        Version: "v2",
        Metadata: metadata({ Name: "alice" }),
        Spec: {
          Roles: ["requester"],
          Traits: {
            Values: { logins: { Values: ["alice"] }, team: { Values: ["dba", "oncall"] } },
          },
        },
      },
    },
  },
  "user_v2.bin": {
    type: "types.UserV2",
    method: { service: AUTH_SERVICE, name: "GetUser", side: "response" },
    expected: {
      Kind: "user",
      SubKind: "",
      Version: "v2",
      Metadata: metadata({ Name: "bob" }),
      Spec: {
        Roles: ["requester", "reviewer"],
        Traits: { Values: { "github-teams": { Values: ["core"] } } },
      },
    },
  },
  "ping_response.bin": {
    type: "proto.PingResponse",
    method: { service: AUTH_SERVICE, name: "Ping", side: "response" },
    expected: {
      ClusterName: "teleport.example.com",
      ServerVersion: "17.4.8",
      ServerFeatures: { AdvancedAccessWorkflows: true, AccessControls: true },
      ProxyPublicAddr: "teleport.example.com:443",
    },
  },
  "plugin_data_seq.bin": {
    type: "proto.PluginDataSeq",
    method: { service: AUTH_SERVICE, name: "GetPluginData", side: "response" },
    expected: {
      PluginData: [{
        Kind: "plugin_data",
        SubKind: "",
        Version: "v3",
        Metadata: metadata({ Name: REQUEST_ID, Namespace: "default" }),
        Spec: {
          Entries: {
            email: {
              Data: {
                user: "alice@example.com",
                roles: "editor,dba",
                request_reason: "Deploying hotfix #42",
                email_threads: "ops@example.com/2026-11-22 10:00:00.5 +0000 UTC m=+1.0/" +
                  "1D4Q8ZC3K2ABC.3W5E11264SGSF@host," +
                  "bob@example.com/2026-11-22 10:00:01 +0000 UTC/" +
                  "<20261122100001.1.abc@mg.example.com>",
              },
            },
          },
        },
      }],
    },
  },
};

function grpcDeserialize(v: Vector, bytes: Uint8Array): unknown {
  const service = teleportProto().packageDefinition[v.method.service] as
    | protoLoader.ServiceDefinition
    | undefined;
  const method = service?.[v.method.name];
  assert.ok(method, `no method ${v.method.service}/${v.method.name}`);
  return method.responseDeserialize(Buffer.from(bytes));
}

Deno.test("wire: every vector has an expectation here, and every expectation a vector", async () => {
  const onDisk = await listWireVectors();
  assert.deepEqual(onDisk, Object.keys(VECTORS).sort());
});

for (const [name, vector] of Object.entries(VECTORS)) {
  Deno.test(`wire: ${name} decodes as ${vector.type} (protobufjs)`, async () => {
    const bytes = await readVector(name);
    assert.deepEqual(decodeMessage(vector.type, bytes), vector.expected);
  });

  Deno.test(`wire: ${name} decodes as ${vector.type} (gRPC deserializer)`, async () => {
    const bytes = await readVector(name);
    assert.deepEqual(grpcDeserialize(vector, bytes), vector.expected);
  });

  Deno.test(`wire: ${name} re-encodes byte for byte (no field left unknown)`, async () => {
    const bytes = await readVector(name);
    const type = messageType(vector.type);
    const reencoded = type.encode(type.decode(bytes)).finish();
    assert.equal(Buffer.from(reencoded).toString("hex"), Buffer.from(bytes).toString("hex"));
  });
}

Deno.test("wire: request serializers write Teleport's field numbers", () => {
  const auth = teleportProto().packageDefinition[AUTH_SERVICE] as protoLoader.ServiceDefinition;
  const amr = teleportProto().packageDefinition[AMR_SERVICE] as protoLoader.ServiceDefinition;
  const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
  const utf8 = (s: string) => Buffer.from(s).toString("hex");

  // Watch{Kinds=1{Kind=1}, AllowPartialSuccess=2}
  assert.equal(
    hex(auth.WatchEvents!.requestSerialize({
      Kinds: [{ Kind: "access_request" }],
      AllowPartialSuccess: true,
    })),
    "0a10" + "0a0e" + utf8("access_request") + "1001",
  );
  // PluginDataFilter{Kind=1, Resource=2, Plugin=3}
  assert.equal(
    hex(
      auth.GetPluginData!.requestSerialize({
        Kind: "access_request",
        Resource: "r1",
        Plugin: "email",
      }),
    ),
    "0a0e" + utf8("access_request") + "1202" + utf8("r1") + "1a05" + utf8("email"),
  );
  // PluginDataUpdateParams{Set=4 map, Expect=5 map}: entries are {key=1, value=2}
  assert.equal(
    hex(auth.UpdatePluginData!.requestSerialize({ Set: { a: "b" }, Expect: { c: "" } })),
    "2206" + "0a01" + utf8("a") + "1201" + utf8("b") + "2a05" + "0a01" + utf8("c") + "1200",
  );
  // ListAccessRequestsRequest{Filter=1{ID=1}, Limit=4, StartKey=5}
  assert.equal(
    hex(
      auth.ListAccessRequests!.requestSerialize({ Filter: { ID: "x" }, Limit: 50, StartKey: "k" }),
    ),
    "0a03" + "0a01" + utf8("x") + "2032" + "2a01" + utf8("k"),
  );
  // ListAccessMonitoringRulesWithFilterRequest{page_size=1, page_token=2, subjects=3, notification_name=4}
  assert.equal(
    hex(amr.ListAccessMonitoringRulesWithFilter!.requestSerialize({
      page_size: 100,
      page_token: "t",
      subjects: ["access_request"],
      notification_name: "email",
    })),
    "0864" + "1201" + utf8("t") + "1a0e" + utf8("access_request") + "2205" + utf8("email"),
  );
  // Empty Ping request, and UpdatePluginData's Empty response.
  assert.equal(hex(auth.Ping!.requestSerialize({})), "");
  assert.deepEqual(auth.UpdatePluginData!.responseDeserialize(Buffer.alloc(0)), {});
});
