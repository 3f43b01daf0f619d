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
