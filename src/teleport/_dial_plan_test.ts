import assert from "node:assert/strict";
import { authAlpnProtocol, dialPlans } from "./_dial_plan.ts";

const CLUSTER = "teleport.example.com";

Deno.test("authAlpnProtocol hex-encodes the cluster name (README example)", () => {
  assert.equal(
    authAlpnProtocol("teleport.example.com"),
    "teleport-auth@74656c65706f72742e6578616d706c652e636f6d.teleport.cluster.local",
  );
});

Deno.test("dialPlans: a defined order per port", () => {
  const cases: [addr: string, cluster: string | undefined, kinds: string[]][] = [
    ["auth.example.com:3025", CLUSTER, ["direct"]],
    ["auth.example.com:3025", undefined, ["direct"]],
    ["proxy.example.com:443", CLUSTER, ["tls-routing", "direct"]],
    ["proxy.example.com:3080", CLUSTER, ["tls-routing", "direct"]],
    ["[2001:db8::1]:443", CLUSTER, ["tls-routing", "direct"]],
    ["proxy.example.com:443", undefined, ["direct"]],
    ["teleport.internal:8443", CLUSTER, ["direct", "tls-routing"]],
    ["10.0.0.1:3026", undefined, ["direct"]],
  ];
  for (const [addr, cluster, kinds] of cases) {
    assert.deepEqual(dialPlans(addr, cluster).map((p) => p.kind), kinds, `${addr} / ${cluster}`);
  }
  const [routing, direct] = dialPlans("proxy.example.com:443", CLUSTER);
  assert.deepEqual(routing?.alpn, [authAlpnProtocol(CLUSTER), "h2"]);
  assert.deepEqual(direct?.alpn, ["h2"]);
  for (const bad of ["proxy.example.com", "proxy:0", "proxy:65536", ":443", "::1:443", "a:b"]) {
    assert.throws(
      () => dialPlans(bad, CLUSTER),
      /Invalid Teleport address .*expected host:port/,
      bad,
    );
  }
});
