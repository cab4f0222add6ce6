import assert from "node:assert/strict";
import {
  CONN_UPGRADE_ENV,
  connUpgradeMode,
  connUpgradeOverride,
  detectConnUpgrade,
} from "./_conn_upgrade.ts";
import { startSilentServer } from "../../tests/silent_server.ts";

const ADDR = "proxy.example.com:443";

Deno.test("connUpgradeOverride reads TELEPORT_TLS_ROUTING_CONN_UPGRADE as Teleport does", () => {
  const cases: [value: string | undefined, expected: boolean | undefined][] = [
    // Unset or empty: the test dial decides.
    [undefined, undefined],
    ["", undefined],
    // One bool for every address, in Teleport's spellings and any case.
    ["true", true],
    ["YES", true],
    ["on", true],
    ["1", true],
    ["yeah", true],
    ["y", true],
    ["false", false],
    ["nope", false],
    ["Off", false],
    // The last valid bool wins; invalid ones are skipped.
    ["true,0", false],
    ["1;bogus", true],
    ["bogus", false],
    // An entry for this address decides at once, whatever follows.
    [`0,${ADDR}=1`, true],
    [`${ADDR}=no,1`, false],
    [`other.example.com:443=yes,${ADDR}=yes`, true],
    // Entries for other addresses do not count; the host alone does not match "host:port".
    ["other.example.com:443=yes", false],
    ["proxy.example.com=yes", false],
    ["1,other.example.com:443=no", true],
    // Teleport finds "<addr>=" anywhere in the entry (strings.Cut).
    [`x.${ADDR}=true`, true],
    // An entry for this address with a bad value means false.
    [`1,${ADDR}=maybe`, false],
    // Separators: comma and semicolon, empty entries ignored.
    [`;;${ADDR}=on;;`, true],
  ];
  for (const [value, expected] of cases) {
    assert.equal(
      connUpgradeOverride(ADDR, value === undefined ? {} : { [CONN_UPGRADE_ENV]: value }),
      expected,
      JSON.stringify(value),
    );
  }
});

Deno.test("connUpgradeMode: WebSocket unless TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE=legacy", () => {
  assert.equal(connUpgradeMode({}), "websocket");
  assert.equal(connUpgradeMode({ TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE: "legacy" }), "legacy");
  assert.equal(connUpgradeMode({ TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE: "LEGACY" }), "legacy");
  assert.equal(connUpgradeMode({ TELEPORT_TLS_ROUTING_CONN_UPGRADE_MODE: "other" }), "websocket");
});

Deno.test("the upgrade test through an HTTPS proxy that never answers: not needed, socket closed", async () => {
  const silent = await startSilentServer();
  try {
    const decision = await detectConnUpgrade(ADDR, {
      env: { HTTPS_PROXY: `http://${silent.addr}` },
      cas: [],
      timeoutMs: 200,
    });
    assert.equal(decision.required, false);
    assert.match(decision.why, /no answer within 200 ms/);
    assert.equal(silent.connections, 1, "the upgrade test dialled through the proxy");
    assert.ok(await silent.allClosed(), "the socket to the silent proxy was left open");
  } finally {
    await silent.close();
  }
});
