/**
 * Operator-written message templates (`[templates]`): compiling them safely,
 * the fields they may use, and rendering one email with them. Handlebars does
 * the rendering, in an isolated environment with no partials, no decorators,
 * no `log` helper and no helper of our own, in strict mode (an unknown field
 * is an error) and without prototype access (Handlebars' default since 4.6):
 * a template sees the fields below and nothing else, so it cannot read a
 * file, the environment or the process. HTML templates escape every value
 * and may not use `{{{…}}}` / `{{&…}}` (no field is safe HTML); the plain-text
 * and subject templates are not escaped, and a subject is made one line and
 * bounded. Pure: the caller decides what to do with a failure (the notifier
 * falls back to the built-in message, validation reports a config error).
 *
 * Handlebars is loaded only for a config that has templates
 * ({@linkcode loadTemplateEngine}): the built-in messages do without it, and
 * it costs ~40 ms of startup and ~3 MiB of memory.
 */
import type HandlebarsModule from "handlebars";
import type { AccessReview } from "../teleport/types.ts";
import {
  esc,
  htmlDocument,
  type MessageContent,
  oneLine,
  type RequestFacts,
  resourceText,
  shellArgument,
  withEmoji,
} from "./message.ts";

/**
 * The template kinds (`[templates.<kind>]`), one per email kind; a kind that
 * a later feature adds (e.g. `escalation`, `access_expiry`) is added here and
 * mapped by the notifier's email kind with spaces as underscores.
 */
export const TEMPLATE_KINDS = [
  "new_request",
  "review",
  "resolution",
  "reminder",
  "requester",
  "escalation",
  "access_expiry",
] as const;
export type TemplateKind = typeof TEMPLATE_KINDS[number];

/** The parts of one email a template may replace. */
export const TEMPLATE_PARTS = ["subject", "text", "html"] as const;
export type TemplatePart = typeof TEMPLATE_PARTS[number];

/** Longest subject after rendering, in characters; longer ones are cut with "…". */
export const MAX_SUBJECT_CHARS = 200;
/** Longest rendered text or HTML part, in characters: past it the built-in message is used. */
export const MAX_BODY_CHARS = 512 * 1024;
/** `templates.time_zone` when unset. */
export const DEFAULT_TIME_ZONE = "UTC";

/** One template as configured, with the dotted key it came from (for messages). */
export interface TemplateSource {
  /** `templates.new_request.text` or `templates.new_request.text_file`. */
  readonly key: string;
  readonly source: string;
}

/** `[templates]`, validated: sources only (compiled by {@link MessageTemplates}). */
export interface TemplateSources {
  /** `templates.subject`: the subject of every kind without one of its own. */
  readonly subject?: TemplateSource;
  /** `templates.time_zone`: an IANA name (`Europe/Berlin`), default `UTC`. */
  readonly timeZone: string;
  readonly kinds: Readonly<Partial<Record<string, Partial<Record<TemplatePart, TemplateSource>>>>>;
}

/** What one email is about: the data a template's fields are made of. */
export interface TemplateInput {
  readonly clusterName: string;
  readonly request: RequestFacts;
  /** Every review of the request so far (none when only plugin data is left). */
  readonly reviews?: readonly AccessReview[] | undefined;
  readonly link?: string | undefined;
  /** `PENDING`, `APPROVED`, `DENIED`, `EXPIRED`, `PROMOTED`. */
  readonly status: string;
  readonly resolutionReason?: string | undefined;
  /** The review a review email announces. */
  readonly review?: AccessReview | undefined;
  readonly notEmailed?: number | undefined;
  readonly recipient: string;
}

/** A template that does not compile or render; `line` is 1-based when known. */
export class TemplateError extends Error {
  override readonly name = "TemplateError";
  readonly key: string;
  readonly line: number | undefined;
  constructor(key: string, line: number | undefined, reason: string, options?: ErrorOptions) {
    super(`${key}: ${line === undefined ? "" : `line ${line}: `}${reason}`, options);
    this.key = key;
    this.line = line;
  }
}

type HandlebarsEnv = ReturnType<typeof HandlebarsModule.create>;

/**
 * Iterations of `{{#each}}` one rendering may take, in all: nested loops over
 * the request's own lists (`resources`, which the requester sizes) would
 * otherwise hold the event loop for minutes (300 resources, three levels:
 * 27 million). Past it the rendering fails and the built-in email goes out.
 */
export const MAX_TEMPLATE_ITERATIONS = 100_000;
/**
 * Characters all `{{#each}}` blocks of one rendering may produce, counted
 * per block (a nested block's output counts in each block around it): a
 * rendering's result is checked against `MAX_BODY_CHARS` once it is whole,
 * so a loop printing a requester's 4 KB reason 100,000 times would first
 * build 400 MB.
 */
const MAX_LOOP_OUTPUT_CHARS = 4 * 512 * 1024;
/** What the rendering under way may still iterate and produce (it is synchronous). */
let iterationsLeft = MAX_TEMPLATE_ITERATIONS;
let loopOutputLeft = MAX_LOOP_OUTPUT_CHARS;

function chargeOutput(out: unknown): void {
  loopOutputLeft -= typeof out === "string" ? out.length : 0;
  if (loopOutputLeft < 0) {
    throw new Error(
      `the template's {{#each}} blocks produce more than ${MAX_LOOP_OUTPUT_CHARS} characters`,
    );
  }
}

function chargeIterations(context: unknown): void {
  const size = Array.isArray(context)
    ? context.length
    : typeof context === "object" && context !== null
    ? Object.keys(context).length
    : 0;
  iterationsLeft -= Math.max(1, size);
  if (iterationsLeft < 0) {
    throw new Error(
      `the template iterates more than ${MAX_TEMPLATE_ITERATIONS} times ({{#each}} in all)`,
    );
  }
}
let engine: HandlebarsEnv | undefined;

/**
 * Loads Handlebars, once; `compile` (so {@linkcode checkTemplates} and
 * {@linkcode MessageTemplates}) needs it. The config loader calls it when
 * the file has a `[templates]` table.
 */
export async function loadTemplateEngine(): Promise<void> {
  if (engine) return;
  const { default: Handlebars } = await import("handlebars");
  // An environment of our own: nothing registered elsewhere reaches it.
  const env = Handlebars.create();
  env.unregisterHelper("log");
  const each = env.helpers["each"] as (this: unknown, ...args: unknown[]) => unknown;
  env.registerHelper("each", function (this: unknown, context: unknown, ...rest: unknown[]) {
    chargeIterations(context);
    const out = each.call(this, context, ...rest);
    chargeOutput(out);
    return out;
  });
  for (const name of Object.keys(env.partials)) env.unregisterPartial(name);
  engine ??= env;
}

function loadedEngine(): HandlebarsEnv {
  if (!engine) throw new Error("Templates need the engine: await loadTemplateEngine() first");
  return engine;
}

/** Only the built-in block helpers; `log` (writes to the console) is unknown, so refused. */
const COMPILE_OPTIONS = {
  strict: true,
  knownHelpersOnly: true,
  knownHelpers: { log: false, helperMissing: false, blockHelperMissing: false },
} as const;

/** Runtime options: no prototype properties or methods, whatever a template asks. */
const RUNTIME_OPTIONS = {
  allowProtoPropertiesByDefault: false,
  allowProtoMethodsByDefault: false,
} as const;

type Render = (fields: Readonly<Record<string, unknown>>) => string;

/** AST node types a template may not contain: partials and decorators. */
const FORBIDDEN_NODES: Readonly<Record<string, string>> = {
  PartialStatement: "partials ({{> …}}) are not available",
  PartialBlockStatement: "partials ({{#> …}}) are not available",
  Decorator: "decorators ({{* …}}) are not available",
  DecoratorBlock: "decorators ({{#* …}}) are not available",
};

interface AstNode {
  readonly type?: unknown;
  readonly escaped?: unknown;
  readonly loc?: { readonly start?: { readonly line?: number } };
}

/** Refuses what Handlebars would accept but we do not: partials, decorators, raw HTML output. */
function checkAst(node: unknown, key: string, part: TemplatePart): void {
  if (typeof node !== "object" || node === null) return;
  if (Array.isArray(node)) {
    for (const child of node) checkAst(child, key, part);
    return;
  }
  const n = node as AstNode;
  const line = n.loc?.start?.line;
  if (typeof n.type === "string") {
    const why = FORBIDDEN_NODES[n.type];
    if (why !== undefined) throw new TemplateError(key, line, why);
    if (n.type === "MustacheStatement" && n.escaped === false && part === "html") {
      throw new TemplateError(
        key,
        line,
        "unescaped output ({{{…}}} or {{&…}}) is not allowed in an HTML template",
      );
    }
  }
  for (const [name, child] of Object.entries(node)) {
    if (name !== "loc") checkAst(child, key, part);
  }
}

/** Handlebars' message in our words, with the line it names. */
function templateError(key: string, error: unknown): TemplateError {
  const e = error as { message?: unknown; lineNumber?: unknown };
  let message = typeof e?.message === "string" ? e.message : String(error);
  let line = typeof e?.lineNumber === "number" ? e.lineNumber : undefined;
  // "Parse error on line 2:\n{{#if}\n----^\nExpecting 'ID', …, got 'INVALID'"
  const parse = /^(?:Parse|Lexical) error on line (\d+)[:.]/.exec(message);
  if (parse) {
    line = Number(parse[1]);
    const last = message.split("\n").at(-1) ?? "";
    message = `syntax error${last.startsWith("Expecting") ? `: ${lowerFirst(last)}` : ""}`;
  }
  message = message.replace(/ - \d+:\d+$/, "");
  const unknown = /^"([^"]+)" not defined in /.exec(message);
  if (unknown) message = `unknown field "${unknown[1]}"`;
  const primitive = /^Cannot use 'in' operator to search for '([^']*)' in /.exec(message);
  if (primitive) message = `"${primitive[1]}" looked up on a text or number, which has no fields`;
  const missing = /^Cannot read properties of (?:undefined|null) \(reading '([^']*)'\)/.exec(
    message,
  );
  if (missing) message = `"${missing[1]}" looked up on a field that does not exist`;
  const helper = /unknown helper (\S+)/.exec(message);
  if (helper) message = `unknown helper "${helper[1]}" (only if, unless, each, with, lookup)`;
  return new TemplateError(key, line, message, { cause: error });
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/** Parses and compiles one template; throws `TemplateError` naming the key and the line. */
function compile(source: TemplateSource, part: TemplatePart): Render {
  const HB = loadedEngine();
  let ast;
  try {
    ast = HB.parse(source.source);
  } catch (error) {
    throw templateError(source.key, error);
  }
  checkAst(ast, source.key, part);
  const options = { ...COMPILE_OPTIONS, noEscape: part !== "html" };
  try {
    // Handlebars compiles on first use; this reports an unknown helper now, with its line.
    HB.precompile(ast, options);
  } catch (error) {
    throw templateError(source.key, error);
  }
  const template = HB.compile(ast, options);
  return (fields) => {
    iterationsLeft = MAX_TEMPLATE_ITERATIONS;
    loopOutputLeft = MAX_LOOP_OUTPUT_CHARS;
    try {
      return template(fields, RUNTIME_OPTIONS);
    } catch (error) {
      throw templateError(source.key, error);
    }
  };
}

/** A rendered subject as a header can carry it: one line, no control characters, bounded. */
export function cleanSubject(rendered: string): string {
  const line = oneLine(rendered).replace(/\s+/g, " ");
  const chars = [...line];
  return chars.length <= MAX_SUBJECT_CHARS
    ? line
    : chars.slice(0, MAX_SUBJECT_CHARS - 1).join("").trimEnd() + "…";
}

const formatters = new Map<string, Intl.DateTimeFormat>();

/** Whether `timeZone` is an IANA name (or `UTC`) this runtime knows. */
export function isTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone });
    return true;
  } catch {
    return false;
  }
}

/** `2026-11-22 10:00 UTC`, or in another zone `2026-11-22 11:00 GMT+1`; `""` for no time. */
export function formatTime(d: Date | undefined, timeZone: string): string {
  if (d === undefined || Number.isNaN(d.getTime())) return "";
  if (timeZone === DEFAULT_TIME_ZONE) {
    const iso = d.toISOString();
    return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
  }
  let format = formatters.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat("en-US", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
      timeZoneName: "short",
    });
    formatters.set(timeZone, format);
  }
  const parts = Object.fromEntries(format.formatToParts(d).map((p) => [p.type, p.value]));
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute} ${parts.timeZoneName}`;
}

function reviewFields(review: AccessReview | undefined, timeZone: string) {
  return {
    author: review?.author ?? "",
    state: review?.proposedState ?? "",
    state_text: review === undefined ? "" : withEmoji(review.proposedState),
    reason: review?.reason ?? "",
    time: formatTime(review?.created, timeZone),
    roles: [...review?.roles ?? []],
  };
}

/**
 * The fields a template sees (README "Message templates"). Every field is
 * always present, empty when unknown, so that strict mode only refuses
 * names that do not exist.
 */
export function templateFields(
  kind: string,
  input: TemplateInput,
  timeZone: string,
): Record<string, unknown> {
  const { request } = input;
  const resources = (request.requestedResources ?? []).map(resourceText);
  const id = shellArgument(request.id);
  const resolutionReason = input.resolutionReason ?? "";
  return {
    kind,
    cluster: input.clusterName,
    request_id: request.id,
    user: request.user,
    roles: [...request.roles],
    roles_text: request.roles.join(", "),
    reason: request.requestReason,
    resources,
    resources_text: resources.join(", "),
    created: formatTime(request.created, timeZone),
    expires: formatTime(request.expires, timeZone),
    access_until: formatTime(request.accessExpires, timeZone),
    time_zone: timeZone,
    link: input.link ?? "",
    tsh_approve: `tsh request review --approve ${id}`,
    tsh_deny: `tsh request review --deny ${id}`,
    status: input.status,
    status_text: withEmoji(input.status) +
      (resolutionReason === "" ? "" : ` (${resolutionReason})`),
    resolution_reason: resolutionReason,
    reviews: (input.reviews ?? []).map((r) => reviewFields(r, timeZone)),
    review: reviewFields(input.review, timeZone),
    not_emailed: input.notEmailed ?? 0,
    recipient: input.recipient,
  };
}

interface CompiledKind {
  readonly subject?: Render;
  readonly text?: Render;
  readonly html?: Render;
}

/** The built-in layout around custom text, for a kind with a text template and no HTML one. */
function defaultHtml(subject: string, text: string, link: string | undefined): string {
  return htmlDocument(subject, [
    `<div style="white-space:pre-wrap">${esc(text)}</div>`,
    link === undefined || link === ""
      ? ""
      : `<p><a href="${esc(link)}" style="display:inline-block;padding:10px 18px;` +
        `background:#512fc9;color:#ffffff;text-decoration:none;border-radius:6px;` +
        `font-weight:600">View request</a></p>`,
  ]);
}

/** Compiled `[templates]`: renders the emails of the kinds that have templates. */
export class MessageTemplates {
  readonly #timeZone: string;
  readonly #subject: Render | undefined;
  readonly #kinds = new Map<string, CompiledKind>();

  /** Compiles every template; throws the first `TemplateError` (use {@link checkTemplates} for all). */
  constructor(sources: TemplateSources) {
    this.#timeZone = sources.timeZone;
    this.#subject = sources.subject && compile(sources.subject, "subject");
    for (const [kind, parts] of Object.entries(sources.kinds)) {
      if (parts === undefined) continue;
      const compiled: { -readonly [P in TemplatePart]?: Render } = {};
      for (const part of TEMPLATE_PARTS) {
        const source = parts[part];
        if (source !== undefined) compiled[part] = compile(source, part);
      }
      this.#kinds.set(kind, compiled);
    }
  }

  /** Whether emails of `kind` differ from the built-in ones. */
  has(kind: string): boolean {
    return this.#subject !== undefined || this.#kinds.has(kind);
  }

  /**
   * The email of `kind` for `input`: the parts with a template rendered, the
   * others from `builtIn`. Throws `TemplateError` when a template fails or a
   * part comes out empty or too long.
   */
  render(kind: string, input: TemplateInput, builtIn: MessageContent): MessageContent {
    const own = this.#kinds.get(kind);
    const subjectTemplate = own?.subject ?? this.#subject;
    if (subjectTemplate === undefined && own === undefined) return builtIn;
    const fields = templateFields(kind, input, this.#timeZone);
    let subject = builtIn.subject;
    if (subjectTemplate !== undefined) {
      subject = cleanSubject(subjectTemplate(fields));
      if (subject === "") throw new TemplateError(`templates.${kind}`, undefined, "empty subject");
    }
    const bodyFields = { ...fields, subject };
    const text = own?.text === undefined ? builtIn.text : bounded(kind, own.text(bodyFields));
    let html = builtIn.html;
    if (own?.html !== undefined) {
      const rendered = bounded(kind, own.html(bodyFields));
      // A fragment goes into the built-in layout; a whole document is sent as written.
      html = /<html[\s>]/i.test(rendered) ? rendered : htmlDocument(subject, [rendered]);
    } else if (own?.text !== undefined) {
      html = defaultHtml(subject, text, input.link);
    }
    return { subject, text, html };
  }
}

function bounded(kind: string, rendered: string): string {
  if (rendered.length > MAX_BODY_CHARS) {
    throw new TemplateError(
      `templates.${kind}`,
      undefined,
      `rendered to more than ${MAX_BODY_CHARS} characters`,
    );
  }
  return rendered;
}

/** A fixed moment for sample data: validation and `preview` print the same thing every run. */
const SAMPLE_NOW = Date.UTC(2026, 10, 22, 9, 30);

/**
 * Made-up request data for validation and `preview`: `full` has every
 * optional part (link, reviews, resources, times), the other none, so a
 * template is tried on both sides of each `{{#if}}`.
 */
export function sampleInputs(
  kind: string,
  recipient: string,
): { readonly full: TemplateInput; readonly bare: TemplateInput } {
  const created = new Date(SAMPLE_NOW);
  const review: AccessReview = {
    author: "bob@example.com",
    roles: ["reviewer"],
    proposedState: "APPROVED",
    reason: "Looks fine, ticket OPS-1234",
    created: new Date(SAMPLE_NOW + 15 * 60_000),
  };
  const resolved = kind === "resolution";
  const full: TemplateInput = {
    clusterName: "teleport.example.com",
    request: {
      id: "2d3c4b5a-6f70-4819-a2b3-c4d5e6f70819",
      user: "alice@example.com",
      roles: ["db-admin", "k8s-prod"],
      requestReason: "Investigating incident INC-42",
      requestedResources: [
        { clusterName: "teleport.example.com", kind: "node", name: "db-1", subResourceName: "" },
      ],
      created,
      expires: new Date(SAMPLE_NOW + 3_600_000),
      accessExpires: new Date(SAMPLE_NOW + 8 * 3_600_000),
    },
    reviews: kind === "review" || resolved ? [review] : [],
    link: "https://teleport.example.com/web/requests/2d3c4b5a-6f70-4819-a2b3-c4d5e6f70819",
    status: resolved ? "APPROVED" : "PENDING",
    resolutionReason: resolved ? "Approved by bob@example.com" : "",
    review: kind === "review" ? review : undefined,
    notEmailed: 0,
    recipient,
  };
  const bare: TemplateInput = {
    clusterName: "teleport.example.com",
    request: { id: full.request.id, user: "", roles: [], requestReason: "" },
    status: resolved ? "EXPIRED" : "PENDING",
    recipient,
  };
  return { full, bare };
}

/** Throwaway content for checks that only care whether a template renders. */
const NO_CONTENT: MessageContent = { subject: "Subject", text: "", html: "" };

/**
 * Every problem with `sources`, each naming its dotted key and, when known,
 * the line: templates that do not compile, and templates that fail on the
 * sample data of their kind (an unknown field, a lookup on a value that
 * has none). Empty when all is well.
 */
export function checkTemplates(sources: TemplateSources): string[] {
  const problems: string[] = [];
  const subject = sources.subject;
  const kinds = new Set<string>(TEMPLATE_KINDS);
  for (const kind of Object.keys(sources.kinds)) kinds.add(kind);
  for (const kind of kinds) {
    const parts = sources.kinds[kind] ?? {};
    const single: Partial<Record<TemplatePart, TemplateSource>> = {
      ...(subject && parts.subject === undefined ? { subject } : {}),
      ...parts,
    };
    if (Object.keys(single).length === 0) continue;
    // One part at a time, so that each problem is reported.
    for (const part of TEMPLATE_PARTS) {
      const source = single[part];
      if (source === undefined) continue;
      try {
        compile(source, part);
      } catch (error) {
        if (!(error instanceof TemplateError)) throw error;
        pushOnce(problems, error.message);
        continue;
      }
      const templates = new MessageTemplates({
        timeZone: sources.timeZone,
        kinds: { [kind]: { [part]: source } },
      });
      const { full, bare } = sampleInputs(kind, "reviewer@example.com");
      for (const input of [full, bare]) {
        try {
          templates.render(kind, input, NO_CONTENT);
        } catch (error) {
          if (!(error instanceof TemplateError)) throw error;
          pushOnce(problems, `${error.message} (with sample data)`);
          break;
        }
      }
    }
  }
  return problems;
}

function pushOnce(list: string[], item: string): void {
  if (!list.includes(item)) list.push(item);
}
