/**
 * Access Monitoring Rules that route email notifications (Teleport 17+):
 * the rules whose subjects include `access_request` and whose notification
 * name is `email`, kept up to date from the watch stream. When any rule's
 * condition matches a request, the union of the matching rules' recipients
 * replaces the `role_to_recipients` list.
 */
import type { Logger } from "@logtape/logtape";
import {
  type AccessMonitoringRule,
  type AccessRequest,
  isTeleportError,
  KIND_ACCESS_MONITORING_RULE,
  KIND_ACCESS_REQUEST,
  type TeleportClient,
  type TeleportErrorKind,
} from "../teleport/types.ts";
import { type Condition, evaluateCondition, isOverBudget, parseCondition } from "./condition.ts";
import { dedupeAddresses, type RuleMatch } from "./recipients.ts";

/** The subject and notification name a rule must have to concern us. */
export const RULE_SUBJECT = KIND_ACCESS_REQUEST;
export const RULE_NOTIFICATION = "email";
/** The watch kind of the rules. */
export const RULE_KIND = KIND_ACCESS_MONITORING_RULE;
/** Failures that mean "this cluster will not give us access monitoring rules". */
const RULES_REFUSED: readonly TeleportErrorKind[] = [
  "denied",
  "unsupported",
  "not_found",
  "invalid",
];
/** Watch failures by which old servers refuse a whole watch when they do not know a kind. */
const WATCH_REFUSED: readonly TeleportErrorKind[] = ["invalid", "denied"];

interface CompiledRule {
  readonly rule: AccessMonitoringRule;
  readonly condition: Condition;
}

export function concernsEmail(rule: AccessMonitoringRule): boolean {
  return rule.subjects.includes(RULE_SUBJECT) && rule.notification.name === RULE_NOTIFICATION;
}

export class RuleSet {
  readonly #log: Logger;
  readonly #rules = new Map<string, CompiledRule>();
  /** `name@revision/condition` of rules already reported as broken (logged once). */
  readonly #reported = new Set<string>();

  constructor(log: Logger) {
    this.#log = log;
  }

  get size(): number {
    return this.#rules.size;
  }

  /** Counts `put` and `delete` calls: see `mark`. */
  #changes = 0;
  /** Rule name → the `#changes` count of its latest `put` or `delete`. */
  readonly #changedAt = new Map<string, number>();

  /**
   * Call before listing the rules, and pass the result to `replaceAll`: the
   * watch keeps delivering changes while the list is on its way, and a list
   * answered before a change must not undo it.
   */
  mark(): number {
    return this.#changes;
  }

  /**
   * Replaces every rule by the listed ones. With `since` (a `mark` taken
   * before listing), rules changed by `put` or `delete` after the mark stay
   * as those calls left them.
   */
  replaceAll(rules: readonly AccessMonitoringRule[], since?: number): void {
    const newer = new Map<string, CompiledRule | undefined>();
    if (since !== undefined) {
      for (const [name, at] of this.#changedAt) {
        if (at > since) newer.set(name, this.#rules.get(name));
      }
    }
    this.#rules.clear();
    for (const rule of rules) if (!newer.has(rule.name)) this.#add(rule);
    for (const [name, compiled] of newer) if (compiled) this.#rules.set(name, compiled);
  }

  /** Adds or replaces one rule; a rule that is not ours, or does not parse, is dropped. */
  put(rule: AccessMonitoringRule): void {
    this.#changedAt.set(rule.name, ++this.#changes);
    this.#add(rule);
  }

  delete(name: string): void {
    this.#changedAt.set(name, ++this.#changes);
    this.#rules.delete(name);
  }

  #add(rule: AccessMonitoringRule): void {
    this.#rules.delete(rule.name);
    if (!concernsEmail(rule)) return;
    try {
      this.#rules.set(rule.name, { rule, condition: parseCondition(rule.condition) });
    } catch (error) {
      const key = `${rule.name}@${rule.revision ?? ""}/${rule.condition}`;
      if (!this.#reported.has(key)) {
        this.#reported.add(key);
        this.#log.error("Access monitoring rule {rule} is skipped: {error}", {
          rule: rule.name,
          error,
        });
      }
    }
  }

  /**
   * The recipients of the rules matching `request` (rules in name order,
   * their recipients in order, each once), or `undefined` when none matches.
   */
  recipientsFor(
    request: AccessRequest,
    userTraits?: Readonly<Record<string, readonly string[]>>,
  ): RuleMatch | undefined {
    const matched: CompiledRule[] = [];
    const undecided: string[] = [];
    for (const name of [...this.#rules.keys()].sort()) {
      const compiled = this.#rules.get(name)!;
      try {
        if (
          evaluateCondition(compiled.condition, {
            request,
            ...(userTraits ? { userTraits } : {}),
          })
        ) matched.push(compiled);
      } catch (error) {
        if (isOverBudget(error)) {
          // The request's author decides what it costs: failing towards silence would let them
          // switch the rule off. Its recipients are emailed, and role_to_recipients too.
          this.#log.warn(
            "Access monitoring rule {rule} could not be evaluated for this request within its " +
              "cost bound ({error}): emailing the rule's recipients and role_to_recipients too",
            { rule: name, error, requestId: request.id },
          );
          matched.push(compiled);
          undecided.push(name);
          continue;
        }
        this.#log.warn("Access monitoring rule {rule} could not be evaluated: {error}", {
          rule: name,
          error,
          requestId: request.id,
        });
      }
    }
    if (matched.length === 0) return undefined;
    const { recipients, dropped } = dedupeAddresses(
      matched.flatMap(({ rule }) => rule.notification.recipients),
    );
    const rules = matched.map((m) => m.rule.name);
    return { recipients, dropped, rules, ...(undecided.length > 0 ? { undecided } : {}) };
  }
}

/**
 * Where the rules come from: listed after every INIT, kept current by the
 * watch stream, and given up for good (with one WARN) when the cluster will
 * not let us read them: recipients then come from `role_to_recipients`.
 */
export class RuleSource {
  readonly rules: RuleSet;
  readonly #client: Pick<TeleportClient, "listAccessMonitoringRules">;
  readonly #log: Logger;
  #allowed = true;

  constructor(client: Pick<TeleportClient, "listAccessMonitoringRules">, log: Logger) {
    this.#client = client;
    this.#log = log;
    this.rules = new RuleSet(log);
  }

  /** Whether rules are still asked for (and watched). */
  get allowed(): boolean {
    return this.#allowed;
  }

  /** Re-lists the rules; a refusal turns them off, any other failure is thrown. */
  async reload(signal: AbortSignal): Promise<void> {
    if (!this.#allowed) return;
    try {
      const since = this.rules.mark();
      this.rules.replaceAll(await this.#client.listAccessMonitoringRules(signal), since);
      this.#log.debug("Loaded {count} access monitoring rule(s) for email", {
        count: this.rules.size,
      });
    } catch (error) {
      if (!isTeleportError(error, ...RULES_REFUSED)) throw error;
      this.#refuse(`the cluster answered ${error.details || error.message}`);
    }
  }

  /** After an INIT: a server that did not accept the rules' kind will not send them. */
  checkInit(acceptedKinds: readonly string[] | undefined): void {
    if (acceptedKinds && !acceptedKinds.includes(RULE_KIND)) {
      this.#refuse("the cluster does not let this plugin watch them");
    }
  }

  /** After a watch failure: old servers refuse the whole watch when they do not know a kind. */
  checkWatchError(error: unknown): void {
    if (this.#allowed && isTeleportError(error, ...WATCH_REFUSED)) {
      this.#refuse(`the watch was refused: ${error.details || error.message}`);
    }
  }

  #refuse(why: string): void {
    if (!this.#allowed) return;
    this.#allowed = false;
    this.rules.replaceAll([]);
    this.#log.warn(
      "Access monitoring rules are not used ({why}): recipients come from role_to_recipients",
      { why },
    );
  }
}
