{{- define "common-lib.labels" -}}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: common-lib-users
{{- end }}
