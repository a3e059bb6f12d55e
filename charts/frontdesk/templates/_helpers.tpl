{{/*
Names. Kept short so `<fullname>-proxy-<gateway>-metrics` fits a DNS label (63): fullname is
at most 28 characters, a gateway name at most 20 (values.schema.json).
*/}}
{{- define "frontdesk.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 28 | trimSuffix "-" -}}
{{- else if contains "frontdesk" .Release.Name -}}
{{- .Release.Name | trunc 28 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-frontdesk" .Release.Name | trunc 28 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "frontdesk.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: frontdesk
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: frontdesk
{{- end -}}

{{/* Selector labels of one component: (list $ "controller") */}}
{{- define "frontdesk.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: frontdesk
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* An image: (list $ "frontdesk-proxy") */}}
{{- define "frontdesk.image" -}}
{{- $root := index . 0 -}}
{{- $tag := $root.Values.image.tag | default $root.Chart.AppVersion -}}
{{- if $root.Values.image.registry -}}
{{- printf "%s/%s:%s" $root.Values.image.registry (index . 1) $tag -}}
{{- else -}}
{{- printf "%s:%s" (index . 1) $tag -}}
{{- end -}}
{{- end -}}

{{/* The controller's Service name, and the names proxies use for it (its certificate's). */}}
{{- define "frontdesk.controllerService" -}}
{{- printf "%s-controller" (include "frontdesk.fullname" .) -}}
{{- end -}}

{{- define "frontdesk.controllerURL" -}}
{{- printf "https://%s.%s.svc:%v" (include "frontdesk.controllerService" .) .Release.Namespace .Values.controller.port -}}
{{- end -}}

{{/* Pod and container security: non-root, read-only root, no capabilities, RuntimeDefault seccomp. */}}
{{- define "frontdesk.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "frontdesk.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: [ALL]
{{- end -}}

{{/* Soft or hard spreading of one component's replicas over nodes: (list $selectorLabels "soft") */}}
{{- define "frontdesk.antiAffinity" -}}
{{- $selector := index . 0 -}}
podAntiAffinity:
{{- if eq (index . 1) "hard" }}
  requiredDuringSchedulingIgnoredDuringExecution:
    - topologyKey: kubernetes.io/hostname
      labelSelector:
        matchLabels:
          {{- $selector | nindent 10 }}
{{- else }}
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- $selector | nindent 12 }}
{{- end }}
{{- end -}}

{{- define "frontdesk.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
The gateways to run, each with its effective settings (its entry merged over `proxy`), as
YAML: `gateways`, or one named default when it is empty.
*/}}
{{- define "frontdesk.gateways" -}}
{{- $gateways := dict -}}
{{- range $name, $override := (.Values.gateways | default (dict "default" dict)) -}}
{{- $_ := set $gateways $name (mergeOverwrite (deepCopy $.Values.proxy) (deepCopy ($override | default dict))) -}}
{{- end -}}
{{- toYaml $gateways -}}
{{- end -}}

{{/* The pod of the certs Job and CronJob: (list $ ifDue) */}}
{{- define "frontdesk.certsPod" -}}
{{- $root := index . 0 -}}
{{- $fullname := include "frontdesk.fullname" $root -}}
{{- $service := include "frontdesk.controllerService" $root -}}
metadata:
  labels:
    {{- include "frontdesk.selector" (list $root "certs") | nindent 4 }}
spec:
  serviceAccountName: {{ $fullname }}-certs
  restartPolicy: OnFailure
  {{- include "frontdesk.imagePullSecrets" $root | nindent 2 }}
  securityContext:
    {{- include "frontdesk.podSecurityContext" $root | nindent 4 }}
  containers:
    - name: certs
      image: {{ include "frontdesk.image" (list $root $root.Values.controller.image.repository) }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command: [/usr/local/bin/frontdesk-certs]
      args:
        - --secret-prefix={{ $fullname }}
        - --dns-name={{ $service }}
        - --dns-name={{ $service }}.{{ $root.Release.Namespace }}
        - --dns-name={{ $service }}.{{ $root.Release.Namespace }}.svc
        - --dns-name={{ $service }}.{{ $root.Release.Namespace }}.svc.cluster.local
        - --validity={{ $root.Values.channel.certificateValidity }}
        - --renew-before={{ $root.Values.channel.renewBefore }}
        - --min-promotion-interval={{ $root.Values.channel.minPromotionInterval }}
        {{- /* One client certificate per gateway, naming it: the controller serves a proxy only that gateway. */}}
        {{- range $name, $_ := (include "frontdesk.gateways" $root | fromYaml) }}
        - --gateway={{ $name }}
        {{- end }}
        {{- if index . 1 }}
        - --if-due
        {{- end }}
      env:
        - name: POD_NAMESPACE
          valueFrom: {fieldRef: {fieldPath: metadata.namespace}}
      resources:
        {{- toYaml $root.Values.channel.resources | nindent 8 }}
      securityContext:
        {{- include "frontdesk.containerSecurityContext" $root | nindent 8 }}
{{- end -}}

{{/*
A gateway's proxy arguments from its values (limits, access log, workers, trusted proxies,
extraArgs), as a YAML list: the chart's own proxies get them, and so do the proxies the
controller provisions for the chart's Gateways (their parameters' `args`).
*/}}
{{- define "frontdesk.proxyTuningArgs" -}}
- --header-read-timeout={{ .limits.headerReadTimeout }}
- --idle-timeout={{ .limits.idleTimeout }}
- --body-read-timeout={{ .limits.bodyReadTimeout }}
- --send-timeout={{ .limits.sendTimeout }}
- --websocket-idle-timeout={{ .limits.websocketIdleTimeout }}
- --websocket-max-lifetime={{ .limits.websocketMaxLifetime }}
- --max-connections={{ int64 .limits.maxConnections }}
- --http2-max-concurrent-streams={{ int64 .limits.http2MaxConcurrentStreams }}
- --max-connections-per-client={{ int64 .limits.maxConnectionsPerClient }}
- --max-request-body-bytes={{ int64 .limits.maxRequestBodyBytes }}
- --max-memory={{ .limits.maxMemory }}
- --access-log={{ ternary "on" "off" .accessLog }}
{{- with .workers }}
- --workers={{ . }}
{{- end }}
{{- with .trustedProxies }}
- --trusted-proxies={{ join "," . }}
{{- end }}
{{- range .extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end -}}

{{/* What the controller reads in the namespaces it watches (controller-rbac.yaml). */}}
{{- define "frontdesk.controllerWatchRules" -}}
- apiGroups: [frontdesk.dev]
  resources: [routes, policies, aggregates]
  verbs: [get, list, watch]
- apiGroups: [frontdesk.dev]
  resources: [routes/status, policies/status, aggregates/status]
  verbs: [patch]
- apiGroups: [""]
  resources: [services, secrets]
  verbs: [list, watch]
{{- /* CA bundles of Gateways' client certificate validation, watched by name. */}}
- apiGroups: [""]
  resources: [configmaps]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways, referencegrants, backendtlspolicies, httproutes, grpcroutes]
  verbs: [list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways/status, backendtlspolicies/status, httproutes/status, grpcroutes/status]
  verbs: [patch]
{{- if include "frontdesk.gatewayAPI" . }}
{{ include "frontdesk.controllerProvisionRules" . }}
{{- end }}
{{- end -}}

{{- /* GatewayClasses are cluster-scoped: only a ClusterRole can grant them. */ -}}
{{- /* The admission webhook's configuration: its caBundle kept equal to the trust bundle. */}}
{{- define "frontdesk.controllerWebhookRules" -}}
{{- if .Values.controller.webhook.enabled }}
- apiGroups: [admissionregistration.k8s.io]
  resources: [validatingwebhookconfigurations]
  resourceNames: [{{ include "frontdesk.fullname" . }}]
  verbs: [get, update]
{{- end }}
{{- end -}}

{{- define "frontdesk.controllerGatewayClassRules" -}}
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses]
  verbs: [list, watch]
{{- /* Namespace labels, for listeners' allowedRoutes selectors. */}}
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gatewayclasses/status]
  verbs: [patch]
{{- end -}}

{{/*
"true" when the chart runs gateways the Gateway API way: the cluster serves the Gateway API
(gateway.networking.k8s.io/v1 GatewayClass) and gatewayAPI.enabled. Then the chart renders the
GatewayClass and one Gateway per entry of `gateways`, the controller provisions their proxies
(--provision-gateways), and proxy.yaml renders none. Empty otherwise: the chart's own proxies,
exactly as without the Gateway API.
*/}}
{{- define "frontdesk.gatewayAPI" -}}
{{- if and .Values.gatewayAPI.enabled (.Capabilities.APIVersions.Has "gateway.networking.k8s.io/v1/GatewayClass") -}}
true
{{- end -}}
{{- end -}}

{{/* What the controller needs to provision Gateways' proxies, in the namespaces it watches. */}}
{{- define "frontdesk.controllerProvisionRules" -}}
- apiGroups: [""]
  resources: [serviceaccounts]
  verbs: [create, patch]
- apiGroups: [""]
  resources: [services]
  verbs: [create, patch, delete]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, patch]
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [create, patch, delete]
- apiGroups: [policy]
  resources: [poddisruptionbudgets]
  verbs: [create, patch]
- apiGroups: [gateway.networking.k8s.io]
  resources: [gateways/finalizers]
  verbs: [update]
{{- if .Values.gatewayAPI.issueCredentials }}
{{- /* Each Gateway's channel credentials (names chosen by Gateway authors: no resourceNames). */}}
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, patch]
{{- end }}
{{- end -}}
