/**
 * Domain access requests for unit tests: the one place that lists every
 * field of an `AccessRequest` with its empty value, so a field added to the
 * type is added here once. Test-only: never imported by the product.
 */
import type { AccessRequest } from "../src/teleport/types.ts";

/** Every field at its empty value: what a request message without fields converts to. */
export function emptyAccessRequest(): AccessRequest {
  return {
    id: "",
    user: "",
    roles: [],
    state: "NONE",
    requestReason: "",
    resolveReason: "",
    systemAnnotations: {},
    reviews: [],
    suggestedReviewers: [],
    requestedResources: [],
    loginHint: "",
  };
}

/** A PENDING request of `alice@example.com` for `editor`, nothing else set; `fields` over it. */
export function newAccessRequest(id: string, fields: Partial<AccessRequest> = {}): AccessRequest {
  return {
    ...emptyAccessRequest(),
    id,
    user: "alice@example.com",
    roles: ["editor"],
    state: "PENDING",
    ...fields,
  };
}
