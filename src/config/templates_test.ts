import assert from "node:assert/strict";
import { parse } from "smol-toml";
import { ConfigError, validateConfig } from "./validate.ts";
import { TEMPLATE_LIMIT } from "./templates.ts";
import { loadTemplateEngine } from "../notify/template.ts";

// validateConfig is synchronous: `loadConfig` loads the engine first, these tests do it here.
await loadTemplateEngine();

const BASE = `
[teleport]
identity = "/id"
[smtp]
host = "smtp.example.com"
[delivery]
sender = "noreply@example.com"
[role_to_recipients]
"*" = ["ops@example.com"]
`;

const FILES: Record<string, string> = {
  "/t/new.txt": "Neue Anfrage von {{user}}",
  "/t/new.html": "<p>{{user}}</p>",
  "/t/bad.html": "<p>\n{{{user}}}</p>",
};

function validate(extra: string) {
  return validateConfig(parse(extra + "\n" + BASE), {
    readTextFile(path, limit) {
      const text = FILES[path];
      if (text === undefined) throw new Deno.errors.NotFound(path);
      assert.equal(limit, TEMPLATE_LIMIT);
      return text;
    },
  });
}

function problemsOf(extra: string): readonly string[] {
  try {
    validate(extra);
  } catch (error) {
    assert.ok(error instanceof ConfigError);
    return error.problems;
  }
  assert.fail("expected a ConfigError");
}

Deno.test("no [templates]: no templates in the config (the built-in emails)", () => {
  assert.equal(validate("").config.templates, undefined);
});

Deno.test("[templates]: inline and file templates, a shared subject and a time zone", () => {
  const { config, warnings } = validate(`
[templates]
subject = "[OPS] {{request_id}}"
time_zone = "Europe/Berlin"
[templates.new_request]
text_file = "/t/new.txt"
html_file = "/t/new.html"
[templates.review]
text = "{{review.author}}: {{review.state}}"
`);
  assert.deepEqual(warnings, []);
  assert.deepEqual(config.templates, {
    subject: { key: "templates.subject", source: "[OPS] {{request_id}}" },
    timeZone: "Europe/Berlin",
    kinds: {
      new_request: {
        text: { key: "templates.new_request.text_file", source: FILES["/t/new.txt"] },
        html: { key: "templates.new_request.html_file", source: FILES["/t/new.html"] },
      },
      review: {
        text: { key: "templates.review.text", source: "{{review.author}}: {{review.state}}" },
      },
    },
  });
});

Deno.test("[templates]: unknown kinds and keys are warned about; text wins over text_file", () => {
  const { warnings } = validate(`
[templates]
[templates.new_requets]
text = "x"
[templates.review]
txt = "x"
text = "a"
text_file = "/t/new.txt"
`);
  assert.equal(warnings.length, 3, warnings.join("\n"));
  assert.match(warnings[0]!, /^templates\.new_requets: unknown key, ignored/);
  assert.match(warnings[1]!, /^templates\.review\.txt: unknown key, ignored/);
  assert.match(
    warnings[2]!,
    /^templates\.review\.text_file: ignored because templates\.review\.text is set$/,
  );
});

const bad: [string, string, RegExp][] = [
  ["[templates] not a table", `templates = "x"`, /^templates: must be a table/],
  ["a kind not a table", `[templates]\nreview = "x"`, /^templates\.review: must be a table/],
  [
    "a template not a string",
    `[templates.review]\ntext = 3`,
    /^templates\.review\.text: must be a string/,
  ],
  [
    "a missing file",
    `[templates.review]\nhtml_file = "/t/none.html"`,
    /^templates\.review\.html_file: cannot read "\/t\/none\.html": not found$/,
  ],
  [
    "a bad time zone",
    `[templates]\ntime_zone = "Mars/Olympus"`,
    /^templates\.time_zone: must be a time zone name/,
  ],
  [
    "raw HTML in a file",
    `[templates.review]\nhtml_file = "/t/bad.html"`,
    /^templates\.review\.html_file: line 2: unescaped output/,
  ],
  [
    "an unknown field",
    `[templates]\nsubject = "{{ticket}}"`,
    /^templates\.subject: line 1: unknown field "ticket"/,
  ],
  [
    "a syntax error",
    `[templates.reminder]\ntext = """\nline one\n{{#each roles}}"""`,
    /^templates\.reminder\.text: line 2: syntax error/,
  ],
  [
    "a template over the limit",
    `[templates.review]\ntext = "${"x".repeat(TEMPLATE_LIMIT + 1)}"`,
    /is longer than/,
  ],
];

for (const [name, extra, expected] of bad) {
  Deno.test(`[templates]: ${name} is a config error naming the key`, () => {
    const problems = problemsOf(extra);
    assert.equal(problems.length, 1, problems.join("\n"));
    assert.match(problems[0]!, expected);
  });
}

Deno.test("[templates]: every problem at once, with the other sections'", () => {
  const problems = problemsOf(`
[templates]
time_zone = "Nowhere"
subject = "{{nope}}"
[templates.review]
html = "{{{user}}}"
`);
  assert.equal(problems.length, 3, problems.join("\n"));
});
