{{/* A peer: castml pods of this release with the given components. (dict "ctx" $ "components" (list ...)) */}}
{{- define "castml.netpol.peer" -}}
- podSelector:
    matchLabels:
      {{- include "castml.instanceSelector" .ctx | nindent 6 }}
    matchExpressions:
      - key: app.kubernetes.io/component
        operator: In
        values: {{ toJson .components }}
{{- end }}

{{/* Pod selector for one component. (dict "ctx" $ "component" "mlflow") */}}
{{- define "castml.netpol.select" -}}
podSelector:
  matchLabels:
    {{- include "castml.selectorLabels" . | nindent 4 }}
{{- end }}

{{/* Egress to castml's MLflow. */}}
{{- define "castml.netpol.toMlflow" -}}
- to:
    {{- include "castml.netpol.peer" (dict "ctx" . "components" (list "mlflow")) | nindent 4 }}
  ports:
    - {protocol: TCP, port: {{ .Values.mlflow.port }}}
{{- end }}

{{/* Egress to the KFP API. */}}
{{- define "castml.netpol.toKfp" -}}
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .Values.kfp.namespace }}
  ports:
    - {protocol: TCP, port: {{ .Values.kfp.port }}}
{{- end }}

{{/* Egress to the collector. */}}
{{- define "castml.netpol.toCollector" -}}
- to:
    {{- include "castml.netpol.peer" (dict "ctx" . "components" (list "collector")) | nindent 4 }}
  ports:
    - {protocol: TCP, port: {{ .Values.monitoring.collector.port }}}
{{- end }}

{{/* Egress to addresses given as CIDRs (empty list: anywhere) on the given ports. (dict "cidrs" .. "ports" ..) */}}
{{- define "castml.netpol.toCidrs" -}}
- {{- if .cidrs }}
  to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  {{- end }}
  ports:
    {{- range .ports }}
    - {protocol: TCP, port: {{ . }}}
    {{- end }}
{{- end }}

{{/* Egress to the faces' own ports (the helm test pod checks their health). Empty when none is enabled. */}}
{{- define "castml.netpol.toFaces" -}}
{{- if .Values.ui.enabled }}
- to:
    {{- include "castml.netpol.peer" (dict "ctx" . "components" (list "ui")) | nindent 4 }}
  ports:
    - {protocol: TCP, port: {{ .Values.ui.port }}}
{{- end }}
{{- if .Values.studio.enabled }}
- to:
    {{- include "castml.netpol.peer" (dict "ctx" . "components" (list "studio")) | nindent 4 }}
  ports:
    - {protocol: TCP, port: {{ .Values.studio.port }}}
{{- end }}
{{- if .Values.forecast.enabled }}
- to:
    {{- include "castml.netpol.peer" (dict "ctx" . "components" (list "forecast-api")) | nindent 4 }}
  ports:
    - {protocol: TCP, port: {{ .Values.forecast.api.port }}}
{{- end }}
{{- end }}

{{/* Egress to the forecast cache: the chart's Redis, or an external one (networkPolicy.redisCidrs). */}}
{{- define "castml.netpol.toRedis" -}}
{{- if .Values.forecast.redis.externalUrl }}
{{- include "castml.netpol.toCidrs" (dict "cidrs" .Values.networkPolicy.redisCidrs "ports" .Values.networkPolicy.redisPorts) }}
{{- else }}
- to:
    {{- include "castml.netpol.peer" (dict "ctx" . "components" (list "redis")) | nindent 4 }}
  ports:
    - {protocol: TCP, port: 6379}
{{- end }}
{{- end }}
