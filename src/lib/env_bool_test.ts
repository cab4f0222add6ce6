import assert from "node:assert/strict";
import { envBool } from "./env_bool.ts";

Deno.test("envBool reads a variable as Go's strconv.ParseBool does", () => {
  for (const v of ["1", "t", "T", "TRUE", "true", "True"]) {
    assert.equal(envBool({ X: v }, "X"), true);
  }
  for (const v of ["0", "f", "F", "FALSE", "false", "False", ""]) {
    assert.equal(envBool({ X: v }, "X"), false);
  }
  assert.equal(envBool({}, "X"), false);
  assert.throws(() => envBool({ X: "yes" }, "X"), /Cannot parse X "yes": expected true or false/);
});
