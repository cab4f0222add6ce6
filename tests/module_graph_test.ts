/**
 * What `teleport-email` loads before it runs: the libraries of a feature the
 * config may not use are imported only when it does (memory and startup time,
 * see the README's benchmarks). A static import of one of them would load it
 * at every start of every command.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { staticNpmPackages } from "./command.ts";

const MAIN = fileURLToPath(new URL("../main.ts", import.meta.url));

Deno.test("main.ts loads the mailers' libraries, prom-client, ws and Handlebars only when used", async () => {
  const names = (await staticNpmPackages(MAIN)).map((p) => p.slice(0, p.lastIndexOf("@")));
  // What every start needs is loaded up front (and proves the walk sees npm packages).
  for (const always of ["@grpc/grpc-js", "@grpc/proto-loader", "protobufjs", "smol-toml"]) {
    assert.ok(names.includes(always), `${always} missing from ${names.join(", ")}`);
  }
  for (const lazy of ["nodemailer", "mailgun.js", "prom-client", "ws", "handlebars"]) {
    assert.ok(!names.includes(lazy), `${lazy} is imported statically: ${names.join(", ")}`);
  }
});
