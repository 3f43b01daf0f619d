{{/*
InferenceService pieces. The shape is shared with castml/isvc.py (the rollout reconciler's
patch): the pinned version lives in the annotation `castml.io/model-version` on the
InferenceService and on the predictor's and explainer's pods, and the containers read it
through the downward API into CASTML_MODEL_VERSION. A version change is therefore a JSON
merge patch of three annotations, and a new pod template (a rolling update).
tests/unit/test_chart.py proves the two agree.
*/}}

{{/* Pod-level fields shared by every component: (dict "ctx" $ "name" $name "component" "predictor" "version" "3") */}}
{{- define "castml.isvc.podFields" -}}
serviceAccountName: {{ include "castml.fullname" .ctx }}-serving
automountServiceAccountToken: false
# No Service links: the castml-mlflow Service alone would set CASTML_MLFLOW_PORT=tcp://...,
# which every castml process reads as its MLflow port (CASTML_ settings).
enableServiceLinks: false
{{- include "castml.imagePullSecrets" .ctx }}
labels:
  {{- include "castml.labels" (dict "ctx" .ctx "component" (printf "serving-%s" .component)) | nindent 2 }}
  castml.io/project: {{ .name }}
annotations:
  {{- if .version }}
  castml.io/model-version: {{ .version | quote }}
  {{- end }}
  prometheus.io/scrape: "true"
  prometheus.io/port: "8080"
  prometheus.io/path: /metrics
securityContext:
  {{- include "castml.podSecurityContext" .ctx.Values.runAsUser | nindent 2 }}
volumes:
  {{- include "castml.tmpVolume" "4Gi" | nindent 2 }}
{{- end }}

{{/* Autoscaling fields of one component: (dict "a" $p.autoscaling) */}}
{{- define "castml.isvc.scaling" -}}
minReplicas: {{ .a.minReplicas }}
{{- if eq .a.class "none" }}
maxReplicas: {{ .a.minReplicas }}
{{- else }}
maxReplicas: {{ .a.maxReplicas }}
{{- end }}
{{- if eq .a.class "hpa" }}
scaleMetric: {{ .a.metric }}
scaleTarget: {{ .a.target }}
{{- else if eq .a.class "keda" }}
autoScaling:
  metrics:
    - type: Resource
      resource:
        name: {{ .a.metric }}
        target:
          type: Utilization
          averageUtilization: {{ .a.target }}
{{- end }}
{{- end }}

{{/* The container every component runs: (dict "ctx" $ "name" $name "component" "predictor" "args" (list ...) "resources" $res "pinned" true) */}}
{{- define "castml.isvc.container" -}}
- name: kserve-container
  image: {{ .image | default (include "castml.image" (dict "ctx" .ctx "which" "serving")) }}
  imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
  command: ["python", "-m", "serving", {{ .component | quote }}]
  args:
    {{- range .args }}
    - {{ . | quote }}
    {{- end }}
  env:
    # The servers bind loopback unless told otherwise.
    - name: CASTML_HOST
      value: "0.0.0.0"
    - name: CASTML_PROJECT
      value: {{ .name | quote }}
    - name: CASTML_MLFLOW_URI
      value: {{ include "castml.mlflowUri" .ctx | quote }}
    {{- if .pinned }}
    - name: CASTML_MODEL_VERSION
      valueFrom:
        fieldRef:
          fieldPath: metadata.annotations['castml.io/model-version']
    {{- else if .modelVersion }}
    - name: CASTML_MODEL_VERSION
      value: {{ .modelVersion | quote }}
    {{- end }}
    - name: CASTML_HOME
      value: /tmp/castml
    - name: HOME
      value: /tmp
    {{- range .env }}
    - name: {{ .name }}
      {{- if .valueFrom }}
      valueFrom:
        {{- toYaml .valueFrom | nindent 8 }}
      {{- else }}
      value: {{ .value | quote }}
      {{- end }}
    {{- end }}
  ports:
    - name: http1
      containerPort: 8080
      protocol: TCP
  readinessProbe:
    httpGet: {path: /v2/health/ready, port: 8080}
    periodSeconds: 10
  startupProbe:
    httpGet: {path: /v2/health/live, port: 8080}
    periodSeconds: 5
    failureThreshold: 120
  livenessProbe:
    httpGet: {path: /v2/health/live, port: 8080}
    periodSeconds: 20
  resources:
    {{- toYaml .resources | nindent 4 }}
  securityContext:
    {{- include "castml.containerSecurityContext" .ctx | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/* The predictor spec (also the canary's): (dict "ctx" $ "name" $name "p" $p "version" "3" "logger" true) */}}
{{- define "castml.isvc.predictor" -}}
{{- include "castml.isvc.podFields" (dict "ctx" .ctx "name" .name "component" "predictor" "version" .version) }}
{{ include "castml.isvc.scaling" (dict "a" .p.autoscaling) }}
{{- if and .logger .ctx.Values.monitoring.enabled }}
logger:
  mode: {{ .ctx.Values.monitoring.collector.loggerMode }}
  url: {{ printf "%s%s" (include "castml.collectorUrl" .ctx) .ctx.Values.monitoring.collector.ingestPath | quote }}
{{- end }}
containers:
  {{- include "castml.isvc.container" (dict "ctx" .ctx "name" .name "component" "predictor" "pinned" true "resources" .p.predictor.resources "args" (list "--model_name" .name "--http_port" "8080" "--grpc_port" "8081")) | nindent 2 }}
{{- end }}
