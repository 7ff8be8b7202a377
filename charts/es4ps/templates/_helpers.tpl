{{/* Names and labels shared by every template. */}}

{{- define "es4ps.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: <release>-es4ps, or just <release> when it already says es4ps. */}}
{{- define "es4ps.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "es4ps.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of everything the release creates; add app.kubernetes.io/component. */}}
{{- define "es4ps.commonLabels" -}}
helm.sh/chart: {{ include "es4ps.chart" . }}
app.kubernetes.io/name: {{ include "es4ps.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: es4ps
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "es4ps.labels" -}}
{{ include "es4ps.commonLabels" . }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "es4ps.selectorLabels" -}}
app.kubernetes.io/name: {{ include "es4ps.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "es4ps.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "es4ps.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "es4ps.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "es4ps.domainNamespace" -}}
{{- default .Release.Namespace .Values.domain.namespace }}
{{- end }}
