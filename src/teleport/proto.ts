/**
 * Teleport's API schema, built from the embedded `.proto` sources (no file
 * is read at run time): a protobufjs Root for encoding and decoding, and the
 * grpc-js service constructors that the client and the test server use.
 * Also the shapes of decoded messages, as the gRPC deserializers produce them.
 */

import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import protobuf from "protobufjs";
import { PROTO_FILES, PROTO_JSON } from "./proto_embedded.ts";

/** gRPC service name of Teleport's Auth Service. */
export const AUTH_SERVICE = "proto.AuthService";
/** gRPC service name of the access monitoring rules service. */
export const AMR_SERVICE = "teleport.accessmonitoringrules.v1.AccessMonitoringRulesService";
/** The users service (`GetUser`); older servers have only `AuthService.GetUser`. */
export const USERS_SERVICE = "teleport.users.v1.UsersService";

/**
 * How decoded messages look: Teleport's field names as written, enums as
 * their names, int64 as numbers (timestamps' seconds fit), unset scalars and
 * lists as their defaults, unset messages as `null`, and each oneof's member
 * name in a virtual field (`Event.Resource`).
 */
export const LOADER_OPTIONS: protoLoader.Options = {
  keepCase: true,
  longs: Number,
  enums: String,
  defaults: true,
  oneofs: true,
};

/** Well-known Google types the sources import; protobufjs bundles them. */
const WELL_KNOWN_IMPORTS = ["google/protobuf/timestamp.proto", "google/protobuf/empty.proto"];

/** What the client and test servers need, built once per process. */
export interface TeleportProto {
  /** For encoding and decoding messages directly (tests, fakes). */
  readonly root: protobuf.Root;
  /** Method definitions (path, serializers) keyed by service name. */
  readonly packageDefinition: protoLoader.PackageDefinition;
  /** `new AuthService(address, credentials, options)`; `.service` for a server. */
  readonly AuthService: grpc.ServiceClientConstructor;
  readonly AccessMonitoringRulesService: grpc.ServiceClientConstructor;
  readonly UsersService: grpc.ServiceClientConstructor;
}

let cached: TeleportProto | undefined;

/**
 * The embedded schema, built on first use and cached: from the sources'
 * JSON made at build time (`scripts/embed_proto.ts`), so that no start
 * parses `.proto` text. `root` is built on first use (tests and fakes).
 */
export function teleportProto(): TeleportProto {
  cached ??= fromJson(PROTO_JSON as protobuf.INamespace, () => buildRoot(PROTO_FILES));
  return cached;
}

/** Builds the schema from `.proto` sources keyed by path (as in `proto/`). */
export function buildTeleportProto(files: Readonly<Record<string, string>>): TeleportProto {
  const root = buildRoot(files);
  return fromJson(root.toJSON(), () => root);
}

function fromJson(json: protobuf.INamespace, makeRoot: () => protobuf.Root): TeleportProto {
  const packageDefinition = protoLoader.fromJSON(json, LOADER_OPTIONS);
  const grpcObject = grpc.loadPackageDefinition(packageDefinition);
  let root: protobuf.Root | undefined;
  return {
    get root() {
      root ??= makeRoot();
      return root;
    },
    packageDefinition,
    AuthService: serviceConstructor(grpcObject, AUTH_SERVICE),
    AccessMonitoringRulesService: serviceConstructor(grpcObject, AMR_SERVICE),
    UsersService: serviceConstructor(grpcObject, USERS_SERVICE),
  };
}

/** A protobufjs Root holding `files` plus the well-known types they import. */
export function buildRoot(files: Readonly<Record<string, string>>): protobuf.Root {
  const root = new protobuf.Root();
  for (const name of WELL_KNOWN_IMPORTS) {
    const json = protobuf.common.get(name);
    if (json === null) throw new Error(`protobufjs does not bundle "${name}"`);
    root.addJSON(json.nested ?? {});
  }
  for (const [path, source] of Object.entries(files)) {
    const parsed = protobuf.parse(source, root, { keepCase: true });
    for (const imported of [...(parsed.imports ?? []), ...(parsed.weakImports ?? [])]) {
      if (!(imported in files) && !WELL_KNOWN_IMPORTS.includes(imported)) {
        throw new Error(`Proto file "${path}" imports "${imported}", which is not embedded`);
      }
    }
  }
  root.resolveAll();
  return root;
}

/** A message type by its fully qualified name, e.g. `proto.Event`. */
export function messageType(fullName: string): protobuf.Type {
  return teleportProto().root.lookupType(fullName);
}

/**
 * Decodes `bytes` as `fullName` into the same shape the gRPC deserializers
 * produce ({@linkcode LOADER_OPTIONS}).
 */
export function decodeMessage<T = unknown>(fullName: string, bytes: Uint8Array): T {
  const type = messageType(fullName);
  return type.toObject(type.decode(bytes), LOADER_OPTIONS as protobuf.IConversionOptions) as T;
}

/** Encodes a plain object (as {@linkcode decodeMessage} returns) as `fullName`. */
export function encodeMessage(fullName: string, value: unknown): Uint8Array {
  const type = messageType(fullName);
  return type.encode(type.fromObject(value as Record<string, unknown>)).finish();
}

function serviceConstructor(obj: grpc.GrpcObject, fullName: string): grpc.ServiceClientConstructor {
  let node: unknown = obj;
  for (const part of fullName.split(".")) {
    node = (node as Record<string, unknown> | undefined)?.[part];
  }
  if (typeof node !== "function" || !("service" in node)) {
    throw new Error(`Service "${fullName}" is missing from the embedded proto`);
  }
  return node as grpc.ServiceClientConstructor;
}

// ---------------------------------------------------------------------------
// Decoded message shapes. Every field is optional and messages may be null,
// so values built by hand (tests) or decoded without defaults also fit.

/** `google.protobuf.Timestamp`; `seconds` is a string only with `longs: String`. */
export interface PbTimestamp {
  seconds?: number | string | null;
  nanos?: number | null;
}

/** `types.RequestState` by name; a number for values this schema does not know. */
export type PbRequestState = "NONE" | "PENDING" | "APPROVED" | "DENIED" | "PROMOTED" | number;

/** `proto.Operation` by name. */
export type PbOperation = "INIT" | "PUT" | "DELETE" | number;

/** `types.Metadata`. */
export interface PbMetadata {
  Name?: string;
  Namespace?: string;
  Description?: string;
  Labels?: Record<string, string>;
  Expires?: PbTimestamp | null;
  Revision?: string;
}

/** `types.ResourceHeader`. */
export interface PbResourceHeader {
  Kind?: string;
  SubKind?: string;
  Version?: string;
  Metadata?: PbMetadata | null;
}

/** `types.WatchKind`. */
export interface PbWatchKind {
  Kind?: string;
  LoadSecrets?: boolean;
  Name?: string;
  Filter?: Record<string, string>;
  SubKind?: string;
}

/** `types.WatchStatusV1`. */
export interface PbWatchStatus {
  Kind?: string;
  SubKind?: string;
  Version?: string;
  Metadata?: PbMetadata | null;
  Spec?: { Kinds?: PbWatchKind[] } | null;
}

/** `wrappers.LabelValues`. */
export interface PbLabelValues {
  Values?: Record<string, { Values?: string[] } | null>;
}

/** `types.UserV2`, the parts we read. */
export interface PbUser {
  Kind?: string;
  Metadata?: PbMetadata | null;
  Spec?: { Roles?: string[]; Traits?: PbLabelValues | null } | null;
}

/** `teleport.users.v1.GetUserResponse`. */
export interface PbGetUserResponse {
  user?: PbUser | null;
}

/** `types.PromotedAccessList`. */
export interface PbPromotedAccessList {
  Name?: string;
  Title?: string;
}

/** `types.AccessReview`. */
export interface PbAccessReview {
  Author?: string;
  Roles?: string[];
  ProposedState?: PbRequestState;
  Reason?: string;
  Created?: PbTimestamp | null;
  Annotations?: PbLabelValues | null;
  ThresholdIndexes?: number[];
  accessList?: PbPromotedAccessList | null;
  AssumeStartTime?: PbTimestamp | null;
}

/** `types.AccessReviewThreshold`. */
export interface PbAccessReviewThreshold {
  Name?: string;
  Filter?: string;
  Approve?: number;
  Deny?: number;
}

/** `types.ResourceID`. */
export interface PbResourceId {
  ClusterName?: string;
  Kind?: string;
  Name?: string;
  SubResourceName?: string;
}

/** `types.AccessRequestSpecV3`. */
export interface PbAccessRequestSpec {
  User?: string;
  Roles?: string[];
  State?: PbRequestState;
  Created?: PbTimestamp | null;
  Expires?: PbTimestamp | null;
  RequestReason?: string;
  ResolveReason?: string;
  ResolveAnnotations?: PbLabelValues | null;
  SystemAnnotations?: PbLabelValues | null;
  Thresholds?: PbAccessReviewThreshold[];
  RoleThresholdMapping?: Record<string, { Sets?: { Indexes?: number[] }[] } | null>;
  Reviews?: PbAccessReview[];
  SuggestedReviewers?: string[];
  RequestedResourceIDs?: PbResourceId[];
  LoginHint?: string;
  DryRun?: boolean;
  MaxDuration?: PbTimestamp | null;
  SessionTTL?: PbTimestamp | null;
  accessList?: PbPromotedAccessList | null;
  AssumeStartTime?: PbTimestamp | null;
  ResourceExpiry?: PbTimestamp | null;
}

/** `types.AccessRequestV3`. */
export interface PbAccessRequest {
  Kind?: string;
  SubKind?: string;
  Version?: string;
  Metadata?: PbMetadata | null;
  Spec?: PbAccessRequestSpec | null;
}

/** `teleport.header.v1.Metadata`. */
export interface PbHeaderMetadata {
  name?: string;
  namespace?: string;
  description?: string;
  labels?: Record<string, string>;
  expires?: PbTimestamp | null;
  revision?: string;
}

/** `teleport.accessmonitoringrules.v1.AccessMonitoringRule`. */
export interface PbAccessMonitoringRule {
  metadata?: PbHeaderMetadata | null;
  kind?: string;
  sub_kind?: string;
  version?: string;
  spec?: {
    subjects?: string[];
    states?: string[];
    condition?: string;
    notification?: { name?: string; recipients?: string[] } | null;
    automatic_review?: Record<string, never> | null;
    desired_state?: string;
  } | null;
}

/** `proto.Event`. */
export interface PbEvent {
  Type?: PbOperation;
  /** Which oneof member is set (with `oneofs: true`). */
  Resource?: "ResourceHeader" | "AccessRequest" | "WatchStatus" | "AccessMonitoringRule";
  ResourceHeader?: PbResourceHeader | null;
  AccessRequest?: PbAccessRequest | null;
  WatchStatus?: PbWatchStatus | null;
  AccessMonitoringRule?: PbAccessMonitoringRule | null;
}

/** `proto.Watch`. */
export interface PbWatch {
  Kinds?: PbWatchKind[];
  AllowPartialSuccess?: boolean;
}

/** `proto.PingResponse`. */
export interface PbPingResponse {
  ClusterName?: string;
  ServerVersion?: string;
  ServerFeatures?: { AccessControls?: boolean; AdvancedAccessWorkflows?: boolean } | null;
  ProxyPublicAddr?: string;
}

/** `types.AccessRequestFilter`. */
export interface PbAccessRequestFilter {
  ID?: string;
  User?: string;
  State?: PbRequestState;
}

/** `proto.ListAccessRequestsRequest`. */
export interface PbListAccessRequestsRequest {
  Filter?: PbAccessRequestFilter | null;
  Sort?: "DEFAULT" | number;
  Descending?: boolean;
  Limit?: number;
  StartKey?: string;
}

/** `proto.ListAccessRequestsResponse`. */
export interface PbListAccessRequestsResponse {
  AccessRequests?: PbAccessRequest[];
  NextKey?: string;
}

/** `types.PluginDataV3`. */
export interface PbPluginData {
  Kind?: string;
  SubKind?: string;
  Version?: string;
  Metadata?: PbMetadata | null;
  Spec?: { Entries?: Record<string, { Data?: Record<string, string> } | null> } | null;
}

/** `proto.PluginDataSeq`. */
export interface PbPluginDataSeq {
  PluginData?: PbPluginData[];
}

/** `types.PluginDataFilter`. */
export interface PbPluginDataFilter {
  Kind?: string;
  Resource?: string;
  Plugin?: string;
}

/** `types.PluginDataUpdateParams`. */
export interface PbPluginDataUpdateParams {
  Kind?: string;
  Resource?: string;
  Plugin?: string;
  Set?: Record<string, string>;
  Expect?: Record<string, string>;
}

/** `teleport.accessmonitoringrules.v1.ListAccessMonitoringRulesWithFilterRequest`. */
export interface PbListAccessMonitoringRulesRequest {
  page_size?: number;
  page_token?: string;
  subjects?: string[];
  notification_name?: string;
}

/** `teleport.accessmonitoringrules.v1.ListAccessMonitoringRulesWithFilterResponse`. */
export interface PbListAccessMonitoringRulesResponse {
  rules?: PbAccessMonitoringRule[];
  next_page_token?: string;
}
