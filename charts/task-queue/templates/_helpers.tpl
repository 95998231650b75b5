{{/*
Chart name, shortened to fit a label value.
*/}}
{{- define "task-queue.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Prefix of every object name. The release name alone when it already contains
the chart name, so `helm install task-queue` gives `task-queue-controller`
rather than `task-queue-task-queue-controller`. Kept short enough that the
longest suffix ("-worker-<40 chars>") still fits a 63-character label.
*/}}
{{- define "task-queue.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "task-queue.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "task-queue.labels" -}}
helm.sh/chart: {{ include "task-queue.chart" . }}
{{ include "task-queue.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: task-queue
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels: name and instance only. Selectors are immutable, so nothing
that changes between releases (version, chart) may appear in them.
*/}}
{{- define "task-queue.selectorLabels" -}}
app.kubernetes.io/name: {{ include "task-queue.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels of one component's objects. Call with (dict "ctx" $ "component" "controller").
*/}}
{{- define "task-queue.componentLabels" -}}
{{ include "task-queue.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector of one component's pods: the selector labels plus the component, which
never changes for a given Deployment. Without it the controller's selector
would also match every worker pod (and the PodDisruptionBudget would count
them).
*/}}
{{- define "task-queue.componentSelectorLabels" -}}
{{ include "task-queue.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "task-queue.controller.fullname" -}}
{{- printf "%s-controller" (include "task-queue.fullname" .) }}
{{- end }}

{{- define "task-queue.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create }}
{{- default (include "task-queue.controller.fullname" .) .Values.controller.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.controller.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "task-queue.worker.serviceAccountName" -}}
{{- if .Values.workerServiceAccount.create }}
{{- default (printf "%s-worker" (include "task-queue.fullname" .)) .Values.workerServiceAccount.name }}
{{- else }}
{{- default "default" .Values.workerServiceAccount.name }}
{{- end }}
{{- end }}

{{/*
Name of one worker's Deployment (also its WorkerPool, ScaledObject and Service).
Call with (dict "ctx" $ "name" $workerName).
*/}}
{{- define "task-queue.worker.fullname" -}}
{{- printf "%s-worker-%s" (include "task-queue.fullname" .ctx) .name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Namespace of the leader election Lease.
*/}}
{{- define "task-queue.leaderElectionNamespace" -}}
{{- default .Release.Namespace .Values.controller.leaderElection.namespace }}
{{- end }}

{{/*
Image reference. Call with (dict "image" $override "defaults" $.Values.image "ctx" $);
empty fields of the override fall back to the defaults, and the tag to appVersion.
A digest wins over a tag so that a pinned image stays pinned.
*/}}
{{- define "task-queue.image" -}}
{{- $repository := default .defaults.repository .image.repository }}
{{- $digest := default .defaults.digest .image.digest }}
{{- $tag := default (default .ctx.Chart.AppVersion .defaults.tag) .image.tag }}
{{- if $digest }}
{{- printf "%s@%s" $repository $digest }}
{{- else }}
{{- printf "%s:%s" $repository $tag }}
{{- end }}
{{- end }}

{{/*
Subject token of a task kind: TranscriptionTask -> transcription.
*/}}
{{- define "task-queue.kindToken" -}}
{{- if eq . "TranscriptionTask" }}transcription{{ else if eq . "DiarizationTask" }}diarization{{ else }}{{ fail (printf "unknown taskKind %q" .) }}{{ end }}
{{- end }}

{{/*
Enabled workers, each merged over .Values.workerDefaults, as a JSON map
name -> settings (`include` only returns strings, so maps travel as JSON).
*/}}
{{- define "task-queue.enabledWorkers" -}}
{{- $enabled := dict }}
{{- range $name, $worker := .Values.workers }}
{{- $merged := include "task-queue.deepMerge" (dict "base" $.Values.workerDefaults "override" $worker) | fromJson }}
{{- if $merged.enabled }}
{{- $_ := set $enabled $name $merged }}
{{- end }}
{{- end }}
{{- toJson $enabled }}
{{- end }}

{{/*
Deep merge of two maps, as JSON: maps merge key by key, anything else in
"override" replaces the base. Sprig's merge functions are not used because
they treat false, 0 and "" as unset, so `sidecar.enabled: false` could not
turn off a default of true.
*/}}
{{- define "task-queue.deepMerge" -}}
{{- $out := deepCopy (default dict .base) }}
{{- range $key, $value := (default dict .override) }}
{{- $current := get $out $key }}
{{- if and (kindIs "map" $value) (kindIs "map" $current) }}
{{- $_ := set $out $key (include "task-queue.deepMerge" (dict "base" $current "override" $value) | fromJson) }}
{{- else }}
{{- $_ := set $out $key $value }}
{{- end }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/*
Paths where Secrets are mounted. Fixed so that the env vars below can name them.
*/}}
{{- define "task-queue.natsTlsDir" -}}/etc/task-queue/nats-tls{{- end }}
{{- define "task-queue.natsCredsDir" -}}/etc/task-queue/nats-creds{{- end }}
{{- define "task-queue.redisTlsDir" -}}/etc/task-queue/redis-tls{{- end }}

{{/*
Cross-field rules that a JSON schema cannot state clearly. Each names the values to fix.
*/}}
{{- define "task-queue.validate" -}}
{{- $auth := .Values.nats.auth }}
{{- if and (or $auth.userKey $auth.passwordKey $auth.tokenKey $auth.credsKey) (not $auth.existingSecret) }}
{{- fail "nats.auth.existingSecret is required when nats.auth.userKey, passwordKey, tokenKey or credsKey is set" }}
{{- end }}
{{- if and $auth.existingSecret (not (or $auth.userKey $auth.passwordKey $auth.tokenKey $auth.credsKey)) }}
{{- fail "nats.auth.existingSecret is set but none of nats.auth.userKey, passwordKey, tokenKey or credsKey says which key to read" }}
{{- end }}
{{- $userPassword := or $auth.user $auth.userKey $auth.passwordKey }}
{{- if gt (len (compact (list $userPassword $auth.tokenKey $auth.credsKey))) 1 }}
{{- fail "nats.auth: choose one way to authenticate to NATS: a user and password (user or userKey, with passwordKey), tokenKey, or credsKey" }}
{{- end }}
{{- if and $userPassword (not (and (or $auth.user $auth.userKey) $auth.passwordKey)) }}
{{- fail "nats.auth: a user (nats.auth.user or nats.auth.userKey) and nats.auth.passwordKey must be set together" }}
{{- end }}
{{- if and .Values.nats.tls.enabled (not .Values.nats.tls.existingSecret) }}
{{- fail "nats.tls.existingSecret is required when nats.tls.enabled is true" }}
{{- end }}
{{- if ne (empty .Values.nats.tls.certKey) (empty .Values.nats.tls.keyKey) }}
{{- fail "nats.tls.certKey and nats.tls.keyKey must be set together (mutual TLS needs both)" }}
{{- end }}
{{- if and .Values.redis.tls.existingSecret (not .Values.redis.tls.enabled) }}
{{- fail "redis.tls.existingSecret is set but redis.tls.enabled is false" }}
{{- end }}
{{- if and (gt (int .Values.controller.replicaCount) 1) (not .Values.controller.leaderElection.enabled) }}
{{- fail "controller.replicaCount > 1 requires controller.leaderElection.enabled: replicas would reconcile the same objects at once" }}
{{- end }}
{{- if eq .Values.autoscaling.mode "keda" }}
{{- if not .Values.autoscaling.keda.natsServerMonitoringEndpoint }}
{{- fail "autoscaling.keda.natsServerMonitoringEndpoint is required when autoscaling.mode is keda (e.g. nats.nats.svc:8222)" }}
{{- end }}
{{- end }}
{{- $watch := .Values.controller.watchNamespace }}
{{- $workers := include "task-queue.enabledWorkers" . | fromJson }}
{{- if and $watch (ne $watch .Release.Namespace) (eq .Values.autoscaling.mode "workerpool") $workers }}
{{- fail (printf "controller.watchNamespace is %q but the chart's WorkerPools go to the release namespace %q, which the controller would not watch: install into %q, or use autoscaling.mode=keda" $watch .Release.Namespace $watch) }}
{{- end }}
{{- range $name, $w := $workers }}
{{- if ge (int $w.shutdownGraceSeconds) (int $w.terminationGracePeriodSeconds) }}
{{- fail (printf "workers.%s.shutdownGraceSeconds (%d) must be lower than workers.%s.terminationGracePeriodSeconds (%d), or the pod is killed before the task is handed back" $name (int $w.shutdownGraceSeconds) $name (int $w.terminationGracePeriodSeconds)) }}
{{- end }}
{{- if gt (int $w.scaling.minReplicas) (int $w.scaling.maxReplicas) }}
{{- fail (printf "workers.%s.scaling.minReplicas must not exceed maxReplicas" $name) }}
{{- end }}
{{- if and (eq $w.engine.type "exec") (not $w.engine.exec.command) }}
{{- fail (printf "workers.%s.engine.exec.command is required when workers.%s.engine.type is exec" $name $name) }}
{{- end }}
{{- if and (eq $w.engine.type "openai") (not $w.engine.openai.url) }}
{{- fail (printf "workers.%s.engine.openai.url is required when workers.%s.engine.type is openai" $name $name) }}
{{- end }}
{{- if and (eq $w.engine.type "openai") (not $w.sidecar.enabled) (regexMatch "^https?://(localhost|127\\.0\\.0\\.1|\\[::1\\])([:/]|$)" $w.engine.openai.url) }}
{{- fail (printf "workers.%s.engine.openai.url (%s) points at the pod itself, but workers.%s.sidecar.enabled is false: enable the engine sidecar or point the URL at a server" $name $w.engine.openai.url $name) }}
{{- end }}
{{- if and $w.sidecar.enabled (not $w.sidecar.image.repository) }}
{{- fail (printf "workers.%s.sidecar.image.repository is required when workers.%s.sidecar.enabled is true" $name $name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
NATS, Redis and queue settings shared by the controller and the workers.
*/}}
{{- define "task-queue.connectionEnv" -}}
- name: TQ_NATS_URL
  value: {{ join "," .Values.nats.servers | quote }}
{{- $auth := .Values.nats.auth }}
{{- if $auth.userKey }}
- name: TQ_NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.userKey }}
{{- else if $auth.user }}
- name: TQ_NATS_USER
  value: {{ $auth.user | quote }}
{{- end }}
{{- if $auth.passwordKey }}
- name: TQ_NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.passwordKey }}
{{- end }}
{{- if $auth.tokenKey }}
- name: TQ_NATS_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.tokenKey }}
{{- end }}
{{- if $auth.credsKey }}
- name: TQ_NATS_CREDS_FILE
  value: {{ include "task-queue.natsCredsDir" . }}/nats.creds
{{- end }}
{{- if .Values.nats.tls.enabled }}
{{- if .Values.nats.tls.caKey }}
- name: TQ_NATS_TLS_CA_FILE
  value: {{ include "task-queue.natsTlsDir" . }}/ca.crt
{{- end }}
{{- if .Values.nats.tls.certKey }}
- name: TQ_NATS_TLS_CERT_FILE
  value: {{ include "task-queue.natsTlsDir" . }}/tls.crt
- name: TQ_NATS_TLS_KEY_FILE
  value: {{ include "task-queue.natsTlsDir" . }}/tls.key
{{- end }}
{{- end }}
- name: TQ_REDIS_URL
  value: {{ .Values.redis.url | quote }}
{{- with .Values.redis.auth.username }}
- name: TQ_REDIS_USERNAME
  value: {{ . | quote }}
{{- end }}
{{- if .Values.redis.auth.existingSecret }}
- name: TQ_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .Values.redis.auth.existingSecret }}
      key: {{ .Values.redis.auth.passwordKey }}
{{- end }}
- name: TQ_REDIS_TLS
  value: {{ .Values.redis.tls.enabled | quote }}
{{- if .Values.redis.tls.existingSecret }}
- name: TQ_REDIS_TLS_CA_FILE
  value: {{ include "task-queue.redisTlsDir" . }}/ca.crt
{{- end }}
- name: TQ_STREAM_NAME
  value: {{ .Values.queue.streamName | quote }}
- name: TQ_SUBJECT_PREFIX
  value: {{ .Values.queue.subjectPrefix | quote }}
- name: TQ_KEY_PREFIX
  value: {{ .Values.queue.keyPrefix | quote }}
{{- end }}

{{/*
Secret volumes behind the file paths of connectionEnv. Keys are projected to
fixed file names so the paths do not depend on how a Secret names its keys.
*/}}
{{- define "task-queue.connectionVolumes" -}}
{{- if .Values.nats.auth.credsKey }}
- name: nats-creds
  secret:
    secretName: {{ .Values.nats.auth.existingSecret }}
    defaultMode: 288 # 0440: owner and fsGroup may read
    items:
      - key: {{ .Values.nats.auth.credsKey }}
        path: nats.creds
{{- end }}
{{- if and .Values.nats.tls.enabled (or .Values.nats.tls.caKey .Values.nats.tls.certKey) }}
- name: nats-tls
  secret:
    secretName: {{ .Values.nats.tls.existingSecret }}
    defaultMode: 288 # 0440: owner and fsGroup may read
    items:
      {{- with .Values.nats.tls.caKey }}
      - key: {{ . }}
        path: ca.crt
      {{- end }}
      {{- if .Values.nats.tls.certKey }}
      - key: {{ .Values.nats.tls.certKey }}
        path: tls.crt
      - key: {{ .Values.nats.tls.keyKey }}
        path: tls.key
      {{- end }}
{{- end }}
{{- if .Values.redis.tls.existingSecret }}
- name: redis-tls
  secret:
    secretName: {{ .Values.redis.tls.existingSecret }}
    defaultMode: 288 # 0440: owner and fsGroup may read
    items:
      - key: {{ .Values.redis.tls.caKey }}
        path: ca.crt
{{- end }}
{{- end }}

{{- define "task-queue.connectionVolumeMounts" -}}
{{- if .Values.nats.auth.credsKey }}
- name: nats-creds
  mountPath: {{ include "task-queue.natsCredsDir" . }}
  readOnly: true
{{- end }}
{{- if and .Values.nats.tls.enabled (or .Values.nats.tls.caKey .Values.nats.tls.certKey) }}
- name: nats-tls
  mountPath: {{ include "task-queue.natsTlsDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.redis.tls.existingSecret }}
- name: redis-tls
  mountPath: {{ include "task-queue.redisTlsDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Series selector that scopes alert expressions to this release: the jobs that
the chart's ServiceMonitors create are named after their Services.
*/}}
{{- define "task-queue.seriesSelector" -}}
{{- if .Values.metrics.prometheusRule.seriesSelector }}
{{- .Values.metrics.prometheusRule.seriesSelector }}
{{- else }}
{{- printf "job=~\"%s-(controller|worker-.+)\"" (include "task-queue.fullname" .) }}
{{- end }}
{{- end }}

{{/*
Labels of one alert. Call with (dict "root" $ "severity" $severity).
*/}}
{{- define "task-queue.alertMeta" -}}
labels:
  severity: {{ .severity }}
  {{- with .root.Values.metrics.prometheusRule.alertLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}

{{/*
runbook_url annotation of one alert, when a runbook base URL is configured.
*/}}
{{- define "task-queue.runbook" -}}
{{- with .root.Values.metrics.prometheusRule.runbookBaseUrl -}}
runbook_url: {{ printf "%s/%s" (trimSuffix "/" .) $.name }}
{{- end }}
{{- end }}
