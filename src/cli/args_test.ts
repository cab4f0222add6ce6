import assert from "node:assert/strict";
import { type Command, DEFAULT_CONFIG_PATH, parseCommand, usage, UsageError } from "./args.ts";

const ok: [string[], Command][] = [
  [["start"], { kind: "start", configPath: DEFAULT_CONFIG_PATH, debug: false }],
  [["start", "-c", "/x.toml"], { kind: "start", configPath: "/x.toml", debug: false }],
  [["start", "-dc", "/x.toml"], { kind: "start", configPath: "/x.toml", debug: true }],
  [["start", "-d", "--no-debug"], { kind: "start", configPath: DEFAULT_CONFIG_PATH, debug: false }],
  [["start", "--no-debug", "--debug"], {
    kind: "start",
    configPath: DEFAULT_CONFIG_PATH,
    debug: true,
  }],
  [["start", "--config=/x.toml", "-d"], { kind: "start", configPath: "/x.toml", debug: true }],
  [["start", "--config", "rel.toml", "--debug"], {
    kind: "start",
    configPath: "rel.toml",
    debug: true,
  }],
  [["configure"], { kind: "configure" }],
  [["version"], { kind: "version" }],
  [["help"], { kind: "help" }],
  [["--help"], { kind: "help" }],
  [["-h"], { kind: "help" }],
  [["help", "--help"], { kind: "help" }],
  [["help", "-h"], { kind: "help" }],
  [["help", "start"], { kind: "help", topic: "start" }],
  [["start", "--help"], { kind: "help", topic: "start" }],
  [["configure", "-h"], { kind: "help", topic: "configure" }],
  [["preview"], { kind: "preview", configPath: DEFAULT_CONFIG_PATH }],
  [["preview", "-c", "x.toml", "-k", "review"], {
    kind: "preview",
    configPath: "x.toml",
    emailKind: "review",
  }],
  [["preview", "--help"], { kind: "help", topic: "preview" }],
];

for (const [argv, expected] of ok) {
  Deno.test(`parseCommand ${JSON.stringify(argv)}`, () => {
    assert.deepEqual(parseCommand(argv), expected);
  });
}

const bad: [string[], string][] = [
  [[], "Expected a command (start, configure, version)"],
  [["frobnicate"], 'Unknown command "frobnicate"'],
  [["--frob"], 'Unknown flag "--frob"'],
  [["start", "--frob"], 'Unknown flag "--frob"'],
  [["start", "-x"], 'Unknown flag "-x"'],
  [["start", "-c"], 'Flag "--config" needs a value'],
  [["start", "--config="], 'Flag "--config" needs a path'],
  [["start", "--debug=yes"], 'Flag "--debug" does not take a value'],
  [["start", "extra"], 'Unexpected argument "extra"'],
  [["version", "--config=x"], 'Unknown flag "--config"'],
  [["help", "nope"], 'Unknown command "nope"'],
  [
    ["preview", "--kind", "escalation2"],
    'Unknown kind "escalation2" (one of new_request, review, resolution, reminder, requester, escalation, access_expiry)',
  ],
  [["preview", "--debug"], 'Unknown flag "--debug"'],
];

for (const [argv, message] of bad) {
  Deno.test(`parseCommand ${JSON.stringify(argv)} is a usage error`, () => {
    assert.throws(() => parseCommand(argv), (error) => {
      assert.ok(error instanceof UsageError);
      assert.equal(error.message, message);
      return true;
    });
  });
}

Deno.test("usage lists every command and the start flags", () => {
  const text = usage();
  for (const name of ["start", "configure", "version", "help"]) {
    assert.match(text, new RegExp(name));
  }
  assert.match(usage("start"), /-c, --config PATH/);
  assert.match(usage("start"), /-d, --debug/);
});
