/**
 * Who gets the "new request" email (SPEC §5): the recipients of the access
 * monitoring rules that match, or else, per requested role, its configured
 * list or the `"*"` list when it has none; then the suggested reviewers.
 * Unlike the Go plugin (a set, random order) the order is stable. Pure: the
 * caller logs the notes.
 */
import { isRecipientAddress } from "../lib/address.ts";
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

  return dedupeAddresses([...request.roles.flatMap(listFor), ...request.suggestedReviewers]);
}

/**
 * Each address once, in first-seen order, spelled as first seen: addresses
 * that differ only in letter case are one mailbox in practice (`OPS@x`,
 * `ops@x`, `Ops@x` get one email). Entries that are not plain addresses go
 * to `dropped`, each once.
 */
export function dedupeAddresses(entries: Iterable<string>): Recipients {
  const seen = new Set<string>();
  const recipients: string[] = [];
  const dropped: string[] = [];
  for (const entry of entries) {
    const key = entry.toLowerCase();
    if (seen.has(key)) continue;
    seen.add(key);
    (isRecipientAddress(entry) ? recipients : dropped).push(entry);
  }
  return { recipients, dropped };
}

/** What the matching access monitoring rules name (`RuleSet.recipientsFor`). */
export interface RuleMatch {
  readonly recipients: readonly string[];
  readonly dropped: readonly string[];
  /** The matching rules' names. */
  readonly rules: readonly string[];
  /**
   * Rules (among `rules`) that ran out of steps on this request and count as
   * matching: the request then also goes to `role_to_recipients`, so that no
   * request can be steered away from anyone it could have reached.
   */
  readonly undecided?: readonly string[];
}

/** Something about a routing decision the operator should hear of (a WARN or INFO line). */
export type RoutingNote =
  | { readonly kind: "from_rules"; readonly rules: readonly string[] }
  | { readonly kind: "not_an_address"; readonly entry: string }
  | { readonly kind: "rules_name_nobody"; readonly rules: readonly string[] }
  | { readonly kind: "no_recipient" };

export interface Routing {
  readonly recipients: readonly string[];
  readonly source: "rules" | "role_to_recipients";
  readonly notes: readonly RoutingNote[];
}

/**
 * Routes a new request. Matching rules that name at least one plain address
 * decide; matching rules that name nobody leave the routing to
 * `role_to_recipients`, as in the Go plugin.
 */
export function routeRecipients(
  request: Pick<AccessRequest, "roles" | "suggestedReviewers">,
  match: RuleMatch | undefined,
  roleToRecipients: Readonly<Record<string, readonly string[]>>,
): Routing {
  const notes: RoutingNote[] = [];
  const notAddresses = (entries: readonly string[]) => {
    for (const entry of entries) notes.push({ kind: "not_an_address", entry });
  };
  if (match && match.recipients.length > 0) {
    notes.push({ kind: "from_rules", rules: match.rules });
    notAddresses(match.dropped);
    if ((match.undecided?.length ?? 0) === 0) {
      return { recipients: match.recipients, source: "rules", notes };
    }
    const fallback = recipientsFor(request, roleToRecipients);
    notAddresses(fallback.dropped);
    const { recipients } = dedupeAddresses([...match.recipients, ...fallback.recipients]);
    return { recipients, source: "rules", notes };
  }
  if (match) {
    notAddresses(match.dropped);
    notes.push({ kind: "rules_name_nobody", rules: match.rules });
  }
  const { recipients, dropped } = recipientsFor(request, roleToRecipients);
  notAddresses(dropped);
  if (recipients.length === 0) notes.push({ kind: "no_recipient" });
  return { recipients, source: "role_to_recipients", notes };
}
