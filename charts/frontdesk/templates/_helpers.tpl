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

{{/* The gateways to run: `gateways`, or one named default when it is empty. */}}
{{- define "frontdesk.gateways" -}}
{{- if .Values.gateways -}}
{{- toYaml .Values.gateways -}}
{{- else -}}
default: {}
{{- end -}}
{{- end -}}
