/**
 * Teleport API failures, classified where they enter: every error a
 * `TeleportClient` call rejects with is a `TeleportError` with a kind, so the
 * policy layer decides on kinds (as Teleport's Go code does with
 * `trace.IsCompareFailed`, `trace.IsAccessDenied`…) and never on gRPC status
 * numbers, which stay in this file.
 */
import { status } from "@grpc/grpc-js";

/**
 * - `transient`: may pass when tried again (unavailable, deadline, reset stream…)
 * - `denied`: the identity may not do this (PERMISSION_DENIED, UNAUTHENTICATED)
 * - `not_found`: no such resource
 * - `compare_failed`: a compare-and-swap found other values (FAILED_PRECONDITION)
 * - `unsupported`: the server does not know this call (UNIMPLEMENTED)
 * - `invalid`: the server refused the arguments (INVALID_ARGUMENT, OUT_OF_RANGE)
 * - `too_large`: the server refused the size of what we sent
 * - `cancelled`: we cancelled the call
 * - `other`: anything else
 */
export type TeleportErrorKind =
  | "transient"
  | "denied"
  | "not_found"
  | "compare_failed"
  | "unsupported"
  | "invalid"
  | "too_large"
  | "cancelled"
  | "other";

/** A failed call to the Teleport API. */
export class TeleportError extends Error {
  readonly kind: TeleportErrorKind;
  /** What the server said, without our framing (may be empty). */
  readonly details: string;

  constructor(
    kind: TeleportErrorKind,
    message: string,
    options?: ErrorOptions & { details?: string },
  ) {
    super(message, options);
    this.name = "TeleportError";
    this.kind = kind;
    this.details = options?.details ?? "";
  }
}

/** `UpdatePluginData` was refused because `expect` did not match. */
export class CompareFailedError extends TeleportError {
  constructor(message: string, options?: ErrorOptions & { details?: string }) {
    super("compare_failed", message, options);
    this.name = "CompareFailedError";
  }
}

/**
 * A watch stream the client itself ended to move to a new connection (the
 * identity was renewed): not a lost stream, to be reopened at once.
 */
export class StreamMovedError extends TeleportError {
  constructor(what: string) {
    super("cancelled", `${what} moved to a new connection`);
    this.name = "StreamMovedError";
  }
}

/** Whether `error` is a `TeleportError` of one of `kinds`. */
export function isTeleportError(
  error: unknown,
  ...kinds: TeleportErrorKind[]
): error is TeleportError {
  return error instanceof TeleportError && (kinds.length === 0 || kinds.includes(error.kind));
}

/** Size refusals worded by the backends Teleport runs on (etcd, DynamoDB, Firestore, gRPC). */
const TOO_LARGE = /too large|exceed(?:s|ed)? the maximum|larger than max|size limit/i;

const KIND_OF_CODE: ReadonlyMap<number, TeleportErrorKind> = new Map([
  [status.CANCELLED, "cancelled"],
  [status.UNKNOWN, "transient"],
  [status.INVALID_ARGUMENT, "invalid"],
  [status.DEADLINE_EXCEEDED, "transient"],
  [status.NOT_FOUND, "not_found"],
  [status.PERMISSION_DENIED, "denied"],
  [status.RESOURCE_EXHAUSTED, "transient"],
  [status.FAILED_PRECONDITION, "compare_failed"],
  [status.ABORTED, "transient"],
  [status.OUT_OF_RANGE, "invalid"],
  [status.UNIMPLEMENTED, "unsupported"],
  [status.INTERNAL, "transient"],
  [status.UNAVAILABLE, "transient"],
  [status.UNAUTHENTICATED, "denied"],
]);

/** Whether `error` is what grpc-js rejects a call with (a status with details). */
function isGrpcStatus(error: unknown): error is { code: number; details: string; message: string } {
  if (typeof error !== "object" || error === null || error instanceof DOMException) return false;
  const { code, details } = error as { code?: unknown; details?: unknown };
  return typeof code === "number" && typeof details === "string";
}

/** The kind of a gRPC status error (or of anything else a call may throw). */
export function kindOfGrpcError(error: unknown): TeleportErrorKind {
  if (!isGrpcStatus(error)) return "other";
  const { code, details } = error;
  if (
    (code === status.RESOURCE_EXHAUSTED || code === status.INVALID_ARGUMENT ||
      code === status.UNKNOWN || code === status.INTERNAL) && TOO_LARGE.test(details)
  ) return "too_large";
  return KIND_OF_CODE.get(code) ?? "other";
}

/**
 * Wraps what a gRPC call rejected with: a `TeleportError` of the right
 * kind whose message names `what` failed and says what the server said.
 * Errors that are not gRPC statuses (an abort's reason, our own errors) pass
 * through unchanged.
 */
export function fromGrpcError(error: unknown, what: string): unknown {
  if (error instanceof TeleportError || !isGrpcStatus(error)) return error;
  const kind = kindOfGrpcError(error);
  const details = error.details || error.message;
  const message = `${what} failed: ${details}`;
  return kind === "compare_failed"
    ? new CompareFailedError(message, { cause: error, details })
    : new TeleportError(kind, message, { cause: error, details });
}
