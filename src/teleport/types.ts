/**
 * Domain types for what the plugin reads from and writes to Teleport. Proto
 * messages never leave `src/teleport/`; everything else sees only these
 * (and the error kinds of `errors.ts`, re-exported here).
 */
export {
  CompareFailedError,
  isTeleportError,
  StreamMovedError,
  TeleportError,
  type TeleportErrorKind,
} from "./errors.ts";

/** `types.RequestState`, as its enum name. */
export type RequestState = "NONE" | "PENDING" | "APPROVED" | "DENIED" | "PROMOTED";

export interface AccessReview {
  readonly author: string;
  readonly roles: readonly string[];
  readonly proposedState: RequestState;
  readonly reason: string;
  readonly created?: Date;
}

/** `types.ResourceID`: one resource of a resource-based request. */
export interface ResourceId {
  readonly clusterName: string;
  readonly kind: string;
  readonly name: string;
  readonly subResourceName: string;
}

export interface AccessRequest {
  /** `Metadata.Name`: the request id. */
  readonly id: string;
  readonly user: string;
  readonly roles: readonly string[];
  readonly state: RequestState;
  readonly created?: Date;
  /**
   * When the pending request itself expires: `Spec.ResourceExpiry`, else
   * `Metadata.Expires` (Teleport's `Expiry()`).
   */
  readonly expires?: Date;
  /** When granted access ends (`Spec.Expires`, Teleport's `GetAccessExpiry()`). */
  readonly accessExpires?: Date;
  readonly requestReason: string;
  readonly resolveReason: string;
  readonly systemAnnotations: Readonly<Record<string, readonly string[]>>;
  readonly reviews: readonly AccessReview[];
  readonly suggestedReviewers: readonly string[];
  readonly requestedResources: readonly ResourceId[];
  readonly loginHint: string;
  /** Absolute time after which granted access cannot extend. */
  readonly maxDuration?: Date;
  readonly sessionTtl?: Date;
  readonly assumeStartTime?: Date;
  readonly resourceExpiry?: Date;
  readonly accessList?: { readonly name: string; readonly title: string };
  readonly revision?: string;
}

/** `teleport.accessmonitoringrules.v1.AccessMonitoringRule`, the parts a notifier needs. */
export interface AccessMonitoringRule {
  readonly name: string;
  readonly revision?: string;
  readonly subjects: readonly string[];
  readonly states: readonly string[];
  readonly condition: string;
  readonly notification: { readonly name: string; readonly recipients: readonly string[] };
}

/** Resource kinds as Teleport names them: watch kinds, and the subject of a request's rules. */
export const KIND_ACCESS_REQUEST = "access_request";
export const KIND_ACCESS_MONITORING_RULE = "access_monitoring_rule";

/** One event of the watch stream, INIT first. */
export type WatchEvent =
  | {
    readonly type: "init";
    /** Kinds the server accepted (newer servers with partial success); absent on old servers. */
    readonly acceptedKinds?: readonly string[];
  }
  | { readonly type: "put"; readonly kind: "access_request"; readonly request: AccessRequest }
  | {
    readonly type: "put";
    readonly kind: "access_monitoring_rule";
    readonly rule: AccessMonitoringRule;
  }
  | { readonly type: "delete"; readonly kind: string; readonly name: string };

/** A Teleport user: what routing by access monitoring rules reads (`user.traits`). */
export interface TeleportUser {
  readonly name: string;
  readonly roles: readonly string[];
  readonly traits: Readonly<Record<string, readonly string[]>>;
}

/** What `Ping` tells about the cluster. */
export interface PingInfo {
  readonly clusterName: string;
  readonly serverVersion: string;
  readonly advancedAccessWorkflows: boolean;
  /** May be empty. */
  readonly proxyPublicAddr: string;
}

/** The plugin's string map stored on one access request (plugin name `email`). */
export type PluginData = Readonly<Record<string, string>>;

/**
 * The Teleport API as the rest of the plugin sees it. Every call rejects
 * with a `TeleportError` (`errors.ts`) whose kind says what went wrong, or
 * with the signal's reason when aborted.
 */
export interface TeleportClient {
  ping(signal?: AbortSignal): Promise<PingInfo>;
  /** Opens one watch stream; the first event is INIT. Ends (throws) when the stream breaks. */
  watch(kinds: readonly string[], signal?: AbortSignal): AsyncIterable<WatchEvent>;
  /** All access requests (every page), optionally only those with the given id. */
  listAccessRequests(filter?: { id?: string }, signal?: AbortSignal): Promise<AccessRequest[]>;
  /** The plugin's data on a request; `undefined` when none is stored. */
  getPluginData(requestId: string, signal?: AbortSignal): Promise<PluginData | undefined>;
  /**
   * Sets keys ("" deletes) only if every `expect` key equals the stored value
   * (missing = ""). Throws `CompareFailedError` (kind `compare_failed`) when one does not.
   */
  updatePluginData(
    requestId: string,
    set: PluginData,
    expect: PluginData,
    signal?: AbortSignal,
  ): Promise<void>;
  /** Every request's plugin data of this plugin (GetPluginData without a resource), including requests already deleted. */
  listPluginData(signal?: AbortSignal): Promise<{ requestId: string; data: PluginData }[]>;
  listAccessMonitoringRules(signal?: AbortSignal): Promise<AccessMonitoringRule[]>;
  /**
   * The user `name` (`teleport.users.v1.UsersService/GetUser`, or the legacy
   * `AuthService/GetUser` on servers without it); rejects `not_found` or
   * `denied` as the server says.
   */
  getUser(name: string, signal?: AbortSignal): Promise<TeleportUser>;
  close(): void;
}
