/**
 * What the emails say (SPEC §6): subject, plain-text body and HTML
 * alternative for a new request, a review and a resolution. The plain-text
 * lines are the Go plugin's, character for character, so filters and
 * scripts written against it keep working; our additions are extra lines.
 * Pure: no headers, no sending (that is the mailer's job).
 */
import type { AccessReview, ResourceId } from "../teleport/types.ts";
import type { ResolutionTag } from "./plugin_data.ts";

/** One email's content. */
export interface MessageContent {
  /** Never contains CR, LF or other control characters. */
  readonly subject: string;
  readonly text: string;
  /** A complete HTML document; every value from the request is escaped. */
  readonly html: string;
}

/**
 * The facts an email shows about a request. An `AccessRequest` fits; so does
 * `{ id, ...decodePluginData(stored) }` when only plugin data is left (a
 * deleted request).
 */
export interface RequestFacts {
  readonly id: string;
  readonly user: string;
  readonly roles: readonly string[];
  readonly requestReason: string;
  readonly requestedResources?: readonly ResourceId[] | undefined;
  readonly created?: Date | undefined;
  /** When the pending request expires. */
  readonly expires?: Date | undefined;
  /** When granted access ends (`Spec.Expires`). */
  readonly accessExpires?: Date | undefined;
  /** Absolute time after which granted access cannot extend. */
  readonly maxDuration?: Date | undefined;
}

export interface NewRequestContext {
  readonly clusterName: string;
  readonly request: RequestFacts;
  /**
   * The request's page in the web UI ({@link requestWebLink}). Without it a
   * new-request email carries the `tsh request review` commands instead.
   */
  readonly link?: string | undefined;
  /** Recipients beyond `delivery.max_recipients` who were not emailed (said in the email). */
  readonly notEmailed?: number | undefined;
}

export interface ResolutionContext extends NewRequestContext {
  readonly resolution: { readonly tag: ResolutionTag; readonly reason: string };
}

export interface ReviewContext {
  readonly clusterName: string;
  readonly requestId: string;
  readonly review: AccessReview;
  readonly link?: string | undefined;
}

const NEW_REQUEST_HEADLINE = "You have a new Role Request";
const RESOLVED_HEADLINE = "Role Request has been resolved";
const REQUESTER_HEADLINE = "Your Role Request has been received";
const REMINDER_HEADLINE = "Reminder: this Role Request is still waiting for a review";

const STATUS_EMOJI: Readonly<Record<string, string>> = {
  PENDING: "⏳",
  APPROVED: "✅",
  DENIED: "❌",
  EXPIRED: "⌛",
  PROMOTED: "🎉",
};

/** `<cluster> Role Request <id>`, the subject of every email of a thread. */
export function subjectFor(clusterName: string, requestId: string): string {
  return `${oneLine(clusterName)} Role Request ${oneLine(requestId)}`;
}

/**
 * `https://<proxy public address>/web/requests/<id>`, with `:443` dropped as
 * the Go plugin does; `undefined` when there is no usable address.
 */
export function requestWebLink(proxyPublicAddr: string, requestId: string): string | undefined {
  const addr = proxyPublicAddr.trim();
  if (addr === "") return undefined;
  let url: URL;
  try {
    url = new URL(/^https?:\/\//i.test(addr) ? addr : `https://${addr}`);
  } catch {
    return undefined;
  }
  // The URL parser already drops a default port (:443 for https).
  return `${url.protocol}//${url.host}/web/requests/${encodeURIComponent(requestId)}`;
}

/** The email that opens a thread: a new, pending request. */
export function newRequestMessage(ctx: NewRequestContext): MessageContent {
  return requestMessage(ctx, NEW_REQUEST_HEADLINE, "PENDING", "");
}

/** Ours: the email that opens the requester's own thread (`delivery.notify_requester`). */
export function requesterReceivedMessage(ctx: NewRequestContext): MessageContent {
  // The requester cannot review their own request: no tsh review lines.
  return requestMessage(ctx, REQUESTER_HEADLINE, "PENDING", "", false);
}

/** Ours: a reply reminding reviewers that the request still waits for a review. */
export function reminderMessage(ctx: NewRequestContext): MessageContent {
  return requestMessage(ctx, REMINDER_HEADLINE, "PENDING", "");
}

/** The last reply of a thread: how the request ended. */
export function resolutionMessage(ctx: ResolutionContext): MessageContent {
  return requestMessage(ctx, RESOLVED_HEADLINE, ctx.resolution.tag, ctx.resolution.reason);
}

/** A reply announcing one review. */
export function reviewMessage(ctx: ReviewContext): MessageContent {
  const { review } = ctx;
  const subject = subjectFor(ctx.clusterName, ctx.requestId);
  const at = review.created === undefined ? "" : ` at ${formatRfc822(review.created)}`;
  const resolution = withEmoji(review.proposedState);

  // The Go plugin's template: the line break after "Resolution" is there
  // even when no reason follows.
  const text = `${review.author} reviewed the request${at}.\n` +
    `Resolution: ${resolution}.\n` +
    (review.reason === "" ? "" : `Reason: ${review.reason}.`);

  const body = [
    `<p><strong>${esc(review.author)}</strong> reviewed the request${esc(at)}.</p>`,
    `<p>Resolution: <strong>${esc(resolution)}</strong>.</p>`,
    review.reason === ""
      ? ""
      : `<p>Reason: <span style="${PRE_WRAP}">${esc(review.reason)}</span>.</p>`,
    ctx.link === undefined ? "" : `<p>${linkButton(ctx.link, "View request")}</p>`,
  ];
  return { subject, text, html: htmlDocument(subject, body) };
}

function requestMessage(
  ctx: NewRequestContext,
  headline: string,
  status: string,
  reason: string,
  /** Whether a pending request shows how to review it (`tsh` lines or the button). */
  reviewable = true,
): MessageContent {
  const { request } = ctx;
  const subject = subjectFor(ctx.clusterName, request.id);
  const pending = status === "PENDING" && reviewable;
  const statusText = withEmoji(status) + (reason === "" ? "" : ` (${reason})`);

  const fields: [string, string][] = [["ID", request.id], ["Cluster", ctx.clusterName]];
  if (request.user !== "") fields.push(["User", request.user]);
  if (request.roles.length > 0) fields.push(["Role(s)", request.roles.join(",")]);
  if (request.requestReason !== "") fields.push(["Reason", request.requestReason]);
  // Ours, not the Go plugin's: placed before the call to action.
  const resources = request.requestedResources ?? [];
  if (resources.length > 0) fields.push(["Resource(s)", resources.map(resourceText).join(", ")]);
  if (request.expires !== undefined) {
    fields.push(["Request expires", formatTime(request.expires)]);
  }
  if (request.accessExpires !== undefined) {
    fields.push(["Access until", formatTime(request.accessExpires)]);
  }
  if (request.maxDuration !== undefined) {
    fields.push(["Max duration", maxDurationText(request.maxDuration, request.created)]);
  }
  if (ctx.notEmailed !== undefined && ctx.notEmailed > 0) {
    fields.push([
      "Note",
      `${ctx.notEmailed} more reviewer(s) of this request were not emailed (delivery.max_recipients)`,
    ]);
  }
  const id = shellArgument(request.id);
  const commands: [string, string][] = [
    ["Approve", `tsh request review --approve ${id}`],
    ["Deny", `tsh request review --deny ${id}`],
  ];

  const textLines = fields.map(([k, v]) => `${k}: ${v}\n`);
  if (ctx.link !== undefined) textLines.push(`Link: ${ctx.link}\n`);
  else if (pending) textLines.push(...commands.map(([k, v]) => `${k}: ${v}\n`));
  const text = `${headline}:\n\n${textLines.join("")}\nStatus: ${statusText}`;

  const rows = fields.map(([k, v]) => row(k, `<span style="${PRE_WRAP}">${esc(v)}</span>`));
  if (ctx.link === undefined && pending) {
    rows.push(...commands.map(([k, v]) => row(k, `<code>${esc(v)}</code>`)));
  }
  const body = [
    `<p style="font-size:16px"><strong>${esc(headline)}</strong></p>`,
    `<table role="presentation" cellpadding="4" cellspacing="0" style="border-collapse:collapse">`,
    ...rows,
    `</table>`,
    `<p>Status: <strong>${esc(statusText)}</strong></p>`,
    ctx.link === undefined
      ? ""
      : `<p>${linkButton(ctx.link, pending ? "Review request" : "View request")}</p>`,
  ];
  return { subject, text, html: htmlDocument(subject, body) };
}

/** A request id as Teleport makes them (a UUID), safe to paste into a shell as it is. */
const PLAIN_ID = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * `id` as one argument for a POSIX shell, for the `tsh request review` lines
 * a reviewer pastes: a plain id as it is (the Go plugin's lines), anything
 * else in single quotes, after `--` when it would read as a flag. Control
 * characters become U+FFFD: no quoting shows a line break safely in a line.
 */
export function shellArgument(id: string): string {
  if (PLAIN_ID.test(id)) return id;
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  const visible = id.replace(/[\u0000-\u001f\u007f]/g, "\uFFFD");
  const quoted = PLAIN_ID.test(visible.replace(/^-+/, ""))
    ? visible
    : `'${visible.replaceAll("'", `'\\''`)}'`;
  return visible.startsWith("-") ? `-- ${quoted}` : quoted;
}

const PRE_WRAP = "white-space:pre-wrap";

function row(label: string, valueHtml: string): string {
  return `<tr><th align="left" valign="top" style="padding-right:12px">${
    esc(label)
  }</th><td>${valueHtml}</td></tr>`;
}

function linkButton(href: string, label: string): string {
  return `<a href="${esc(href)}" style="display:inline-block;padding:10px 18px;` +
    `background:#512fc9;color:#ffffff;text-decoration:none;border-radius:6px;` +
    `font-weight:600">${esc(label)}</a>`;
}

export function htmlDocument(title: string, body: readonly string[]): string {
  return [
    "<!DOCTYPE html>",
    `<html><head><meta charset="utf-8"><title>${esc(title)}</title></head>`,
    `<body style="font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:14px;color:#1f2328">`,
    ...body.filter((part) => part !== ""),
    "</body></html>",
    "",
  ].join("\n");
}

export function withEmoji(state: string): string {
  const emoji = STATUS_EMOJI[state];
  return emoji === undefined ? state : `${emoji} ${state}`;
}

/** Teleport's own text form of a resource id (`types.ResourceIDToString`). */
export function resourceText(r: ResourceId): string {
  const base = `/${r.clusterName}/${r.kind}/${r.name}`;
  return r.subResourceName === "" ? base : `${base}/${r.subResourceName}`;
}

function maxDurationText(until: Date, created: Date | undefined): string {
  const when = `until ${formatTime(until)}`;
  if (created === undefined || until.getTime() <= created.getTime()) return when;
  return `${formatDuration(until.getTime() - created.getTime())} (${when})`;
}

/** `2026-11-22 10:00 UTC`: for our own lines. */
function formatTime(d: Date): string {
  const iso = d.toISOString();
  return `${iso.slice(0, 10)} ${iso.slice(11, 16)} UTC`;
}

/** `1d2h30m`, to the minute. */
function formatDuration(ms: number): string {
  let minutes = Math.round(ms / 60_000);
  const days = Math.floor(minutes / 1440);
  minutes -= days * 1440;
  const hours = Math.floor(minutes / 60);
  minutes -= hours * 60;
  const parts = [[days, "d"], [hours, "h"], [minutes, "m"]] as const;
  const text = parts.filter(([n]) => n > 0).map(([n, unit]) => `${n}${unit}`).join("");
  return text === "" ? "0m" : text;
}

const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Go's `time.RFC822` layout (`02 Jan 06 15:04 MST`) in UTC, as the Go plugin prints review times. */
function formatRfc822(d: Date): string {
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${pad(d.getUTCDate())} ${MONTHS[d.getUTCMonth()]} ${pad(d.getUTCFullYear() % 100)} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())} UTC`;
}

/**
 * Collapses control characters (CR, LF, C1 such as NEL and CSI, …) into a
 * space: header values and terminal lines stay one line.
 */
export function oneLine(s: string): string {
  // deno-lint-ignore no-control-regex
  return s.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, " ").trim();
}

const HTML_ESCAPES: Readonly<Record<string, string>> = {
  "&": "&amp;",
  "<": "&lt;",
  ">": "&gt;",
  '"': "&quot;",
  "'": "&#39;",
};

export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (ch) => HTML_ESCAPES[ch] ?? ch);
}

// ---------------------------------------------------------------------------
// Ours: escalation (`[escalation]`) and access ending soon (`[access_expiry]`).

const ESCALATION_HEADLINE = "Escalation: this Role Request is still waiting for a review";
const ACCESS_EXPIRY_HEADLINE = "Your access from this Role Request ends soon";

export interface EscalationContext extends NewRequestContext {
  /** How long the request has waited so far (ms). */
  readonly waitedMs: number;
  /** Who was emailed about the request before this escalation (reviewers, earlier levels). */
  readonly notified: readonly string[];
}

/** The email that opens an escalation recipient's own thread. */
export function escalationMessage(ctx: EscalationContext): MessageContent {
  const notified = ctx.notified.length > 0 ? ctx.notified.join(", ") : "nobody yet";
  return withTrailer(requestMessage(ctx, ESCALATION_HEADLINE, "PENDING", ""), [
    ["Waiting for a review", formatDuration(ctx.waitedMs)],
    ["Already notified", notified],
  ]);
}

export interface AccessExpiryContext extends NewRequestContext {
  /** When granted access ends. */
  readonly accessExpires: Date;
  /** Now (ms since the epoch): how long is left is said in the email. */
  readonly now: number;
}

/** The warning to the requester that granted access ends soon, with how to ask again. */
export function accessExpiryMessage(ctx: AccessExpiryContext): MessageContent {
  const { request } = ctx;
  const left = formatDuration(Math.max(0, ctx.accessExpires.getTime() - ctx.now));
  const args = [
    ...(request.roles.length > 0 ? ["--roles", request.roles.join(",")] : []),
    ...(request.requestedResources ?? []).flatMap((r) => ["--resource", resourceText(r)]),
  ];
  const command = ["tsh", "request", "create", ...args.map(shellWord)].join(" ");
  return withTrailer(requestMessage(ctx, ACCESS_EXPIRY_HEADLINE, "APPROVED", "", false), [
    ["Access ends in", `${left} (${formatTime(ctx.accessExpires)})`],
    ["To request it again", command],
  ]);
}

/** `content` with `lines` added after the status (text) and before the end (HTML). */
function withTrailer(content: MessageContent, lines: readonly [string, string][]): MessageContent {
  const text = `${content.text}\n\n${lines.map(([k, v]) => `${k}: ${v}`).join("\n")}`;
  const html = lines.map(([k, v]) => `<p>${esc(k)}: <strong>${esc(v)}</strong></p>`).join("\n");
  return {
    subject: content.subject,
    text,
    html: content.html.replace(/<\/body><\/html>\n$/, `${html}\n</body></html>\n`),
  };
}

/** One word for a POSIX shell: as it is when plain, else in single quotes (controls replaced). */
function shellWord(word: string): string {
  if (/^[A-Za-z0-9@%+=:,./_-]+$/.test(word)) return word;
  // deno-lint-ignore no-control-regex -- matching control characters is the point
  const visible = word.replace(/[\u0000-\u001f\u007f]/g, "\uFFFD");
  return `'${visible.replaceAll("'", `'\\''`)}'`;
}
