import assert from "node:assert/strict";
import { EMBEDDED_MODULE, readProtoFiles, renderEmbeddedModule } from "./embed_proto.ts";
import { PROTO_FILES, PROTO_JSON } from "../src/teleport/proto_embedded.ts";
import {
  AMR_SERVICE,
  AUTH_SERVICE,
  buildTeleportProto,
  teleportProto,
  USERS_SERVICE,
} from "../src/teleport/proto.ts";

Deno.test("embed_proto: src/teleport/proto_embedded.ts is up to date with proto/", async () => {
  const files = await readProtoFiles();
  assert.ok(Object.keys(files).length > 0, "no .proto files found under proto/");
  const expected = renderEmbeddedModule(files);
  const actual = await Deno.readTextFile(EMBEDDED_MODULE);
  assert.ok(
    actual === expected,
    "src/teleport/proto_embedded.ts is stale: run `deno run -A scripts/embed_proto.ts`",
  );
  assert.deepEqual(PROTO_FILES, files);
});

Deno.test("embed_proto: the schema the plugin loads (PROTO_JSON) is the one the sources make", () => {
  assert.deepEqual(PROTO_JSON, buildTeleportProto(PROTO_FILES).root.toJSON());
  // And what grpc-js is given from it is the same: every method, its path and streaming.
  const fromJson = teleportProto().packageDefinition;
  const fromSources = buildTeleportProto(PROTO_FILES).packageDefinition;
  assert.deepEqual(Object.keys(fromJson).sort(), Object.keys(fromSources).sort());
  for (const service of [AUTH_SERVICE, AMR_SERVICE, USERS_SERVICE]) {
    const shape = (def: unknown) =>
      Object.entries(
        def as Record<string, { path: string; requestStream: boolean; responseStream: boolean }>,
      )
        .map(([name, m]) => [name, m.path, m.requestStream, m.responseStream]);
    assert.deepEqual(shape(fromJson[service]), shape(fromSources[service]));
  }
});

Deno.test("embed_proto: sources with backticks and ${ survive the template literal", async () => {
  const tricky = {
    "a/b.proto": '// `quoted` ${not.a.placeholder} back\\slash\nsyntax = "proto3";\n',
  };
  const module = renderEmbeddedModule(tricky);
  const url = `data:application/typescript;base64,${btoa(module)}`;
  const { PROTO_FILES: loaded } = await import(url);
  assert.deepEqual(loaded, tricky);
});

Deno.test("embed_proto: the embedded sources build without any file on disk", () => {
  const built = buildTeleportProto(PROTO_FILES);
  assert.ok(built.root.lookupType("proto.Event"));
  assert.ok(built.root.lookupType("google.protobuf.Timestamp"));
  assert.deepEqual(Object.keys(built.AuthService.service), [
    "Ping",
    "WatchEvents",
    "ListAccessRequests",
    "GetAccessRequestsV2",
    "GetPluginData",
    "UpdatePluginData",
    "GetUser",
  ]);
  assert.deepEqual(Object.keys(built.UsersService.service), ["GetUser"]);
});

Deno.test("embed_proto: the schema loads in a process that may not read files", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const probe = `${dir}/probe.ts`;
    const protoModule = new URL("../src/teleport/proto.ts", import.meta.url).href;
    await Deno.writeTextFile(
      probe,
      `import { teleportProto } from ${JSON.stringify(protoModule)};\n` +
        `console.log(Object.keys(teleportProto().AuthService.service).join(","));\n`,
    );
    // grpc-js reads its logging settings from the environment; nothing else is granted.
    const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--no-prompt",
        "--allow-env",
        "--config",
        new URL("../deno.json", import.meta.url).pathname,
        probe,
      ],
      env: { DENO_NO_UPDATE_CHECK: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const err = new TextDecoder().decode(stderr);
    assert.equal(code, 0, err);
    assert.equal(
      new TextDecoder().decode(stdout).trim(),
      "Ping,WatchEvents,ListAccessRequests,GetAccessRequestsV2,GetPluginData,UpdatePluginData,GetUser",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
