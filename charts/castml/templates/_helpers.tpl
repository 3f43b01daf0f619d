{{/*
Names. Resource names are `<fullname>-<component>`; InferenceServices are named after
their project (castml/isvc.py: isvc_name), because the KServe Service names and the
reconciler derive from it.
*/}}
{{- define "castml.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "castml.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "castml.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: (dict "ctx" $ "component" "mlflow") */}}
{{- define "castml.selectorLabels" -}}
app.kubernetes.io/name: {{ include "castml.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Standard labels: (dict "ctx" $ "component" "mlflow") */}}
{{- define "castml.labels" -}}
helm.sh/chart: {{ include "castml.chart" .ctx }}
{{ include "castml.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: castml
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Every pod of the release carries this; the default-deny policy selects on it. */}}
{{- define "castml.instanceSelector" -}}
app.kubernetes.io/name: {{ include "castml.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Image reference: (dict "ctx" $ "which" "serving") */}}
{{- define "castml.image" -}}
{{- $repo := get .ctx.Values.image.repositories .which -}}
{{- printf "%s/%s:%s" (trimSuffix "/" .ctx.Values.image.registry) $repo (default .ctx.Chart.AppVersion .ctx.Values.image.tag) -}}
{{- end }}

{{- define "castml.imagePullSecrets" -}}
{{- with .Values.image.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* PodSecurity "restricted": pod level. Pass the UID. */}}
{{- define "castml.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ . }}
runAsGroup: {{ . }}
fsGroup: {{ . }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* PodSecurity "restricted": container level, read-only root filesystem. */}}
{{- define "castml.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "castml.mlflowService" -}}
{{ include "castml.fullname" . }}-mlflow
{{- end }}

{{- define "castml.collectorService" -}}
{{ include "castml.fullname" . }}-collector
{{- end }}

{{/* The tracking URI every castml process uses. */}}
{{- define "castml.mlflowUri" -}}
{{- if .Values.serving.mlflowUri -}}
{{ .Values.serving.mlflowUri }}
{{- else -}}
http://{{ include "castml.mlflowService" . }}.{{ .Release.Namespace }}.svc.cluster.local:{{ .Values.mlflow.port }}
{{- end -}}
{{- end }}

{{- define "castml.collectorUrl" -}}
http://{{ include "castml.collectorService" . }}.{{ .Release.Namespace }}.svc.cluster.local:{{ .Values.monitoring.collector.port }}
{{- end }}

{{/* Names of the enabled projects, sorted (an entry set to null is removed). */}}
{{- define "castml.projectNames" -}}
{{- $names := list -}}
{{- range $name, $p := .Values.projects -}}
{{- if not (kindIs "invalid" $p) }}{{ $names = append $names $name }}{{ end -}}
{{- end -}}
{{- toJson (sortAlpha $names) -}}
{{- end }}

{{/* One project's settings: serving.defaults overlaid with projects.<name>. (dict "ctx" $ "name" "diecast") as JSON. */}}
{{- define "castml.project" -}}
{{- $entry := get .ctx.Values.projects .name | default dict -}}
{{- $merged := mustMergeOverwrite (deepCopy .ctx.Values.serving.defaults) (deepCopy $entry) -}}
{{- toJson $merged -}}
{{- end }}

{{/*
The version an InferenceService is pinned to: `default` (from values), unless pinPolicy
is keepLive and the live InferenceService `name` carries a concrete version (set by the
rollout reconciler via castml/isvc.py), so that `helm upgrade` never undoes a promotion.
`helm template` sees no cluster: values win. (dict "ctx" $ "name" "diecast-kb" "default" "champion")
*/}}
{{- define "castml.liveVersion" -}}
{{- $version := toString .default -}}
{{- if eq .ctx.Values.serving.pinPolicy "keepLive" -}}
{{- $live := lookup "serving.kserve.io/v1beta1" "InferenceService" .ctx.Release.Namespace .name -}}
{{- if $live -}}
{{- $annotations := $live.metadata.annotations | default dict -}}
{{- $liveVersion := get $annotations "castml.io/model-version" -}}
{{- if regexMatch "^[1-9][0-9]*$" $liveVersion }}{{ $version = $liveVersion }}{{ end -}}
{{- end -}}
{{- end -}}
{{- $version -}}
{{- end }}

{{/* The version the predictor is pinned to (castml.liveVersion). (dict "ctx" $ "name" "diecast" "project" $p) */}}
{{- define "castml.pinnedVersion" -}}
{{- include "castml.liveVersion" (dict "ctx" .ctx "name" .name "default" (toString (int64 .project.modelVersion))) -}}
{{- end }}

{{/*
A Secret value that is random on install and stable across upgrades: reuse the live
Secret's key when it exists. (dict "ctx" $ "secret" "name" "key" "token" "length" 48)
*/}}
{{- define "castml.stableRandom" -}}
{{- $live := lookup "v1" "Secret" .ctx.Release.Namespace .secret -}}
{{- if and $live $live.data (hasKey $live.data .key) -}}
{{- index $live.data .key -}}
{{- else -}}
{{- randAlphaNum (int .length) | b64enc -}}
{{- end -}}
{{- end }}

{{- define "castml.postgresSecret" -}}
{{- default (printf "%s-postgresql" (include "castml.fullname" .)) .Values.postgresql.existingSecret -}}
{{- end }}

{{- define "castml.collectorSecret" -}}
{{- default (printf "%s-collector-token" (include "castml.fullname" .)) .Values.monitoring.collector.existingSecret -}}
{{- end }}

{{- define "castml.webhookSecret" -}}
{{- default (printf "%s-webhook" (include "castml.fullname" .)) .Values.rollout.webhookExistingSecret -}}
{{- end }}

{{- define "castml.studioSecret" -}}
{{- default (printf "%s-studio-token" (include "castml.fullname" .)) .Values.studio.existingSecret -}}
{{- end }}

{{- define "castml.redisSecret" -}}
{{- default (printf "%s-redis" (include "castml.fullname" .)) .Values.forecast.redis.existingSecret -}}
{{- end }}

{{- define "castml.redisService" -}}
{{ include "castml.fullname" . }}-redis
{{- end }}

{{/* The forecast cache's Redis: the external URL, or the chart's StatefulSet. No password in it. */}}
{{- define "castml.redisUrl" -}}
{{- if .Values.forecast.redis.externalUrl -}}
{{ .Values.forecast.redis.externalUrl }}
{{- else -}}
redis://{{ include "castml.redisService" . }}.{{ .Release.Namespace }}.svc.cluster.local:6379/0
{{- end -}}
{{- end }}

{{/* What the forecast job and the read API share: the project and the cache (ForecastSettings). */}}
{{- define "castml.forecastEnv" -}}
- name: CASTML_FORECAST_PROJECT
  value: {{ .Values.forecast.project | quote }}
- name: CASTML_REDIS_URL
  value: {{ include "castml.redisUrl" . | quote }}
- name: CASTML_REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "castml.redisSecret" . }}
      key: {{ .Values.forecast.redis.passwordKey }}
{{- end }}

{{/* Base URL of one KServe component Service (Standard mode: `<isvc>-<component>`, port 80). (dict "ctx" $ "isvc" "diecast" "component" "transformer") */}}
{{- define "castml.isvcUrl" -}}
http://{{ .isvc }}-{{ .component }}.{{ .ctx.Release.Namespace }}.svc.cluster.local
{{- end }}

{{/*
The collector's payload-log volume is ReadWriteOnce by default: a pod that mounts it
(drift jobs, the forecast job, the UI) must run on the collector's node.
*/}}
{{- define "castml.nextToCollector" -}}
{{- if eq .Values.monitoring.collector.persistence.accessMode "ReadWriteOnce" }}
affinity:
  podAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "castml.selectorLabels" (dict "ctx" . "component" "collector") | nindent 12 }}
{{- end }}
{{- end }}

{{/* Scratch space for the read-only root filesystem. */}}
{{- define "castml.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ default "1Gi" . }}
{{- end }}

{{/* Cron checks: a 5-field standard cron and KFP's 6-field cron (seconds first). */}}
{{- define "castml.cronField" -}}
^(\*|[0-9]+(-[0-9]+)?|[A-Za-z]{3})(/[0-9]+)?(,(\*|[0-9]+(-[0-9]+)?|[A-Za-z]{3})(/[0-9]+)?)*$
{{- end }}

{{- define "castml.checkCron" -}}
{{- $fields := splitList " " (.value | trim | replace "  " " ") -}}
{{- $ok := eq (len $fields) (int .n) -}}
{{- if $ok -}}
{{- range $fields -}}
{{- if not (regexMatch (include "castml.cronField" nil) .) }}{{ $ok = false }}{{ end -}}
{{- end -}}
{{- end -}}
{{- if not $ok -}}
{{- fail (printf "\n%s: %q is not a valid %s. Example: %q." .path .value .what .example) -}}
{{- end -}}
{{- end }}

{{/*
Checks JSON schema cannot express, each failing with one clear line that names the value.
*/}}
{{- define "castml.validateValues" -}}
{{- $projects := include "castml.projectNames" . | fromJsonArray -}}
{{- if not $projects -}}
{{- fail "\nprojects: no project is enabled. Set at least one, e.g. --set projects.diecast.modelVersion=1" -}}
{{- end -}}
{{- range $name := $projects -}}
{{- $p := include "castml.project" (dict "ctx" $ "name" $name) | fromJson -}}
{{- if not $p.modelVersion -}}
{{- fail (printf "\nprojects.%s.modelVersion is required: the concrete registry version to serve (an integer >= 1, never an alias), e.g. --set projects.%s.modelVersion=3" $name $name) -}}
{{- end -}}
{{- if $p.canary.enabled -}}
{{- if not $p.canary.modelVersion -}}
{{- fail (printf "\nprojects.%s.canary.modelVersion is required when the canary is enabled: the @challenger version, e.g. --set projects.%s.canary.modelVersion=4" $name $name) -}}
{{- end -}}
{{- if eq (int64 $p.canary.modelVersion) (int64 $p.modelVersion) -}}
{{- fail (printf "\nprojects.%s.canary.modelVersion (%v) equals modelVersion: a canary must serve a different version" $name $p.canary.modelVersion) -}}
{{- end -}}
{{- end -}}
{{- if lt (int $p.autoscaling.maxReplicas) (int $p.autoscaling.minReplicas) -}}
{{- fail (printf "\nprojects.%s.autoscaling.maxReplicas (%v) is below minReplicas (%v)" $name $p.autoscaling.maxReplicas $p.autoscaling.minReplicas) -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.mlflow.backend.type "external" -}}
{{- if not .Values.mlflow.backend.external.existingSecret -}}
{{- fail "\nmlflow.backend.external.existingSecret is required when mlflow.backend.type=external: a Secret whose key `uri` holds the database URL" -}}
{{- end -}}
{{- end -}}
{{- if eq .Values.mlflow.artifacts.type "s3" -}}
{{- if not .Values.mlflow.artifacts.s3.bucket -}}
{{- fail "\nmlflow.artifacts.s3.bucket is required when mlflow.artifacts.type=s3" -}}
{{- end -}}
{{- if not .Values.mlflow.artifacts.s3.existingSecret -}}
{{- fail "\nmlflow.artifacts.s3.existingSecret is required when mlflow.artifacts.type=s3: a Secret with the access key pair" -}}
{{- end -}}
{{- else if gt (int .Values.mlflow.replicas) 1 -}}
{{- fail "\nmlflow.replicas > 1 needs mlflow.artifacts.type=s3: the pvc artifact store mounts on one pod" -}}
{{- end -}}
{{- if .Values.monitoring.enabled -}}
{{- include "castml.checkCron" (dict "path" "monitoring.drift.schedule" "value" .Values.monitoring.drift.schedule "n" 5 "what" "5-field cron (minute hour day-of-month month day-of-week)" "example" "30 1 * * *") -}}
{{- end -}}
{{- if .Values.ui.enabled -}}
{{- if not (has .Values.ui.project $projects) -}}
{{- fail (printf "\nui.project (%s) is not an enabled project: the UI calls its InferenceService. Enabled: %s" .Values.ui.project (join ", " $projects)) -}}
{{- end -}}
{{- end -}}
{{- if .Values.forecast.enabled -}}
{{- if not .Values.monitoring.enabled -}}
{{- fail "\nforecast.enabled needs monitoring.enabled: observations arrive through the collector, and the forecast job reads them from its volume" -}}
{{- end -}}
{{- if and .Values.forecast.redis.externalUrl (not .Values.forecast.redis.existingSecret) -}}
{{- fail "\nforecast.redis.existingSecret is required with forecast.redis.externalUrl: a Secret holding the external Redis's password under `passwordKey`" -}}
{{- end -}}
{{- if regexMatch "^rediss?://[^/@]*:[^/@]*@" .Values.forecast.redis.externalUrl -}}
{{- fail "\nforecast.redis.externalUrl must not carry a password: put it in the Secret named by forecast.redis.existingSecret" -}}
{{- end -}}
{{- include "castml.checkCron" (dict "path" "forecast.job.schedule" "value" .Values.forecast.job.schedule "n" 5 "what" "5-field cron (minute hour day-of-month month day-of-week)" "example" "*/5 * * * *") -}}
{{- end -}}
{{- include "castml.checkCron" (dict "path" "kfp.retrainCron" "value" .Values.kfp.retrainCron "n" 6 "what" "KFP 6-field cron (second minute hour day-of-month month day-of-week)" "example" "0 0 2 1 * *") -}}
{{- end }}
