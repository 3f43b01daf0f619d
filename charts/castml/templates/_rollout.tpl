{{/*
One rollout reconciler (`castml rollout run`, cluster mode) and its Service, for one
registered model whose InferenceService has the same name: a project's predictor
(`<project>`) or its knowledge base (`<project>-kb`). Each watches `<model>@champion`,
registers its own MLflow webhook (`castml-rollout-<model>`, pointing at its Service) and
patches its InferenceService with castml/isvc.py's merge patch.
The pods are labelled `castml.io/project: <model>`: the selector that keeps the two
reconcilers of a project apart. (dict "ctx" $ "model" "diecast-kb")
*/}}
{{- define "castml.rollout.reconciler" -}}
{{- $ := .ctx -}}
{{- $fullname := include "castml.fullname" $ -}}
{{- $name := .model -}}
{{- $service := printf "%s-rollout-%s" $fullname $name -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $service }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "castml.labels" (dict "ctx" $ "component" "rollout") | nindent 4 }}
    castml.io/project: {{ $name }}
spec:
  # One reconciler per model: two would race on the same patch.
  replicas: 1
  strategy:
    type: Recreate
  selector:
    matchLabels:
      {{- include "castml.selectorLabels" (dict "ctx" $ "component" "rollout") | nindent 6 }}
      castml.io/project: {{ $name }}
  template:
    metadata:
      labels:
        {{- include "castml.labels" (dict "ctx" $ "component" "rollout") | nindent 8 }}
        castml.io/project: {{ $name }}
    spec:
      serviceAccountName: {{ $fullname }}-rollout
      automountServiceAccountToken: true
      # No Service links: the castml-mlflow Service alone would set CASTML_MLFLOW_PORT=tcp://...,
      # which every castml process reads as its MLflow port (CASTML_ settings).
      enableServiceLinks: false
      {{- include "castml.imagePullSecrets" $ | nindent 6 }}
      securityContext:
        {{- include "castml.podSecurityContext" $.Values.runAsUser | nindent 8 }}
      containers:
        - name: rollout
          image: {{ include "castml.image" (dict "ctx" $ "which" "serving") }}
          imagePullPolicy: {{ $.Values.image.pullPolicy }}
          command: ["castml", "rollout", "run"]
          # Where MLflow delivers this model's alias events: its own Service.
          args:
            - --receiver-url
            - {{ printf "http://%s.%s.svc.cluster.local:%v" $service $.Release.Namespace $.Values.rollout.port | quote }}
          env:
            - name: CASTML_MLFLOW_URI
              value: {{ include "castml.mlflowUri" $ | quote }}
            - name: CASTML_WEBHOOK_SECRET
              valueFrom:
                secretKeyRef:
                  name: {{ include "castml.webhookSecret" $ }}
                  key: {{ $.Values.rollout.webhookSecretKey }}
            - name: CASTML_ROLLOUT_MODE
              value: cluster
            - name: CASTML_PROJECT
              value: {{ $name | quote }}
            - name: CASTML_ISVC_NAME
              value: {{ $name | quote }}
            - name: CASTML_NAMESPACE
              valueFrom:
                fieldRef:
                  fieldPath: metadata.namespace
            - name: CASTML_ROLLOUT_HOST
              value: "0.0.0.0"
            - name: CASTML_ROLLOUT_PORT
              value: {{ $.Values.rollout.port | quote }}
            - name: HOME
              value: /tmp
          ports:
            - name: http
              containerPort: {{ $.Values.rollout.port }}
              protocol: TCP
          # The webhook receiver answers /healthz while the reconcile loop runs.
          readinessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 10
          livenessProbe:
            httpGet: {path: /healthz, port: http}
            periodSeconds: 20
          resources:
            {{- toYaml $.Values.rollout.resources | nindent 12 }}
          securityContext:
            {{- include "castml.containerSecurityContext" $ | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        {{- include "castml.tmpVolume" "256Mi" | nindent 8 }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $service }}
  namespace: {{ $.Release.Namespace }}
  labels:
    {{- include "castml.labels" (dict "ctx" $ "component" "rollout") | nindent 4 }}
    castml.io/project: {{ $name }}
spec:
  type: ClusterIP
  selector:
    {{- include "castml.selectorLabels" (dict "ctx" $ "component" "rollout") | nindent 4 }}
    castml.io/project: {{ $name }}
  ports:
    - name: http
      port: {{ $.Values.rollout.port }}
      targetPort: http
      protocol: TCP
{{- end }}
