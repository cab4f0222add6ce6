import assert from "node:assert/strict";
import type { AccessRequest, AccessReview } from "../teleport/types.ts";
import {
  newRequestMessage,
  reminderMessage,
  requesterReceivedMessage,
  type RequestFacts,
  requestWebLink,
  resolutionMessage,
  reviewMessage,
  subjectFor,
} from "./message.ts";
import { decodePluginData } from "./plugin_data.ts";

const CLUSTER = "teleport.example.com";
const ID = "0b8e9c2e-5f41-4d7a-9a0c-3c1f5a6b7d80";
const LINK = `https://teleport.example.com/web/requests/${ID}`;

// event_put_pending from teleport-wire, as a domain AccessRequest.
const PENDING: AccessRequest = {
  id: ID,
  user: "alice@example.com",
  roles: ["editor", "dba"],
  state: "PENDING",
  created: new Date("2026-11-23T00:00:00.123Z"),
  expires: new Date("2026-11-23T12:00:00Z"),
  requestReason: "Deploying hotfix #42 — needs prod DB",
  resolveReason: "",
  systemAnnotations: {},
  reviews: [],
  suggestedReviewers: ["bob@example.com", "not-an-email"],
  requestedResources: [],
  loginHint: "",
};

/** The first lines of a new-request email about PENDING, as the Go plugin writes them. */
const PENDING_HEAD = [
  "You have a new Role Request:",
  "",
  `ID: ${ID}`,
  "Cluster: teleport.example.com",
  "User: alice@example.com",
  "Role(s): editor,dba",
];

// The parts of event_put_promoted that an email shows.
const PROMOTED: RequestFacts = {
  id: "5d7c1a90-8e2b-4f3e-b1a4-0c9d8e7f6a51",
  user: "dave@example.com",
  roles: ["access"],
  requestReason: "Need node access <b>now</b>",
  created: new Date("2026-11-23T00:00:00Z"),
  maxDuration: new Date("2026-11-23T08:00:00Z"),
  requestedResources: [
    { clusterName: CLUSTER, kind: "node", name: "db-prod-1", subResourceName: "" },
    { clusterName: CLUSTER, kind: "kube_cluster", name: "prod", subResourceName: "default/pod-a" },
  ],
};

Deno.test("new request with a web link: the Go plugin's lines plus our expiry", () => {
  const msg = newRequestMessage({ clusterName: CLUSTER, request: PENDING, link: LINK });
  assert.equal(msg.subject, `teleport.example.com Role Request ${ID}`);
  assert.equal(
    msg.text,
    [
      ...PENDING_HEAD,
      "Reason: Deploying hotfix #42 — needs prod DB",
      "Request expires: 2026-11-23 12:00 UTC",
      `Link: ${LINK}`,
      "",
      "Status: ⏳ PENDING",
    ].join("\n"),
  );
});

Deno.test("new request without a link: the Go plugin's Approve/Deny tsh lines", () => {
  const request = { ...PENDING, requestReason: "", expires: undefined };
  const msg = newRequestMessage({ clusterName: CLUSTER, request });
  assert.equal(
    msg.text,
    [
      ...PENDING_HEAD,
      `Approve: tsh request review --approve ${ID}`,
      `Deny: tsh request review --deny ${ID}`,
      "",
      "Status: ⏳ PENDING",
    ].join("\n"),
  );
  assert.match(msg.html, /<code>tsh request review --approve 0b8e9c2e-[^<]+<\/code>/);
  assert.doesNotMatch(msg.html, /Review request/);
});

Deno.test("new request for resources: resources and max duration lines", () => {
  const msg = newRequestMessage({ clusterName: CLUSTER, request: PROMOTED, link: "https://x/y" });
  assert.match(
    msg.text,
    /\nResource\(s\): \/teleport\.example\.com\/node\/db-prod-1, \/teleport\.example\.com\/kube_cluster\/prod\/default\/pod-a\n/,
  );
  assert.match(
    msg.text,
    /\nMax duration: 8h \(until 2026-11-23 08:00 UTC\)\nLink: https:\/\/x\/y\n/,
  );

  const noCreated = newRequestMessage({
    clusterName: CLUSTER,
    request: { ...PROMOTED, created: undefined },
  });
  assert.match(noCreated.text, /\nMax duration: until 2026-11-23 08:00 UTC\n/);
});

Deno.test("resolution status lines, as the Go plugin prints them (and PROMOTED)", () => {
  const cases: [Parameters<typeof resolutionMessage>[0]["resolution"], string][] = [
    [{ tag: "APPROVED", reason: "okay" }, "Status: ✅ APPROVED (okay)"],
    [{ tag: "APPROVED", reason: "" }, "Status: ✅ APPROVED"],
    [{ tag: "DENIED", reason: "not okay" }, "Status: ❌ DENIED (not okay)"],
    [{ tag: "EXPIRED", reason: "" }, "Status: ⌛ EXPIRED"],
    [
      { tag: "PROMOTED", reason: "promoted to access list" },
      "Status: 🎉 PROMOTED (promoted to access list)",
    ],
  ];
  for (const [resolution, status] of cases) {
    const msg = resolutionMessage({
      clusterName: CLUSTER,
      request: PENDING,
      link: LINK,
      resolution,
    });
    assert.ok(msg.text.startsWith("Role Request has been resolved:\n\nID: "), resolution.tag);
    assert.ok(msg.text.endsWith(`\n\n${status}`), `${resolution.tag}: ${msg.text}`);
    assert.equal(msg.subject, `teleport.example.com Role Request ${ID}`);
  }
});

Deno.test("resolution without a link has no tsh lines; from plugin data alone (deleted request)", () => {
  const stored = decodePluginData({ user: "alice@example.com", roles: "editor,dba" });
  const msg = resolutionMessage({
    clusterName: CLUSTER,
    request: { id: ID, ...stored },
    resolution: { tag: "EXPIRED", reason: "" },
  });
  assert.equal(
    msg.text,
    [
      "Role Request has been resolved:",
      "",
      `ID: ${ID}`,
      "Cluster: teleport.example.com",
      "User: alice@example.com",
      "Role(s): editor,dba",
      "",
      "Status: ⌛ EXPIRED",
    ].join("\n"),
  );
});

Deno.test("review replies: the Go plugin's template with RFC 822 times in UTC", () => {
  const review = (r: Partial<AccessReview>): AccessReview => ({
    author: "bob@example.com",
    roles: ["editor-reviewer"],
    proposedState: "APPROVED",
    reason: "looks fine",
    created: new Date("2026-11-23T00:10:00Z"),
    ...r,
  });
  const cases: [AccessReview, string][] = [
    [
      review({}),
      "bob@example.com reviewed the request at 23 Nov 26 00:10 UTC.\n" +
      "Resolution: ✅ APPROVED.\nReason: looks fine.",
    ],
    [
      review({ proposedState: "DENIED", reason: "not okay", author: "carol@example.com" }),
      "carol@example.com reviewed the request at 23 Nov 26 00:10 UTC.\n" +
      "Resolution: ❌ DENIED.\nReason: not okay.",
    ],
    [
      review({ reason: "" }),
      "bob@example.com reviewed the request at 23 Nov 26 00:10 UTC.\nResolution: ✅ APPROVED.\n",
    ],
    [
      { author: "bob@example.com", roles: [], proposedState: "APPROVED", reason: "" },
      "bob@example.com reviewed the request.\nResolution: ✅ APPROVED.\n",
    ],
    [
      review({ created: new Date("2027-01-05T09:03:00+02:00") }),
      "bob@example.com reviewed the request at 05 Jan 27 07:03 UTC.\n" +
      "Resolution: ✅ APPROVED.\nReason: looks fine.",
    ],
  ];
  for (const [r, text] of cases) {
    const msg = reviewMessage({ clusterName: CLUSTER, requestId: ID, review: r });
    assert.equal(msg.text, text);
    assert.equal(msg.subject, `teleport.example.com Role Request ${ID}`);
  }
});

Deno.test("HTML part: same facts, a Review request button when there is a link", () => {
  const msg = newRequestMessage({ clusterName: CLUSTER, request: PENDING, link: LINK });
  assert.ok(msg.html.startsWith("<!DOCTYPE html>"));
  for (const fact of [ID, CLUSTER, "alice@example.com", "editor,dba", "⏳ PENDING"]) {
    assert.ok(msg.html.includes(fact), fact);
  }
  assert.match(msg.html, new RegExp(`<a href="${LINK}"[^>]*>Review request</a>`));

  const resolved = resolutionMessage({
    clusterName: CLUSTER,
    request: PENDING,
    link: LINK,
    resolution: { tag: "APPROVED", reason: "ok" },
  });
  assert.match(resolved.html, /✅ APPROVED \(ok\)/);
  assert.match(resolved.html, />View request<\/a>/);
  assert.doesNotMatch(resolved.html, /tsh request review/);
});

Deno.test("HTML part escapes every value from the request", () => {
  const hostile = `<b>now</b> "q" 'a' & co`;
  const escaped = "&lt;b&gt;now&lt;/b&gt; &quot;q&quot; &#39;a&#39; &amp; co";
  const request: RequestFacts = {
    ...PROMOTED,
    id: `id-${hostile}`,
    user: `u-${hostile}`,
    roles: [`r-${hostile}`],
    requestReason: `why-${hostile}`,
    requestedResources: [{ clusterName: "c", kind: "node", name: hostile, subResourceName: "" }],
  };
  const messages = [
    newRequestMessage({ clusterName: `c-${hostile}`, request }),
    newRequestMessage({ clusterName: "c", request, link: `https://x/?a=1&b="<>"` }),
    resolutionMessage({
      clusterName: "c",
      request,
      resolution: { tag: "DENIED", reason: `no-${hostile}` },
    }),
    reviewMessage({
      clusterName: "c",
      requestId: "id",
      review: {
        author: `a-${hostile}`,
        roles: [],
        proposedState: "APPROVED",
        reason: `ok-${hostile}`,
      },
      link: "https://x/?a=1&b=2",
    }),
  ];
  for (const { html, text } of messages) {
    assert.ok(!html.includes("<b>"), html);
    assert.ok(!html.includes(`"q"`), html);
    assert.ok(!html.includes("'a'"), html);
    assert.ok(!html.includes("& co"), html);
    assert.ok(html.includes(escaped), html);
    assert.ok(text.includes(hostile), "the text part shows values as they are");
  }
  assert.ok(messages[1]?.html.includes(`href="https://x/?a=1&amp;b=&quot;&lt;&gt;&quot;"`));
});

Deno.test("the subject never carries CR, LF or other control characters", () => {
  const cases: [string, string, string][] = [
    ["teleport.example.com", ID, `teleport.example.com Role Request ${ID}`],
    ["evil\r\nBcc: x@y", "id", "evil Bcc: x@y Role Request id"],
    ["c", "id\n\nbody", "c Role Request id body"],
    ["c\u0000\t", "id\u2028x", "c Role Request id x"],
  ];
  for (const [cluster, id, subject] of cases) {
    assert.equal(subjectFor(cluster, id), subject);
    const msg = newRequestMessage({
      clusterName: cluster,
      request: { ...PENDING, id },
    });
    assert.equal(msg.subject, subject);
    // deno-lint-ignore no-control-regex
    assert.doesNotMatch(msg.subject, /[\u0000-\u001f\u007f]/);
  }
  const reply = reviewMessage({
    clusterName: "c\r\n",
    requestId: "id\r\nX-Injected: 1",
    review: { author: "a", roles: [], proposedState: "DENIED", reason: "" },
  });
  assert.equal(reply.subject, "c Role Request id X-Injected: 1");
});

Deno.test("requestWebLink: https://<proxy public address without :443>/web/requests/<id>", () => {
  const cases: [string, string | undefined][] = [
    ["teleport.example.com:443", `https://teleport.example.com/web/requests/${ID}`],
    ["teleport.example.com", `https://teleport.example.com/web/requests/${ID}`],
    ["teleport.example.com:3080", `https://teleport.example.com:3080/web/requests/${ID}`],
    ["https://teleport.example.com:443", `https://teleport.example.com/web/requests/${ID}`],
    ["[::1]:443", `https://[::1]/web/requests/${ID}`],
    ["", undefined],
    ["  ", undefined],
    ["bad host:x", undefined],
  ];
  for (const [addr, link] of cases) assert.equal(requestWebLink(addr, ID), link, addr);
  assert.equal(requestWebLink("p:443", "a/b c"), "https://p/web/requests/a%2Fb%20c");
});

Deno.test("requester and reminder emails: own headlines, the same facts", () => {
  const request = {
    id: "r-9",
    user: "alice@example.com",
    roles: ["editor"],
    requestReason: "hotfix",
  };
  const received = requesterReceivedMessage({ clusterName: "c1", request });
  assert.match(received.text, /^Your Role Request has been received:\n\nID: r-9\n/);
  assert.doesNotMatch(received.text, /tsh request review/, "the requester cannot review");
  assert.match(received.text, /Status: ⏳ PENDING$/);
  const reminder = reminderMessage({ clusterName: "c1", request });
  assert.match(reminder.text, /^Reminder: this Role Request is still waiting for a review:/);
  assert.match(reminder.text, /Approve: tsh request review --approve r-9/);
  assert.equal(reminder.subject, "c1 Role Request r-9");
});
