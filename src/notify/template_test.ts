import assert from "node:assert/strict";
import {
  checkTemplates,
  cleanSubject,
  formatTime,
  loadTemplateEngine,
  MAX_SUBJECT_CHARS,
  MAX_TEMPLATE_ITERATIONS,
  MessageTemplates,
  sampleInputs,
  TEMPLATE_KINDS,
  type TemplateInput,
  type TemplateSources,
} from "./template.ts";
import type { MessageContent } from "./message.ts";

await loadTemplateEngine();

const BUILT_IN: MessageContent = {
  subject: "built-in subject",
  text: "built-in text",
  html: "<p>built-in</p>",
};

/** Every string a request can carry, hostile: markup, quotes, header injection, template syntax. */
const HOSTILE =
  `<script>alert("x")</script>'&\r\nBcc: evil@example.com\u0000\u2028{{user}}{{{user}}}`;

function hostileInput(): TemplateInput {
  const review = {
    author: HOSTILE,
    roles: [HOSTILE],
    proposedState: "APPROVED" as const,
    reason: HOSTILE,
    created: new Date(Date.UTC(2026, 0, 2, 3, 4)),
  };
  return {
    clusterName: HOSTILE,
    request: {
      id: HOSTILE,
      user: HOSTILE,
      roles: [HOSTILE, HOSTILE],
      requestReason: HOSTILE,
      requestedResources: [{
        clusterName: HOSTILE,
        kind: HOSTILE,
        name: HOSTILE,
        subResourceName: HOSTILE,
      }],
      created: new Date(Date.UTC(2026, 0, 2, 3, 4)),
      expires: new Date(Date.UTC(2026, 0, 2, 4, 4)),
      accessExpires: new Date(Date.UTC(2026, 0, 2, 11, 4)),
    },
    reviews: [review],
    link: `https://x/"><script>`,
    status: HOSTILE,
    resolutionReason: HOSTILE,
    review,
    notEmailed: 2,
    recipient: HOSTILE,
  };
}

/** A template naming every field (lists through #each). */
const EVERY_FIELD = [
  "{{kind}} {{cluster}} {{request_id}} {{user}} {{roles_text}} {{reason}} {{resources_text}}",
  "{{#each roles}}[{{this}}]{{/each}} {{#each resources}}[{{this}}]{{/each}}",
  "{{created}} {{expires}} {{access_until}} {{time_zone}} {{link}} {{tsh_approve}} {{tsh_deny}}",
  "{{status}} {{status_text}} {{resolution_reason}} {{not_emailed}} {{recipient}}",
  "{{review.author}} {{review.state}} {{review.state_text}} {{review.reason}} {{review.time}}",
  "{{#each reviews}}{{author}} {{state}} {{reason}} {{time}} {{#each roles}}{{this}}{{/each}}{{/each}}",
].join("\n");

function sources(
  kind: string,
  parts: Record<string, string>,
  extra: Partial<TemplateSources> = {},
) {
  const entries = Object.entries(parts).map(([part, source]) => [
    part,
    { key: `templates.${kind}.${part}`, source },
  ]);
  return { timeZone: "UTC", kinds: { [kind]: Object.fromEntries(entries) }, ...extra };
}

Deno.test("hostile values in every field: HTML escaped, subject one bounded line, text verbatim", () => {
  const t = new MessageTemplates(sources("review", {
    subject: `{{cluster}} {{user}} {{reason}} {{request_id}}`,
    text: EVERY_FIELD,
    html: `<div>${EVERY_FIELD}</div>`,
  }));
  const out = t.render("review", hostileInput(), BUILT_IN);
  // deno-lint-ignore no-control-regex
  assert.doesNotMatch(out.subject, /[\u0000-\u001f\u007f\u2028\u2029]/);
  assert.ok([...out.subject].length <= MAX_SUBJECT_CHARS);
  assert.doesNotMatch(out.html, /<script/i);
  assert.doesNotMatch(out.html, /"><script/);
  assert.match(out.html, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;&#x27;&amp;/);
  // Values are data, never template syntax: "{{user}}" inside a value stays as it is.
  assert.match(out.text, /\{\{user\}\}\{\{\{user\}\}\}/);
  assert.ok(out.text.includes(HOSTILE), "plain text is not HTML-escaped");
  assert.match(out.text, /tsh request review --approve '/, "the tsh lines quote a hostile id");
  assert.match(out.html, /^<!DOCTYPE html>/, "a fragment is put into the built-in layout");
});

Deno.test("a subject template with CR/LF and control characters renders to one line", () => {
  const cases: [string, string][] = [
    [
      "A\r\nBcc: evil@example.com\n{{request_id}}",
      "A Bcc: evil@example.com 2d3c4b5a-6f70-4819-a2b3-c4d5e6f70819",
    ],
    ["\t x\u0007y\u0085z\u2028 ", "x y z"],
    ["{{reason}}\r\n\r\n", "Investigating incident INC-42"],
  ];
  for (const [template, expected] of cases) {
    const t = new MessageTemplates({
      subject: { key: "templates.subject", source: template },
      timeZone: "UTC",
      kinds: {},
    });
    const out = t.render(
      "new_request",
      sampleInputs("new_request", "r@example.com").full,
      BUILT_IN,
    );
    assert.equal(out.subject, expected, JSON.stringify(template));
    assert.equal(out.text, BUILT_IN.text, "only the subject is templated");
    assert.equal(out.html, BUILT_IN.html);
  }
});

Deno.test("a long subject is cut to MAX_SUBJECT_CHARS with an ellipsis", () => {
  const long = cleanSubject("é".repeat(500));
  assert.equal([...long].length, MAX_SUBJECT_CHARS);
  assert.ok(long.endsWith("…"));
  assert.equal(cleanSubject("short"), "short");
});

Deno.test("kinds without templates keep the built-in message as it is", () => {
  const t = new MessageTemplates(sources("review", { text: "x" }));
  const input = sampleInputs("new_request", "r@example.com").full;
  assert.equal(t.has("new_request"), false);
  assert.equal(t.render("new_request", input, BUILT_IN), BUILT_IN);
});

Deno.test("a text template without an HTML one: the built-in layout around the escaped text", () => {
  const t = new MessageTemplates(sources("new_request", { text: "Hallo {{user}} <b>" }));
  const out = t.render("new_request", sampleInputs("new_request", "r@example.com").full, BUILT_IN);
  assert.equal(out.text, "Hallo alice@example.com <b>");
  assert.match(
    out.html,
    /<div style="white-space:pre-wrap">Hallo alice@example.com &lt;b&gt;<\/div>/,
  );
  assert.match(out.html, /View request<\/a>/);
});

Deno.test("a whole HTML document is sent as written; body templates see the subject", () => {
  const t = new MessageTemplates(sources("new_request", {
    subject: "S {{user}}",
    html: "<html><body>{{subject}}</body></html>",
  }));
  const out = t.render("new_request", sampleInputs("new_request", "r@example.com").full, BUILT_IN);
  assert.equal(out.html, "<html><body>S alice@example.com</body></html>");
  assert.equal(out.text, BUILT_IN.text);
});

Deno.test("nested loops over the request's own lists stop at MAX_TEMPLATE_ITERATIONS, not minutes later", () => {
  const nested = "{{#each resources}}{{#each @root.resources}}{{#each @root.resources}}" +
    "{{/each}}{{/each}}{{/each}}x";
  const t = new MessageTemplates(sources("new_request", { text: nested }));
  assert.deepEqual(checkTemplates(sources("new_request", { text: nested })), []);
  const input = hostileInput();
  const withResources = (n: number) => ({
    ...input,
    request: {
      ...input.request,
      requestedResources: Array.from({ length: n }, (_, i) => ({
        clusterName: "c",
        kind: "node",
        name: `n${i}`,
        subResourceName: "",
      })),
    },
  });
  // 40 resources: 40 + 1,600 + 64,000 iterations, within the bound.
  assert.equal(t.render("new_request", withResources(40), BUILT_IN).text, "x");
  // 300 (as many as Teleport lets a request name): 27 million, refused after the first 100,000.
  assert.throws(
    () => t.render("new_request", withResources(300), BUILT_IN),
    new RegExp(`templates\\.new_request\\.text.*more than ${MAX_TEMPLATE_ITERATIONS} times`),
  );
  // The count is per rendering.
  assert.equal(t.render("new_request", withResources(40), BUILT_IN).text, "x");

  // Few iterations, each printing the requester's 4 KB reason: stopped by what they produce,
  // before the string is hundreds of MB.
  const printing = new MessageTemplates(sources("new_request", {
    text: "{{#each resources}}{{#each @root.resources}}{{@root.reason}}{{/each}}{{/each}}",
  }));
  const long = {
    ...withResources(300),
    request: { ...withResources(300).request, requestReason: "r".repeat(4096) },
  };
  assert.throws(
    () => printing.render("new_request", long, BUILT_IN),
    /templates\.new_request\.text.*produce more than/,
  );
});

Deno.test("a render failure on unexpected data throws a TemplateError naming the key", () => {
  // Only a second resource reaches the bad lookup: the samples have one.
  const t = new MessageTemplates(sources("new_request", {
    text: "{{#each resources}}{{#if @index}}{{this.x}}{{/if}}{{/each}}",
  }));
  const input = hostileInput();
  const twice = {
    ...input,
    request: {
      ...input.request,
      requestedResources: [
        ...input.request.requestedResources!,
        ...input.request.requestedResources!,
      ],
    },
  };
  assert.throws(() => t.render("new_request", twice, BUILT_IN), /templates\.new_request\.text/);
  assert.deepEqual(
    checkTemplates(
      sources("new_request", {
        text: "{{#each resources}}{{#if @index}}{{this.x}}{{/if}}{{/each}}",
      }),
    ),
    [],
  );
});

const problems: [string, Record<string, string>, RegExp][] = [
  [
    "an unknown field",
    { text: "ok\n  {{nope}}" },
    /^templates\.new_request\.text: line 2: unknown field "nope" \(with sample data\)$/,
  ],
  [
    "an unknown nested field",
    { html: "{{review.nope}}" },
    /^templates\.new_request\.html: line 1: unknown field "nope"/,
  ],
  ["an unknown field in an {{#if}} branch the full sample reaches", {
    text: "{{#if link}}{{lnk}}{{/if}}",
  }, /unknown field "lnk"/],
  [
    "an unknown field in the {{else}} branch",
    { text: "{{#if link}}x{{else}}{{lnk}}{{/if}}" },
    /unknown field "lnk"/,
  ],
  [
    "an unclosed block",
    { text: "a\n{{#if user}}\nb" },
    /^templates\.new_request\.text: line 3: syntax error: expecting /,
  ],
  [
    "a mismatched block",
    { text: "{{#if user}}\n{{/each}}" },
    /^templates\.new_request\.text: line 1: if doesn't match each$/,
  ],
  [
    "an unclosed mustache",
    { subject: "x {{" },
    /^templates\.new_request\.subject: line 1: syntax error/,
  ],
  ["a partial", { text: "{{> evil}}" }, /line 1: partials \(\{\{> …\}\}\) are not available/],
  ["a partial block", { text: "{{#> evil}}x{{/evil}}" }, /partials/],
  ["a decorator", { text: "{{* evil}}" }, /decorators/],
  ["raw HTML output", { html: "<p>{{{user}}}</p>" }, /line 1: unescaped output/],
  ["raw HTML output with &", { html: "\n<p>{{& user}}</p>" }, /line 2: unescaped output/],
  ["the log helper", { text: "{{log user}}" }, /unknown helper "log"/],
  ["an unknown helper", { text: "{{upper user}}" }, /unknown helper "upper"/],
  [
    "a lookup on a text",
    { text: "{{#each roles}}{{this.length}}{{/each}}" },
    /"length" looked up on a text/,
  ],
  ["a parent beyond the root", { text: "{{../user}}" }, /unknown field "user"/],
  ["a subject that renders empty", { subject: "{{#if link}}{{/if}}" }, /empty subject/],
];

for (const [name, parts, expected] of problems) {
  Deno.test(`checkTemplates: ${name} is a problem naming the key and the line`, () => {
    const found = checkTemplates(sources("new_request", parts));
    assert.equal(found.length, 1, found.join("\n"));
    assert.match(found[0]!, expected);
  });
}

Deno.test("checkTemplates: no prototype, no environment, no files", () => {
  const t = new MessageTemplates(sources("new_request", {
    text:
      "[{{roles.constructor}}][{{lookup this 'constructor'}}][{{lookup roles 'constructor'}}][{{__proto__}}]",
  }));
  const out = t.render("new_request", sampleInputs("new_request", "r").full, BUILT_IN);
  assert.equal(out.text, "[][][][]");
  for (
    const text of ["{{Deno.env}}", "{{process.env.HOME}}", "{{@root.constructor.constructor}}"]
  ) {
    const found = checkTemplates(sources("new_request", { text }));
    assert.equal(found.length, 1, text);
    assert.match(found[0]!, /unknown field|looked up on a field that does not exist/);
  }
});

Deno.test("checkTemplates: a good template of every kind, every field, has no problem", () => {
  for (const kind of TEMPLATE_KINDS) {
    assert.deepEqual(
      checkTemplates(
        sources(kind, { subject: "{{request_id}}", text: EVERY_FIELD, html: EVERY_FIELD }),
      ),
      [],
      kind,
    );
  }
  assert.deepEqual(
    checkTemplates({
      subject: { key: "templates.subject", source: "{{nope}}" },
      timeZone: "UTC",
      kinds: {},
    }),
    ['templates.subject: line 1: unknown field "nope" (with sample data)'],
    "a shared subject's problem is reported once",
  );
});

Deno.test("times: UTC as the built-in lines, other zones with their name", () => {
  const d = new Date(Date.UTC(2026, 10, 22, 10, 0));
  assert.equal(formatTime(d, "UTC"), "2026-11-22 10:00 UTC");
  assert.equal(formatTime(d, "Europe/Berlin"), "2026-11-22 11:00 GMT+1");
  assert.equal(formatTime(d, "America/New_York"), "2026-11-22 05:00 EST");
  assert.equal(formatTime(undefined, "UTC"), "");
});
