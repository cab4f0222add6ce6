/**
 * The escalation email and the warning before granted access ends: the
 * request's facts as in every email, then our lines; values from the
 * request escaped in HTML and quoted in the tsh command.
 */
import assert from "node:assert/strict";
import { accessExpiryMessage, escalationMessage, newRequestMessage } from "./message.ts";
import { newAccessRequest } from "../../tests/requests.ts";

const HOUR = 3_600_000;
const NOW = Date.UTC(2026, 10, 23, 10);
const request = newAccessRequest("r1", {
  roles: ["editor", "dba"],
  requestReason: "hotfix <b>",
  accessExpires: new Date(NOW + 90 * 60_000),
});

Deno.test("escalation email: the request's facts, how long it waited, who was notified", () => {
  const ctx = { clusterName: "c1", request, link: "https://t.example.com/web/requests/r1" };
  const m = escalationMessage({ ...ctx, waitedMs: 26 * HOUR + 5 * 60_000, notified: ["a@x.io"] });
  assert.equal(m.subject, "c1 Role Request r1");
  const facts = newRequestMessage(ctx).text.split("\n").slice(1, -1).join("\n");
  assert.ok(m.text.includes(facts), "the same facts as the new-request email");
  assert.ok(m.text.startsWith("Escalation: this Role Request is still waiting for a review:\n"));
  assert.ok(m.text.endsWith("\n\nWaiting for a review: 1d2h5m\nAlready notified: a@x.io"));
  assert.match(m.html, /Review request/);
  assert.match(m.html, /hotfix &lt;b&gt;/);
  assert.ok(m.html.endsWith("</body></html>\n"));
  const nobody = escalationMessage({ ...ctx, waitedMs: HOUR, notified: [] });
  assert.match(nobody.text, /^Already notified: nobody yet$/m);
});

Deno.test("access expiry email: when access ends and the tsh command to ask again", () => {
  const m = accessExpiryMessage({
    clusterName: "c1",
    request,
    accessExpires: request.accessExpires!,
    now: NOW,
  });
  assert.ok(m.text.startsWith("Your access from this Role Request ends soon:\n"));
  assert.match(m.text, /^Access ends in: 1h30m \(2026-11-23 11:30 UTC\)$/m);
  assert.match(m.text, /^To request it again: tsh request create --roles editor,dba$/m);
  assert.doesNotMatch(m.text, /tsh request review/, "nothing to review");
  const odd = accessExpiryMessage({
    clusterName: "c1",
    request: {
      ...request,
      roles: ["it's"],
      requestedResources: [{ clusterName: "c1", kind: "node", name: "db 1", subResourceName: "" }],
    },
    accessExpires: request.accessExpires!,
    now: NOW,
  });
  assert.match(
    odd.text,
    /^To request it again: tsh request create --roles 'it'\\''s' --resource '\/c1\/node\/db 1'$/m,
  );
});
