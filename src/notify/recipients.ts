/**
 * Who gets the "new request" email (SPEC §5): per requested role its
 * configured list, or the `"*"` list when it has none; then the suggested
 * reviewers. Unlike the Go plugin (a set, random order) the order is stable.
 */
import { isPlainAddress } from "../lib/address.ts";
import type { AccessRequest } from "../teleport/types.ts";

/** The fallback entry of `role_to_recipients`. */
export const WILDCARD_ROLE = "*";

export interface Recipients {
  /** Plain addresses, each once, in first-seen order. */
  readonly recipients: string[];
  /** Entries that are not plain addresses (each once): the caller logs a WARN per entry. */
  readonly dropped: string[];
}

export function recipientsFor(
  request: Pick<AccessRequest, "roles" | "suggestedReviewers">,
  roleToRecipients: Readonly<Record<string, readonly string[]>>,
): Recipients {
  const listFor = (role: string): readonly string[] => {
    const own = Object.hasOwn(roleToRecipients, role) ? roleToRecipients[role] : undefined;
    if (own !== undefined && own.length > 0) return own;
    return roleToRecipients[WILDCARD_ROLE] ?? [];
  };

  const seen = new Set<string>();
  const recipients: string[] = [];
  const dropped: string[] = [];
  const candidates = [...request.roles.flatMap(listFor), ...request.suggestedReviewers];
  for (const candidate of candidates) {
    if (seen.has(candidate)) continue;
    seen.add(candidate);
    (isPlainAddress(candidate) ? recipients : dropped).push(candidate);
  }
  return { recipients, dropped };
}
