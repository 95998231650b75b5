{{/*
The engine sidecar container of a worker pod. Call with
(dict "w" $worker "resources" $resourcesWithGpu "native" bool).
Engine images often assume a writable home and model cache; with a read-only
root filesystem those go to emptyDirs (or a shared model cache claim).
*/}}
{{- define "task-queue.engineSidecar" -}}
{{- $s := .w.sidecar }}
- name: {{ $s.name }}
  image: {{ include "task-queue.sidecarImage" $s.image | quote }}
  imagePullPolicy: {{ default "IfNotPresent" $s.image.pullPolicy }}
  {{- if .native }}
  restartPolicy: Always
  {{- end }}
  {{- with $s.command }}
  command:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.args }}
  args:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  env:
    - name: HOME
      value: /tmp
    - name: HF_HOME
      value: {{ $s.modelCache.mountPath }}
    {{- with $s.env }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $s.ports }}
  ports:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.startupProbe }}
  startupProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $s.livenessProbe }}
  livenessProbe:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- toYaml $s.securityContext | nindent 4 }}
  volumeMounts:
    - name: engine-tmp
      mountPath: /tmp
    - name: model-cache
      mountPath: {{ $s.modelCache.mountPath }}
      {{- if and $s.modelCache.existingClaim $s.modelCache.readOnly }}
      readOnly: true
      {{- end }}
{{- end }}

{{/*
Sidecar image reference: no chart-wide fallback, since it is another project's image.
*/}}
{{- define "task-queue.sidecarImage" -}}
{{- if .digest }}
{{- printf "%s@%s" .repository .digest }}
{{- else }}
{{- printf "%s:%s" .repository (default "latest" .tag) }}
{{- end }}
{{- end }}
