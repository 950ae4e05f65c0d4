{{/* The operator's object names: fullnameOverride, else the release name if it names the chart,
else <release>-agentic-operator. */}}
{{- define "agentic-operator.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "agentic-operator.selectorLabels" -}}
app.kubernetes.io/name: agentic-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "agentic-operator.labels" -}}
app.kubernetes.io/name: agentic-operator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: ambient-code
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
The operator's rules, read from rbac/ (files/rbac links there), so that the chart and the kustomize
install grant the same. For Roles in listed namespaces, rules on cluster-scoped resources
(namespaces) are left out: with an explicit list the operator never reads namespaces.
*/}}
{{- define "agentic-operator.rules" -}}
{{- (.Files.Get "files/rbac/cluster_role.yaml" | fromYaml).rules | toYaml -}}
{{- end -}}

{{- define "agentic-operator.namespacedRules" -}}
{{- $rules := list -}}
{{- range (.Files.Get "files/rbac/cluster_role.yaml" | fromYaml).rules -}}
{{- if not (has "namespaces" .resources) -}}
{{- $rules = append $rules . -}}
{{- end -}}
{{- end -}}
{{- $rules | toYaml -}}
{{- end -}}

{{- define "agentic-operator.leaderElectionRules" -}}
{{- (.Files.Get "files/rbac/leader_election_role.yaml" | fromYaml).rules | toYaml -}}
{{- end -}}
