/**
 * The names a condition reads: the variables of Teleport's access
 * monitoring rule parser (lib/accessmonitoring/request_mapping.go) over the
 * environment the Go plugins build (`getAccessRequestExpressionEnv`): the
 * request's roles, suggested reviewers, system annotations, user, reason,
 * creation time and expiry, and the requesting user's traits. That
 * environment carries no requested resources, so the resource helpers see
 * none, as in the Go plugin.
 */
import type { AccessRequest } from "../../teleport/types.ts";
import type { Budget } from "./_budget.ts";
import {
  type Dict,
  EMPTY_SET,
  GoTime,
  Resources,
  type StaticType,
  type StringSet,
  type Value,
} from "./_values.ts";

type StringMap = Readonly<Record<string, readonly string[]>>;

/** What one evaluation sees. */
export interface Scope {
  readonly request: AccessRequest;
  readonly traits: StringMap;
  readonly budget: Budget;
  /** Where the evaluation is (a node's offset), for an error that has no better place. */
  at: number;
}

export interface Field {
  readonly type: StaticType;
  /** The value of a constant (`true`, `false`). */
  readonly literal?: Value;
  readonly get: (scope: Scope) => Value;
  /** For a map: one key, read without building the whole map. */
  readonly key?: (scope: Scope, key: string) => StringSet;
}

const NO_RESOURCES = new Resources([]);
const EMPTY_MAP: Dict = new Map();
const EMPTY_STRING_MAP: StringMap = {};

function setOf(budget: Budget, values: readonly string[]): StringSet {
  budget.charge(values.length);
  return new Set(values);
}

function mapField(read: (scope: Scope) => StringMap): Field {
  return {
    type: "map",
    get: (scope) => {
      const map = read(scope);
      const out = new Map<string, StringSet>();
      for (const key of Object.keys(map)) out.set(key, setOf(scope.budget, map[key]!));
      scope.budget.charge(out.size);
      return out;
    },
    key: (scope, key) => {
      const map = read(scope);
      return Object.hasOwn(map, key) ? setOf(scope.budget, map[key]!) : EMPTY_SET;
    },
  };
}

function emptyMapField(): Field {
  return { type: "map", get: () => EMPTY_MAP, key: () => EMPTY_SET };
}

/** The variables, by their dotted name. */
export const FIELDS: ReadonlyMap<string, Field> = new Map<string, Field>([
  ["true", { type: "boolean", literal: true, get: () => true }],
  ["false", { type: "boolean", literal: false, get: () => false }],
  [
    "access_request.spec.roles",
    { type: "set", get: (s) => setOf(s.budget, s.request.roles) },
  ],
  [
    "access_request.spec.suggested_reviewers",
    { type: "set", get: (s) => setOf(s.budget, s.request.suggestedReviewers) },
  ],
  ["access_request.spec.system_annotations", mapField((s) => s.request.systemAnnotations)],
  ["access_request.spec.user", { type: "string", get: (s) => s.request.user }],
  ["access_request.spec.request_reason", { type: "string", get: (s) => s.request.requestReason }],
  [
    "access_request.spec.creation_time",
    { type: "time", get: (s) => GoTime.fromDate(s.request.created) },
  ],
  // `AccessRequestV3.Expiry()`: the resource expiry when set, else the request's own expiry.
  [
    "access_request.spec.expiry",
    { type: "time", get: (s) => GoTime.fromDate(s.request.resourceExpiry ?? s.request.expires) },
  ],
  // Teleport releases that had `has_labels`; the Go plugin's environment lists no resources.
  ["access_request.spec.requested_resources", { type: "resources", get: () => NO_RESOURCES }],
  ["access_request.spec.requested_resources.length", { type: "integer", get: () => 0n }],
  // Later releases: label maps over the requested resources, empty for the same reason.
  ["access_request.spec.resource_labels_union", emptyMapField()],
  ["access_request.spec.resource_labels_intersection", emptyMapField()],
  ["user.traits", mapField((s) => s.traits ?? EMPTY_STRING_MAP)],
]);

export const FIELD_HINT = "known fields are access_request.spec.{roles, suggested_reviewers, " +
  "system_annotations, user, request_reason, creation_time, expiry, resource_labels_union, " +
  "resource_labels_intersection, requested_resources} and user.traits";
