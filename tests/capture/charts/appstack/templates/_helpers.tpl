{{- define "appstack.labels" -}}
app.kubernetes.io/name: appstack
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}
