/**
 * `[templates]`: reads the operator's message templates (inline or from
 * files) and checks them. Each template is compiled and rendered on sample
 * data here, so that one that cannot work is a config error at startup,
 * naming its dotted key and line, and never a surprise when an email is due.
 * The engine and the fields are `src/notify/template.ts`'s.
 */
import { KIB } from "../lib/read_file.ts";
import {
  checkTemplates,
  DEFAULT_TIME_ZONE,
  isTimeZone,
  TEMPLATE_KINDS,
  type TemplatePart,
  type TemplateSource,
  type TemplateSources,
} from "../notify/template.ts";
import { describeReadError } from "./error.ts";

/** Largest template, inline or in a file: an email's words, with room for a styled HTML part. */
export const TEMPLATE_LIMIT = 64 * KIB;

/** Keys of `[templates]` itself (the kinds are sub-tables). */
export const TEMPLATES_KEYS = ["subject", "time_zone"] as const;
/** Keys of each `[templates.<kind>]`. */
export const TEMPLATE_KIND_KEYS = ["subject", "text", "text_file", "html", "html_file"] as const;

export interface TemplatesResult {
  /** `undefined` when `[templates]` is absent or has a problem. */
  readonly sources?: TemplateSources;
  readonly problems: readonly string[];
  readonly warnings: readonly string[];
}

type Table = Record<string, unknown>;

function isTable(value: unknown): value is Table {
  return typeof value === "object" && value !== null && !Array.isArray(value) &&
    !(value instanceof Date);
}

function kindOf(value: unknown): string {
  if (Array.isArray(value)) return "an array";
  if (isTable(value)) return "a table";
  if (value instanceof Date) return "a date-time";
  return `a ${typeof value}`;
}

/** Validates `raw.templates` (the parsed TOML document's), reading template files through `readTextFile`. */
export function validateTemplates(
  raw: Table,
  readTextFile: (path: string, limit: number) => string,
): TemplatesResult {
  if (!Object.hasOwn(raw, "templates")) return { problems: [], warnings: [] };
  const problems: string[] = [];
  const warnings: string[] = [];
  const table = raw["templates"];
  if (!isTable(table)) {
    return {
      problems: [`templates: must be a table ([templates]), got ${kindOf(table)}`],
      warnings,
    };
  }
  const kindNames: readonly string[] = TEMPLATE_KINDS;

  /** An inline template: a non-empty string within the limit; `undefined` when unset. */
  const inline = (t: Table, key: string, dotted: string): TemplateSource | undefined => {
    if (!Object.hasOwn(t, key)) return undefined;
    const value = t[key];
    if (typeof value !== "string") {
      problems.push(`${dotted}: must be a string, got ${kindOf(value)}`);
      return undefined;
    }
    if (value.length > TEMPLATE_LIMIT) {
      problems.push(`${dotted}: is longer than ${TEMPLATE_LIMIT} characters`);
      return undefined;
    }
    return value === "" ? undefined : { key: dotted, source: value };
  };

  /** `<part>` or `<part>_file`, the inline one winning (as secrets do). */
  const part = (t: Table, kind: string, name: "text" | "html"): TemplateSource | undefined => {
    const prefix = `templates.${kind}`;
    const direct = inline(t, name, `${prefix}.${name}`);
    const file = inline(t, `${name}_file`, `${prefix}.${name}_file`);
    if (direct !== undefined) {
      if (file !== undefined) warnings.push(`${file.key}: ignored because ${direct.key} is set`);
      return direct;
    }
    if (file === undefined) return undefined;
    const path = file.source;
    try {
      return { key: file.key, source: readTextFile(path, TEMPLATE_LIMIT) };
    } catch (error) {
      problems.push(
        `${file.key}: cannot read ${JSON.stringify(path)}: ${describeReadError(error)}`,
      );
      return undefined;
    }
  };

  const subject = inline(table, "subject", "templates.subject");
  let timeZone = DEFAULT_TIME_ZONE;
  const zone = inline(table, "time_zone", "templates.time_zone");
  if (zone !== undefined) {
    if (isTimeZone(zone.source)) timeZone = zone.source;
    else {
      problems.push(
        `templates.time_zone: must be a time zone name such as "Europe/Berlin" or "UTC", ` +
          `got ${JSON.stringify(zone.source)}`,
      );
    }
  }

  const kinds: Record<string, Partial<Record<TemplatePart, TemplateSource>>> = {};
  for (const [key, value] of Object.entries(table)) {
    if ((TEMPLATES_KEYS as readonly string[]).includes(key)) continue;
    const dotted = `templates.${/^[A-Za-z0-9_-]+$/.test(key) ? key : JSON.stringify(key)}`;
    if (!kindNames.includes(key)) {
      warnings.push(
        `${dotted}: unknown key, ignored (templates are for ${kindNames.join(", ")}; ` +
          `other keys: ${TEMPLATES_KEYS.join(", ")})`,
      );
      continue;
    }
    if (!isTable(value)) {
      problems.push(`${dotted}: must be a table ([${dotted}]), got ${kindOf(value)}`);
      continue;
    }
    for (const name of Object.keys(value)) {
      if (!(TEMPLATE_KIND_KEYS as readonly string[]).includes(name)) {
        warnings.push(
          `${dotted}.${name}: unknown key, ignored (keys: ${TEMPLATE_KIND_KEYS.join(", ")})`,
        );
      }
    }
    const parts: Partial<Record<TemplatePart, TemplateSource>> = {};
    const own = inline(value, "subject", `${dotted}.subject`);
    if (own !== undefined) parts.subject = own;
    const text = part(value, key, "text");
    if (text !== undefined) parts.text = text;
    const html = part(value, key, "html");
    if (html !== undefined) parts.html = html;
    if (Object.keys(parts).length > 0) kinds[key] = parts;
  }

  // Checked even when something else is wrong: every problem is reported at once.
  const sources: TemplateSources = { ...(subject ? { subject } : {}), timeZone, kinds };
  problems.push(...checkTemplates(sources));
  return problems.length > 0 ? { problems, warnings } : { sources, problems, warnings };
}
