{{/*
Names, labels and the facts several templates share: which mailer is in use, which Secret
holds its credential and where it is mounted, where the identity comes from. The paths
inside the container are the ones Teleport's chart uses, so configs and docs carry over.
*/}}

{{- define "teleport-email.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-qualified name; the release name alone when it already contains the chart name. */}}
{{- define "teleport-email.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "teleport-email.selectorLabels" -}}
app.kubernetes.io/name: {{ include "teleport-email.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "teleport-email.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "teleport-email.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Paths inside the container (the same as in Teleport's chart). */}}
{{- define "teleport-email.configPath" -}}/etc/teleport-email.toml{{- end -}}
{{- define "teleport-email.dataDir" -}}/var/lib/teleport/plugins/email{{- end -}}
{{- define "teleport-email.identityDir" -}}{{ include "teleport-email.dataDir" . }}/teleport-identity{{- end -}}

{{/* Teleport address: teleport.address, else tbot's proxy address, else tbot's auth address. */}}
{{- define "teleport-email.address" -}}
{{- coalesce .Values.teleport.address .Values.tbot.teleportProxyAddress .Values.tbot.teleportAuthAddress | default "" -}}
{{- end -}}

{{/* The Secret holding the identity: teleport.identitySecretName, else tbot's output Secret. */}}
{{- define "teleport-email.identitySecretName" -}}
{{- if .Values.teleport.identitySecretName -}}
{{- .Values.teleport.identitySecretName -}}
{{- else if .Values.tbot.enabled -}}
{{- printf "%s-tbot-out" .Release.Name -}}
{{- end -}}
{{- end -}}

{{/* The key of the identity file in that Secret: tbot always writes "identity". */}}
{{- define "teleport-email.identitySecretPath" -}}
{{- if .Values.tbot.enabled -}}identity{{- else -}}{{ .Values.teleport.identitySecretPath }}{{- end -}}
{{- end -}}

{{/* "mailgun", "smtp" or "" (none). Mailgun wins when both are enabled, as in Teleport's chart. */}}
{{- define "teleport-email.mailer" -}}
{{- if .Values.mailgun.enabled -}}mailgun{{- else if .Values.smtp.enabled -}}smtp{{- end -}}
{{- end -}}

{{/* "true" when the mailer needs a secret file: Mailgun always, SMTP only with a username. */}}
{{- define "teleport-email.usesMailerSecret" -}}
{{- $mailer := include "teleport-email.mailer" . -}}
{{- if or (eq $mailer "mailgun") (and (eq $mailer "smtp") .Values.smtp.username) -}}true{{- end -}}
{{- end -}}

{{/* The user-supplied Secret name for the mailer credential, if any. */}}
{{- define "teleport-email.mailerSecretFrom" -}}
{{- if eq (include "teleport-email.mailer" .) "mailgun" -}}{{ .Values.mailgun.privateKeyFromSecret }}
{{- else -}}{{ .Values.smtp.passwordFromSecret }}{{- end -}}
{{- end -}}

{{/* "true" when this chart creates the Secret for the mailer credential. */}}
{{- define "teleport-email.createsSecret" -}}
{{- if and (include "teleport-email.usesMailerSecret" .) (not (include "teleport-email.mailerSecretFrom" .)) -}}true{{- end -}}
{{- end -}}

{{- define "teleport-email.mailerSecretName" -}}
{{- coalesce (include "teleport-email.mailerSecretFrom" .) (printf "%s-secret" (include "teleport-email.fullname" .)) -}}
{{- end -}}

{{/* The key of the credential in its Secret. */}}
{{- define "teleport-email.mailerSecretKey" -}}
{{- if eq (include "teleport-email.mailer" .) "mailgun" -}}{{ .Values.mailgun.privateKeySecretPath }}
{{- else -}}{{ .Values.smtp.passwordSecretPath }}{{- end -}}
{{- end -}}

{{/* Where the credential file is mounted, and what the TOML's *_file key points at. */}}
{{- define "teleport-email.mailerSecretPath" -}}
{{- if eq (include "teleport-email.mailer" .) "mailgun" -}}{{ include "teleport-email.dataDir" . }}/mailgun_private_key
{{- else -}}{{ include "teleport-email.dataDir" . }}/smtp_password{{- end -}}
{{- end -}}

{{/*
The directory of log.output when it is an absolute file path (stdout, stderr and their
aliases never start with "/"), so that a writable emptyDir can be mounted there; "" otherwise,
and also when volumeMounts already mount that directory.
*/}}
{{- define "teleport-email.logDir" -}}
{{- $out := toString .Values.log.output -}}
{{- if hasPrefix "/" $out -}}
{{- $dir := dir $out -}}
{{- $taken := false -}}
{{- range .Values.volumeMounts -}}
{{- if eq (toString .mountPath) $dir -}}{{- $taken = true -}}{{- end -}}
{{- end -}}
{{- if and (ne $dir "/") (not $taken) -}}{{ $dir }}{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Checks what would otherwise only fail once the pod runs, and reports every problem at once.
*/}}
{{- define "teleport-email.validate" -}}
{{- $problems := list -}}
{{- $mailer := include "teleport-email.mailer" . -}}
{{- if not (include "teleport-email.address" .) -}}
{{- $problems = append $problems "teleport.address is required (or tbot.teleportProxyAddress / tbot.teleportAuthAddress with tbot.enabled)" -}}
{{- end -}}
{{- if not (include "teleport-email.identitySecretName" .) -}}
{{- $problems = append $problems "teleport.identitySecretName is required (or set tbot.enabled to read the identity from the Secret <release>-tbot-out)" -}}
{{- end -}}
{{- if not $mailer -}}
{{- $problems = append $problems "no mailer: set smtp.enabled or mailgun.enabled to true" -}}
{{- end -}}
{{- if eq $mailer "mailgun" -}}
{{- if not .Values.mailgun.domain -}}{{- $problems = append $problems "mailgun.domain is required" -}}{{- end -}}
{{- if not (or .Values.mailgun.privateKey .Values.mailgun.privateKeyFromSecret) -}}
{{- $problems = append $problems "mailgun.privateKey or mailgun.privateKeyFromSecret is required" -}}
{{- end -}}
{{- end -}}
{{- if eq $mailer "smtp" -}}
{{- if not .Values.smtp.host -}}{{- $problems = append $problems "smtp.host is required" -}}{{- end -}}
{{- if and .Values.smtp.username (not (or .Values.smtp.password .Values.smtp.passwordFromSecret)) -}}
{{- $problems = append $problems "smtp.password or smtp.passwordFromSecret is required when smtp.username is set" -}}
{{- end -}}
{{- end -}}
{{- if not .Values.delivery.sender -}}
{{- $problems = append $problems "delivery.sender is required" -}}
{{- end -}}
{{- if .Values.roleToRecipients -}}
{{- if not (get .Values.roleToRecipients "*") -}}
{{- $problems = append $problems "roleToRecipients must map \"*\" to at least one address" -}}
{{- end -}}
{{- else if not .Values.delivery.recipients -}}
{{- $problems = append $problems "roleToRecipients (with a \"*\" entry) is required" -}}
{{- end -}}
{{- if and .Values.serviceMonitor.enabled (not .Values.status.enabled) -}}
{{- $problems = append $problems "serviceMonitor.enabled needs status.enabled" -}}
{{- end -}}
{{- if $problems -}}
{{- fail (printf "\n\nInvalid values for teleport-plugin-email:\n  - %s\n" (join "\n  - " $problems)) -}}
{{- end -}}
{{- end -}}
