/** The email the benchmarks and reproductions send: the plugin's own, for a request of theirs. */
import { newRequestMessage, requestWebLink } from "../../src/notify/message.ts";

/**
 * The plugin's built-in new-request email (text and HTML, ~3 KB) for a
 * request `id` of `user1@example.com` in `clusterName`, created now and
 * expiring in an hour.
 */
export function benchRequestMessage(
  id: string,
  clusterName = "teleport.example.com",
): ReturnType<typeof newRequestMessage> {
  const now = Date.now();
  return newRequestMessage({
    clusterName,
    request: {
      id,
      user: "user1@example.com",
      roles: ["editor"],
      requestReason: "benchmark",
      created: new Date(now),
      expires: new Date(now + 3_600_000),
      accessExpires: new Date(now + 3_600_000),
    },
    link: requestWebLink(clusterName, id),
  });
}
