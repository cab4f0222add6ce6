import assert from "node:assert/strict";
import { isOwnerGone, processOwner } from "./owner.ts";

const deps = { hostname: "node-1", pid: 100, pidExists: (pid: number) => pid === 200 };
const self = processOwner(deps, "aaaa");

Deno.test("owner names carry host, pid and a nonce", () => {
  assert.equal(self, "node-1/100/aaaa");
});

const cases: [string, string, boolean][] = [
  ["itself", "node-1/100/aaaa", false],
  ["same pid, other nonce: a previous run (container restart)", "node-1/100/bbbb", true],
  ["a dead process of this host", "node-1/300/cccc", true],
  ["a live process of this host", "node-1/200/dddd", false],
  ["another host", "node-2/300/eeee", false],
  ["unreadable", "whatever", false],
];
for (const [name, owner, gone] of cases) {
  Deno.test(`isOwnerGone: ${name}`, () => assert.equal(isOwnerGone(owner, self, deps), gone));
}
