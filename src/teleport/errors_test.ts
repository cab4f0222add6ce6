import assert from "node:assert/strict";
import { status } from "@grpc/grpc-js";
import { CompareFailedError, fromGrpcError, isTeleportError, kindOfGrpcError } from "./errors.ts";

const grpcError = (code: number, details = "") =>
  Object.assign(new Error(`${code} ${details}`), { code, details });

Deno.test("gRPC statuses are classified by kind where they enter", async (t) => {
  const cases: [number, string, string][] = [
    [status.UNAVAILABLE, "connection refused", "transient"],
    [status.DEADLINE_EXCEEDED, "", "transient"],
    [status.INTERNAL, "stream reset", "transient"],
    [status.UNKNOWN, "", "transient"],
    [status.PERMISSION_DENIED, "access denied to perform action", "denied"],
    [status.UNAUTHENTICATED, "", "denied"],
    [status.NOT_FOUND, 'access_request "x" doesn\'t exist', "not_found"],
    [status.FAILED_PRECONDITION, 'expectations not met for field "claim"', "compare_failed"],
    [status.UNIMPLEMENTED, "unknown method", "unsupported"],
    [status.INVALID_ARGUMENT, "bad kind", "invalid"],
    [status.CANCELLED, "", "cancelled"],
    [status.RESOURCE_EXHAUSTED, "request is too large", "too_large"],
    [status.INVALID_ARGUMENT, "item size has exceeded the maximum allowed size", "too_large"],
    [status.RESOURCE_EXHAUSTED, "rate limited", "transient"],
    [status.INTERNAL, "etcdserver: request is too large", "too_large"],
    [status.ALREADY_EXISTS, "", "other"],
  ];
  for (const [code, details, kind] of cases) {
    await t.step(`${status[code]} "${details}" → ${kind}`, () => {
      assert.equal(kindOfGrpcError(grpcError(code, details)), kind);
      const wrapped = fromGrpcError(grpcError(code, details), "GetPluginData");
      assert.ok(isTeleportError(wrapped), String(wrapped));
      assert.equal(wrapped.kind, kind);
      assert.match(wrapped.message, /^GetPluginData failed: /);
    });
  }
});

Deno.test("a compare failure is a CompareFailedError; other errors pass through unchanged", () => {
  const compare = fromGrpcError(grpcError(status.FAILED_PRECONDITION, "x"), "UpdatePluginData");
  assert.ok(compare instanceof CompareFailedError);
  assert.equal(compare.details, "x");
  const abort = new DOMException("stopped", "AbortError");
  assert.equal(fromGrpcError(abort, "Ping"), abort);
  assert.equal(kindOfGrpcError(abort), "other");
  assert.ok(!isTeleportError(abort));
});
