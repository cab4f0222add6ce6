/**
 * `teleport-email preview`: validates the config as `start` does, then
 * prints the emails of each kind for a made-up request, rendered through
 * `[templates]` exactly as the notifier renders them (the built-in emails
 * without it), so that an operator sees the result before deploying.
 */
import type { LoadedConfig } from "../config/types.ts";
import {
  accessExpiryMessage,
  escalationMessage,
  type MessageContent,
  newRequestMessage,
  reminderMessage,
  requesterReceivedMessage,
  resolutionMessage,
  reviewMessage,
} from "../notify/message.ts";
import {
  MessageTemplates,
  sampleInputs,
  TEMPLATE_KINDS,
  type TemplateInput,
  type TemplateKind,
} from "../notify/template.ts";
import { EXIT_FAILURE } from "./exit_codes.ts";
import { loadConfigReported } from "./load_config_reported.ts";

export interface PreviewDeps {
  /** Writes text to stdout. */
  print(text: string): void;
  /** Writes text to stderr. */
  printError(text: string): void;
  /** Loads and validates the config; default `loadConfig`. */
  loadConfig?(path: string): LoadedConfig | Promise<LoadedConfig>;
}

/** The built-in email of `kind` for `input`: what the notifier sends without templates. */
function builtInMessage(kind: TemplateKind, input: TemplateInput): MessageContent {
  const base = { clusterName: input.clusterName, request: input.request, link: input.link };
  switch (kind) {
    case "new_request":
      return newRequestMessage({ ...base, notEmailed: input.notEmailed });
    case "requester":
      return requesterReceivedMessage(base);
    case "reminder":
      return reminderMessage(base);
    case "review":
      return reviewMessage({
        clusterName: input.clusterName,
        requestId: input.request.id,
        review: input.review!,
        link: input.link,
      });
    case "escalation":
      return escalationMessage({
        ...base,
        waitedMs: 2 * 3_600_000,
        notified: ["security@example.com", "bob@example.com"],
      });
    case "access_expiry": {
      // The warning an hour before the sample's granted access ends.
      const accessExpires = input.request.accessExpires ?? new Date(Date.UTC(2026, 10, 22, 17));
      return accessExpiryMessage({
        ...base,
        accessExpires,
        now: accessExpires.getTime() - 3_600_000,
      });
    }
    case "resolution":
      return resolutionMessage({
        ...base,
        resolution: {
          tag: input.status as "APPROVED" | "DENIED" | "EXPIRED" | "PROMOTED",
          reason: input.resolutionReason ?? "",
        },
      });
  }
}

export async function previewCommand(
  command: { readonly configPath: string; readonly emailKind?: TemplateKind },
  deps: PreviewDeps,
): Promise<number> {
  const loaded = await loadConfigReported(command.configPath, deps.printError, deps.loadConfig);
  if (loaded === undefined) return EXIT_FAILURE;
  const { config, warnings } = loaded;
  for (const warning of warnings) deps.printError(`teleport-email: warning: ${warning}\n`);
  const templates = config.templates ? new MessageTemplates(config.templates) : undefined;
  const reviewer = config.roleToRecipients["*"]?.[0] ?? "reviewer@example.com";
  const kinds = command.emailKind === undefined ? TEMPLATE_KINDS : [command.emailKind];
  for (const kind of kinds) {
    const { full } = sampleInputs(kind, reviewer);
    const input = kind === "requester" ? { ...full, recipient: full.request.user } : full;
    const builtIn = builtInMessage(kind, input);
    let content: MessageContent;
    try {
      content = templates?.render(kind, input, builtIn) ?? builtIn;
    } catch (error) {
      // Validation rendered the same data, so this is a bug rather than a bad template.
      deps.printError(`teleport-email: ${(error as Error).message}\n`);
      return EXIT_FAILURE;
    }
    const source = templates?.has(kind) ? "templates" : "built-in";
    deps.print(
      `==> ${kind} (${source}) to ${input.recipient}\n` +
        `Subject: ${content.subject}\n\n${content.text}\n\n--- HTML ---\n${content.html}\n`,
    );
  }
  return 0;
}
