{{/* Chart name, truncated to the 63 characters Kubernetes allows in a name. */}}
{{- define "meisa-bridge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: release-chart unless the release name already holds the chart. */}}
{{- define "meisa-bridge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "meisa-bridge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Standard labels (app.kubernetes.io/*) on every object. */}}
{{- define "meisa-bridge.labels" -}}
helm.sh/chart: {{ include "meisa-bridge.chart" . }}
{{ include "meisa-bridge.selectorLabels" . }}
app.kubernetes.io/version: {{ include "meisa-bridge.imageTag" . | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: consumer
app.kubernetes.io/part-of: meisa-bridge
{{- end }}

{{- define "meisa-bridge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "meisa-bridge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "meisa-bridge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "meisa-bridge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image tag as a string: image.tag, else the chart's appVersion. A tag written as a bare number
(tag: 20240101) reaches the template as a float; print it as the integer it is.
*/}}
{{- define "meisa-bridge.imageTag" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion }}
{{- if kindIs "float64" $tag }}{{ $tag = int64 $tag }}{{ end }}
{{- toString $tag }}
{{- end }}

{{/* repository@digest when image.digest is set (the tag is then only a label), else repository:tag. */}}
{{- define "meisa-bridge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "meisa-bridge.imageTag" .) }}
{{- end }}
{{- end }}

{{/* imagePullSecrets as names or as {name: ...} objects, rendered as objects. */}}
{{- define "meisa-bridge.imagePullSecrets" -}}
{{- range .Values.imagePullSecrets }}
{{- if kindIs "string" . }}
- name: {{ . | quote }}
{{- else }}
- name: {{ .name | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* The Secret holding the Meisa API key: existingSecret, else the one the chart creates. */}}
{{- define "meisa-bridge.apiKeySecretName" -}}
{{- .Values.meisa.existingSecret | default (include "meisa-bridge.fullname" .) }}
{{- end }}

{{- define "meisa-bridge.apiKeySecretKey" -}}
{{- if .Values.meisa.existingSecret }}{{ .Values.meisa.existingSecretKey }}{{ else }}api-key{{ end }}
{{- end }}

{{/* The Secret holding the Kafka SASL credentials. */}}
{{- define "meisa-bridge.saslSecretName" -}}
{{- .Values.kafka.sasl.existingSecret | default (printf "%s-kafka" (include "meisa-bridge.fullname" .)) }}
{{- end }}

{{- define "meisa-bridge.saslEnabled" -}}
{{- if hasPrefix "SASL_" .Values.kafka.securityProtocol }}true{{ end }}
{{- end }}

{{/* This replica's share of the API key's rate budget: meisa.rateShare, else it follows the
partitions the replica owns (computed by the bridge on every rebalance). */}}
{{- define "meisa-bridge.rateShare" -}}
{{- if .Values.meisa.rateShare }}{{ .Values.meisa.rateShare }}
{{- else }}its partitions' part{{ end }}
{{- end }}

{{/* Where the rate share comes from, for NOTES.txt. */}}
{{- define "meisa-bridge.rateShareSource" -}}
{{- if .Values.meisa.rateShare }}meisa.rateShare
{{- else }}recomputed on every rebalance; see the meisa_bridge_rate_share metric{{ end }}
{{- end }}

{{/* Unset, null and "" all mean "not given"; 0 is a value (PodDisruptionBudget fields). */}}
{{- define "meisa-bridge.isSet" -}}
{{- if not (or (kindIs "invalid" .) (eq (toString .) "")) }}true{{ end }}
{{- end }}

{{/* The bridge config file (bridge.yaml). Secrets appear only as ${ENV} placeholders. */}}
{{- define "meisa-bridge.config" -}}
{{- $kafka := dict "bootstrap.servers" .Values.kafka.bootstrapServers "group.id" .Values.kafka.groupId "security.protocol" .Values.kafka.securityProtocol }}
{{- if include "meisa-bridge.saslEnabled" . }}
{{- $_ := set $kafka "sasl.mechanism" .Values.kafka.sasl.mechanism }}
{{- $_ := set $kafka "sasl.username" "${KAFKA_SASL_USERNAME}" }}
{{- $_ := set $kafka "sasl.password" "${KAFKA_SASL_PASSWORD}" }}
{{- end }}
{{- with .Values.kafka.tls }}
{{- if .existingSecret }}
{{- $_ := set $kafka "ssl.ca.location" (printf "/etc/kafka-tls/%s" .caKey) }}
{{- if .certKey }}{{ $_ := set $kafka "ssl.certificate.location" (printf "/etc/kafka-tls/%s" .certKey) }}{{ end }}
{{- if .keyKey }}{{ $_ := set $kafka "ssl.key.location" (printf "/etc/kafka-tls/%s" .keyKey) }}{{ end }}
{{- if .keyPasswordKey }}{{ $_ := set $kafka "ssl.key.password" "${KAFKA_SSL_KEY_PASSWORD}" }}{{ end }}
{{- end }}
{{- end }}
{{- $kafka = mergeOverwrite (deepCopy .Values.kafka.properties) $kafka }}
{{- $meisa := dict "base_url" .Values.meisa.baseUrl "api_key" "${MEISA_API_KEY}" }}
{{- if .Values.meisa.rateShare }}{{ $_ := set $meisa "rate_share" "${MEISA_RATE_SHARE}" }}{{ end }}
{{- $server := dict "host" "0.0.0.0" "port" (.Values.service.port | int) "halt_linger_seconds" .Values.monitoring.haltLingerSeconds }}
{{- $computed := dict "kafka" $kafka "topics" .Values.topics "meisa" $meisa "server" $server "rules_file" "rules.yaml" }}
{{- if .Values.deadLetterTopic }}{{ $_ := set $computed "dead_letter_topic" .Values.deadLetterTopic }}{{ end }}
{{- if eq .Values.rulesReload "watch" }}
{{- $_ := set $computed "reload" (mergeOverwrite (deepCopy (.Values.config.reload | default dict)) (dict "watch" true)) }}
{{- end }}
{{- $config := mergeOverwrite (deepCopy .Values.config) $computed }}
{{- toYaml $config }}
{{- end }}

{{/* The rules file: a YAML list under rules:, or a whole rules file given as a string. */}}
{{- define "meisa-bridge.rules" -}}
{{- if kindIs "string" .Values.rules }}
{{- .Values.rules }}
{{- else }}
{{- toYaml (dict "rules" (.Values.rules | default list)) }}
{{- end }}
{{- end }}

{{/*
Extra containers (initContainers, sidecars) with the securityContext the "restricted" Pod Security
level requires filled in where they leave it out: no privilege escalation, every capability
dropped. Their own securityContext settings win.
*/}}
{{- define "meisa-bridge.restrictedContainers" -}}
{{- $out := list }}
{{- range . }}
{{- $c := deepCopy . }}
{{- $restricted := dict "allowPrivilegeEscalation" false "capabilities" (dict "drop" (list "ALL")) }}
{{- $_ := set $c "securityContext" (merge (deepCopy (default dict $c.securityContext)) $restricted) }}
{{- $out = append $out $c }}
{{- end }}
{{- toYaml $out }}
{{- end }}

{{/*
KEDA's Kafka trigger metadata for one topic (dict "root" $ "topic" NAME). Every value is a string,
as the ScaledObject type requires. SASL and TLS follow kafka.securityProtocol; the credentials go
through the TriggerAuthentication (meisa-bridge.kedaAuthParams). keda.metadata is merged over it.
*/}}
{{- define "meisa-bridge.kedaMetadata" -}}
{{- $v := .root.Values }}
{{- $m := dict "bootstrapServers" ($v.keda.bootstrapServers | default $v.kafka.bootstrapServers) "consumerGroup" $v.kafka.groupId "topic" .topic }}
{{- $_ := set $m "lagThreshold" ($v.keda.lagThreshold | toString) }}
{{- $_ := set $m "activationLagThreshold" ($v.keda.activationLagThreshold | toString) }}
{{- $_ := set $m "offsetResetPolicy" (get $v.kafka.properties "auto.offset.reset" | default "earliest" | toString) }}
{{- $_ := set $m "allowIdleConsumers" "false" }}
{{- $_ := set $m "limitToPartitionsWithLag" ($v.keda.limitToPartitionsWithLag | toString) }}
{{- $protocol := $v.kafka.securityProtocol }}
{{- if or (eq $protocol "SSL") (eq $protocol "SASL_SSL") }}{{ $_ := set $m "tls" "enable" }}{{ end }}
{{- if include "meisa-bridge.saslEnabled" .root }}
{{- $mechanisms := dict "PLAIN" "plaintext" "SCRAM-SHA-256" "scram_sha256" "SCRAM-SHA-512" "scram_sha512" }}
{{- $_ := set $m "sasl" (get $mechanisms $v.kafka.sasl.mechanism | required (printf "kafka.sasl.mechanism %s has no KEDA equivalent: set keda.authenticationRef and keda.metadata.sasl" $v.kafka.sasl.mechanism)) }}
{{- end }}
{{- range $k, $val := $v.keda.metadata }}{{ $_ := set $m $k (toString $val) }}{{ end }}
{{- toYaml $m }}
{{- end }}

{{/* The TriggerAuthentication's secretTargetRef list (YAML), empty without SASL or a TLS Secret. */}}
{{- define "meisa-bridge.kedaAuthParams" -}}
{{- $refs := list }}
{{- if include "meisa-bridge.saslEnabled" . }}
{{- $secret := include "meisa-bridge.saslSecretName" . }}
{{- $refs = append $refs (dict "parameter" "username" "name" $secret "key" .Values.kafka.sasl.usernameKey) }}
{{- $refs = append $refs (dict "parameter" "password" "name" $secret "key" .Values.kafka.sasl.passwordKey) }}
{{- end }}
{{- with .Values.kafka.tls }}
{{- if .existingSecret }}
{{- $refs = append $refs (dict "parameter" "ca" "name" .existingSecret "key" .caKey) }}
{{- if .certKey }}{{ $refs = append $refs (dict "parameter" "cert" "name" .existingSecret "key" .certKey) }}{{ end }}
{{- if .keyKey }}{{ $refs = append $refs (dict "parameter" "key" "name" .existingSecret "key" .keyKey) }}{{ end }}
{{- if .keyPasswordKey }}{{ $refs = append $refs (dict "parameter" "keyPassword" "name" .existingSecret "key" .keyPasswordKey) }}{{ end }}
{{- end }}
{{- end }}
{{- if $refs }}{{ toYaml $refs }}{{ end }}
{{- end }}
