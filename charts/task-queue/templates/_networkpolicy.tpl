{{/*
Metrics scraping, the only ingress. Call with (dict "np" $np "port" $port).
*/}}
{{- define "task-queue.networkPolicy.metricsIngress" -}}
- ports:
    - port: {{ int .port }}
      protocol: TCP
  from:
    - namespaceSelector:
        {{- toYaml .np.metricsIngress.namespaceSelector | nindent 8 }}
      {{- with .np.metricsIngress.podSelector }}
      podSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end }}

{{/*
Egress every task-queue pod needs: DNS, NATS, Redis. An empty `to` allows
the ports to any address, for NATS or Redis outside the cluster.
*/}}
{{- define "task-queue.networkPolicy.commonEgress" -}}
- ports:
    - port: 53
      protocol: UDP
    - port: 53
      protocol: TCP
  to:
    - namespaceSelector:
        {{- toYaml .dns.namespaceSelector | nindent 8 }}
      podSelector:
        {{- toYaml .dns.podSelector | nindent 8 }}
- ports:
    {{- range .natsEgress.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with .natsEgress.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
- ports:
    {{- range .redisEgress.ports }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- with .redisEgress.to }}
  to:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}
