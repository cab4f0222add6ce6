/**
 * Decoded Teleport messages → domain types. Pure functions; this is where
 * proto quirks stop: the zero-time sentinel, absent messages, enum values
 * this schema does not know, and empty strings that mean "not set".
 */

import {
  type AccessMonitoringRule,
  type AccessRequest,
  type AccessReview,
  KIND_ACCESS_MONITORING_RULE,
  KIND_ACCESS_REQUEST,
  type PingInfo,
  type PluginData,
  type RequestState,
  type ResourceId,
  type TeleportUser,
  type WatchEvent,
} from "./types.ts";
import type {
  PbAccessMonitoringRule,
  PbAccessRequest,
  PbAccessReview,
  PbEvent,
  PbLabelValues,
  PbPingResponse,
  PbPluginDataSeq,
  PbRequestState,
  PbResourceId,
  PbTimestamp,
  PbUser,
} from "./proto.ts";

/**
 * Seconds of Go's zero `time.Time` (0001-01-01T00:00:00Z): what Teleport
 * sends for a non-nullable timestamp that was never set.
 */
export const UNSET_TIME_SECONDS = -62135596800;

// Defined with the domain types; still exported here for the code that converts messages.
export { KIND_ACCESS_MONITORING_RULE, KIND_ACCESS_REQUEST };

const REQUEST_STATES: readonly RequestState[] = [
  "NONE",
  "PENDING",
  "APPROVED",
  "DENIED",
  "PROMOTED",
];

/** A timestamp as a `Date`; `undefined` when absent or the zero-time sentinel. */
export function toDate(ts: PbTimestamp | null | undefined): Date | undefined {
  if (ts === null || ts === undefined) return undefined;
  const seconds = Number(ts.seconds ?? 0);
  if (!Number.isFinite(seconds) || seconds <= UNSET_TIME_SECONDS) return undefined;
  const nanos = Number(ts.nanos ?? 0);
  return new Date(seconds * 1000 + Math.floor(nanos / 1_000_000));
}

/**
 * A `types.RequestState` by name. Numbers (enums decoded without names) are
 * mapped too; a state this schema does not know becomes `NONE`, which no
 * handler acts on.
 */
export function toRequestState(state: PbRequestState | null | undefined): RequestState {
  if (typeof state === "number") return REQUEST_STATES[state] ?? "NONE";
  return REQUEST_STATES.includes(state as RequestState) ? state as RequestState : "NONE";
}

/** `types.AccessRequestV3` → {@linkcode AccessRequest}. */
export function toAccessRequest(pb: PbAccessRequest): AccessRequest {
  const meta = pb.Metadata ?? {};
  const spec = pb.Spec ?? {};
  const accessList = spec.accessList;
  return {
    id: meta.Name ?? "",
    user: spec.User ?? "",
    roles: [...(spec.Roles ?? [])],
    state: toRequestState(spec.State),
    ...optional("created", toDate(spec.Created)),
    // As Teleport's `Expiry()`: v18 keeps a pending request's own expiry in
    // Spec.ResourceExpiry, older servers in Metadata.Expires.
    ...optional("expires", toDate(spec.ResourceExpiry) ?? toDate(meta.Expires)),
    ...optional("accessExpires", toDate(spec.Expires)),
    requestReason: spec.RequestReason ?? "",
    resolveReason: spec.ResolveReason ?? "",
    systemAnnotations: toLabelValues(spec.SystemAnnotations),
    reviews: (spec.Reviews ?? []).map(toAccessReview),
    suggestedReviewers: [...(spec.SuggestedReviewers ?? [])],
    requestedResources: (spec.RequestedResourceIDs ?? []).map(toResourceId),
    loginHint: spec.LoginHint ?? "",
    ...optional("maxDuration", toDate(spec.MaxDuration)),
    ...optional("sessionTtl", toDate(spec.SessionTTL)),
    ...optional("assumeStartTime", toDate(spec.AssumeStartTime)),
    ...optional("resourceExpiry", toDate(spec.ResourceExpiry)),
    ...optional(
      "accessList",
      accessList && (accessList.Name || accessList.Title)
        ? { name: accessList.Name ?? "", title: accessList.Title ?? "" }
        : undefined,
    ),
    ...optional("revision", meta.Revision || undefined),
  };
}

function toAccessReview(pb: PbAccessReview): AccessReview {
  return {
    author: pb.Author ?? "",
    roles: [...(pb.Roles ?? [])],
    proposedState: toRequestState(pb.ProposedState),
    reason: pb.Reason ?? "",
    ...optional("created", toDate(pb.Created)),
  };
}

function toResourceId(pb: PbResourceId): ResourceId {
  return {
    clusterName: pb.ClusterName ?? "",
    kind: pb.Kind ?? "",
    name: pb.Name ?? "",
    subResourceName: pb.SubResourceName ?? "",
  };
}

function toLabelValues(pb: PbLabelValues | null | undefined): Record<string, string[]> {
  // fromEntries defines own properties, so a key such as "__proto__" stays data.
  return Object.fromEntries(
    Object.entries(pb?.Values ?? {}).map(([key, value]) => [key, [...(value?.Values ?? [])]]),
  );
}

/** `teleport.accessmonitoringrules.v1.AccessMonitoringRule` → {@linkcode AccessMonitoringRule}. */
export function toAccessMonitoringRule(pb: PbAccessMonitoringRule): AccessMonitoringRule {
  const spec = pb.spec ?? {};
  return {
    name: pb.metadata?.name ?? "",
    ...optional("revision", pb.metadata?.revision || undefined),
    subjects: [...(spec.subjects ?? [])],
    states: [...(spec.states ?? [])],
    condition: spec.condition ?? "",
    notification: {
      name: spec.notification?.name ?? "",
      recipients: [...(spec.notification?.recipients ?? [])],
    },
  };
}

/**
 * `proto.Event` → {@linkcode WatchEvent}; `undefined` for an event the
 * plugin does not handle (a PUT of a kind it did not ask for, or an unknown
 * operation), which the watcher skips.
 */
export function toWatchEvent(pb: PbEvent): WatchEvent | undefined {
  const op = typeof pb.Type === "number"
    ? (["INIT", "PUT", "DELETE"][pb.Type] ?? pb.Type)
    : (pb.Type ?? "INIT");
  switch (op) {
    case "INIT":
      // Old servers send a bare INIT; newer ones list the kinds they accepted.
      if (!pb.WatchStatus) return { type: "init" };
      return {
        type: "init",
        acceptedKinds: (pb.WatchStatus.Spec?.Kinds ?? []).map((k) => k.Kind ?? ""),
      };
    case "PUT":
      if (pb.AccessRequest) {
        return {
          type: "put",
          kind: KIND_ACCESS_REQUEST,
          request: toAccessRequest(pb.AccessRequest),
        };
      }
      if (pb.AccessMonitoringRule) {
        return {
          type: "put",
          kind: KIND_ACCESS_MONITORING_RULE,
          rule: toAccessMonitoringRule(pb.AccessMonitoringRule),
        };
      }
      return undefined;
    case "DELETE": {
      // Teleport sends only the header on DELETE; a full resource is accepted too.
      if (pb.ResourceHeader) {
        return {
          type: "delete",
          kind: pb.ResourceHeader.Kind ?? "",
          name: pb.ResourceHeader.Metadata?.Name ?? "",
        };
      }
      if (pb.AccessRequest) {
        return {
          type: "delete",
          kind: KIND_ACCESS_REQUEST,
          name: pb.AccessRequest.Metadata?.Name ?? "",
        };
      }
      if (pb.AccessMonitoringRule) {
        return {
          type: "delete",
          kind: KIND_ACCESS_MONITORING_RULE,
          name: pb.AccessMonitoringRule.metadata?.name ?? "",
        };
      }
      return undefined;
    }
    default:
      return undefined;
  }
}

/** `proto.PingResponse` → {@linkcode PingInfo}. */
export function toPingInfo(pb: PbPingResponse): PingInfo {
  return {
    clusterName: pb.ClusterName ?? "",
    serverVersion: pb.ServerVersion ?? "",
    advancedAccessWorkflows: pb.ServerFeatures?.AdvancedAccessWorkflows ?? false,
    proxyPublicAddr: pb.ProxyPublicAddr ?? "",
  };
}

/**
 * `plugin`'s data in a `proto.PluginDataSeq` (the answer to GetPluginData for
 * one request); `undefined` when nothing is stored for that plugin. With
 * `requestId`, only an item for that request counts.
 */
export function toPluginData(
  pb: PbPluginDataSeq,
  plugin: string,
  requestId?: string,
): PluginData | undefined {
  for (const item of pb.PluginData ?? []) {
    if (requestId !== undefined && (item.Metadata?.Name ?? "") !== requestId) continue;
    const entry = item.Spec?.Entries?.[plugin];
    if (entry) return { ...(entry.Data ?? {}) };
  }
  return undefined;
}

/**
 * `{ [key]: value }` when `value` is defined, else `{}`: optional properties
 * stay absent instead of `undefined` (`exactOptionalPropertyTypes`).
 */
function optional<K extends string, V>(key: K, value: V | undefined): { [P in K]?: V } {
  return value === undefined ? {} : { [key]: value } as { [P in K]?: V };
}

/** `types.UserV2` → the user's name, roles and traits. */
export function toUser(pb: PbUser | null | undefined, name: string): TeleportUser {
  return {
    name: pb?.Metadata?.Name || name,
    roles: pb?.Spec?.Roles ?? [],
    traits: toLabelValues(pb?.Spec?.Traits),
  };
}
