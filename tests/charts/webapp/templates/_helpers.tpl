{{- define "webapp.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The admin password: the existing Secret's (lookup) when there is one, else a new random
one. Without a cluster (helm template) lookup returns nothing, so every offline render makes a new
password and a new checksum/secret. */}}
{{- define "webapp.password" -}}
{{- if .Values.adminPassword -}}
{{- .Values.adminPassword | b64enc -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-admin" (include "webapp.fullname" .)) -}}
{{- if and $existing $existing.data (index $existing.data "password") -}}
{{- index $existing.data "password" -}}
{{- else -}}
{{- randAlphaNum 24 | b64enc -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "webapp.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget" -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}
