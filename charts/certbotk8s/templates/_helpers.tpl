{{/* Name part of object names. */}}
{{- define "certbotk8s.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full object name: the release name if it contains the chart name. */}}
{{- define "certbotk8s.fullname" -}}
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

{{/* Labels of every object; `app.kubernetes.io/name` is what the kustomize manifests use too. */}}
{{- define "certbotk8s.labels" -}}
app.kubernetes.io/name: {{ include "certbotk8s.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations of every object (empty when none). */}}
{{- define "certbotk8s.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component (controller or renew). */}}
{{- define "certbotk8s.selector" -}}
app.kubernetes.io/name: {{ include "certbotk8s.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The ServiceAccount the pods run as (created by the chart unless serviceAccount.create is false). */}}
{{- define "certbotk8s.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "certbotk8s.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The host policy is a choice: without one every source would be refused HostNotAllowed. */}}
{{- define "certbotk8s.requireHostPolicy" -}}
{{- $tenants := default (dict) .Values.config.tenants -}}
{{- if not (or $tenants.hostPatterns $tenants.allowAnyHost) -}}
{{- fail "no host policy: set config.tenants.hostPatterns (namespace: [host patterns it may request]) or config.tenants.allowAnyHost=true (any namespace may request any host; the first to ask keeps it)" -}}
{{- else if and $tenants.hostPatterns $tenants.allowAnyHost -}}
{{- fail "config.tenants: set hostPatterns or allowAnyHost=true, not both" -}}
{{- end -}}
{{- end -}}

{{- define "certbotk8s.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The config file: values.config plus what the chart knows (namespace, Service, port). */}}
{{- define "certbotk8s.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- if not $config.controllerNamespace -}}
{{- $_ := set $config "controllerNamespace" .Release.Namespace -}}
{{- end -}}
{{- $solver := default (dict) $config.solver -}}
{{- $http01 := default (dict) $solver.http01 -}}
{{- if not $http01.port -}}{{- $_ := set $http01 "port" .Values.http01Port -}}{{- end -}}
{{- if not $http01.solverService -}}
{{- $_ := set $http01 "solverService" (printf "%s-solver" (include "certbotk8s.fullname" .)) -}}
{{- end -}}
{{- if not $http01.solverServicePort -}}{{- $_ := set $http01 "solverServicePort" 80 -}}{{- end -}}
{{- $_ := set $solver "http01" $http01 -}}
{{- $_ := set $config "solver" $solver -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Pod spec shared by the Deployment and the CronJob; .args and .resources differ. */}}
{{- define "certbotk8s.podSpec" -}}
{{- $root := .root -}}
serviceAccountName: {{ include "certbotk8s.serviceAccountName" $root }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $root.Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
containers:
  - name: certbotk8s
    image: {{ include "certbotk8s.image" $root }}
    imagePullPolicy: {{ $root.Values.image.pullPolicy }}
    args:
      {{- toYaml .args | nindent 6 }}
      - --log-level
      - {{ $root.Values.logLevel }}
    env:
      - name: POD_NAMESPACE # controllerNamespace when the config sets none
        valueFrom:
          fieldRef:
            fieldPath: metadata.namespace
      - name: POD_NAME
        valueFrom:
          fieldRef:
            fieldPath: metadata.name
      {{- if $root.Values.logJson }}
      - name: CERTBOTK8S_LOG_JSON
        value: "1"
      {{- end }}
      {{- with $root.Values.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    ports:
      - name: http01
        containerPort: {{ $root.Values.http01Port }}
        protocol: TCP
      {{- if .metrics }}
      - name: metrics
        containerPort: {{ $root.Values.controller.metricsPort }}
        protocol: TCP
      {{- end }}
    {{- if .metrics }}
    livenessProbe:
      httpGet:
        path: /healthz
        port: metrics
      initialDelaySeconds: 10
      periodSeconds: 20
      timeoutSeconds: 5
      failureThreshold: 3
    readinessProbe:
      httpGet:
        path: /readyz
        port: metrics
      periodSeconds: 5
      timeoutSeconds: 5
      failureThreshold: 3
    {{- end }}
    resources:
      {{- toYaml .resources | nindent 6 }}
    {{- with $root.Values.securityContext }}
    securityContext:
      {{- toYaml . | nindent 6 }}
    {{- end }}
    volumeMounts:
      - name: config
        mountPath: /etc/certbotk8s
        readOnly: true
      - name: tmp
        mountPath: /tmp
      {{- with $root.Values.extraVolumeMounts }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
volumes:
  - name: config
    configMap:
      name: {{ include "certbotk8s.fullname" $root }}-config
  - name: tmp
    emptyDir:
      sizeLimit: 64Mi
  {{- with $root.Values.extraVolumes }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Pod template labels and annotations of one component. */}}
{{- define "certbotk8s.podMetadata" -}}
labels:
  {{- include "certbotk8s.selector" . | nindent 2 }}
  certbotk8s.io/http01-solver: "true"
  {{- with .root.Values.podLabels }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
annotations:
  checksum/config: {{ include "certbotk8s.config" .root | sha256sum }}
  {{- with .root.Values.podAnnotations }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{/* Namespaced mode: one `--namespace=NS` per served namespace, as a YAML list. */}}
{{- define "certbotk8s.namespaceArgs" -}}
{{- $args := list }}
{{- range .Values.namespaces | default list }}
{{- $args = append $args (printf "--namespace=%s" .) }}
{{- end }}
{{- toYaml $args }}
{{- end }}
