/** The product version (from deno.json) and the `version` command's line. */
import denoJson from "../../deno.json" with { type: "json" };
import { GIT_REF } from "./build_info.ts";

export const VERSION: string = denoJson.version;

/** `teleport-email v<version> git:<ref> deno<deno version>`, as `version` prints it. */
export function versionLine(denoVersion: string = Deno.version.deno): string {
  return `teleport-email v${VERSION} git:${GIT_REF} deno${denoVersion}`;
}
