{{/*
Base name of every resource: fullnameOverride, else the release name.
Truncated to 40 characters so that the longest derived name
(<name>-ingress-controller-np, a Service) stays a valid 63-character DNS label.
*/}}
{{- define "skydeck.fullname" -}}
{{- $name := .Values.fullnameOverride | default .Release.Name -}}
{{- $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "skydeck.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every resource. */}}
{{- define "skydeck.labels" -}}
helm.sh/chart: {{ include "skydeck.chart" . }}
app.kubernetes.io/name: skydeck
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector of the API server pods (the Deployment selector is immutable: keep it). */}}
{{- define "skydeck.apiSelector" -}}
app: {{ include "skydeck.fullname" . }}-api
{{- end -}}

{{/*
An image with global.imageRegistry applied: the registry part of the image
(a first path segment holding "." or ":", or "localhost") is replaced by it,
or it is put in front.
Usage: include "skydeck.image" (dict "root" $ "image" "repo/name:tag")
*/}}
{{- define "skydeck.image" -}}
{{- $image := .image -}}
{{- $registry := "" -}}
{{- with .root.Values.global -}}{{- $registry = .imageRegistry | default "" -}}{{- end -}}
{{- if $registry -}}
{{- $parts := splitList "/" $image -}}
{{- $first := first $parts -}}
{{- if and (gt (len $parts) 1) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- $image = rest $parts | join "/" -}}
{{- end -}}
{{- printf "%s/%s" (trimSuffix "/" $registry) $image -}}
{{- else -}}
{{- $image -}}
{{- end -}}
{{- end -}}

{{- define "skydeck.serviceAccountName" -}}
{{- if .Values.rbac.serviceAccountName -}}
{{- .Values.rbac.serviceAccountName -}}
{{- else -}}
{{- include "skydeck.fullname" . }}-api-sa
{{- end -}}
{{- end -}}

{{/* Env variables with secrets that the API container's PID 1 hands to the
     server through a file rather than its own environment (readable by
     `local` jobs, which run as the same user). */}}
{{- define "skydeck.handedOverEnv" -}}
SKYDECK_DB_CONNECTION_URI SKYDECK_INITIAL_BASIC_AUTH
{{- end -}}

{{/* Namespace of the pods of clusters in this cluster (the namespaced Role goes there). */}}
{{- define "skydeck.clusterNamespace" -}}
{{- .Values.kubernetesCredentials.inclusterNamespace | default .Release.Namespace -}}
{{- end -}}

{{/* ---------------------------------------------------------------------
     Authentication modes. Each helper prints "true" or "false".
     --------------------------------------------------------------------- */}}

{{/* Is the external database configured? */}}
{{- define "skydeck.externalDb" -}}
{{- if or .Values.apiService.dbConnectionSecretName .Values.apiService.dbConnectionString -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* oauth2-proxy in front of the server, from auth.oauth or ingress.oauth2-proxy. */}}
{{- define "skydeck.oauth2Enabled" -}}
{{- if or .Values.auth.oauth.enabled (and .Values.ingress.enabled (index .Values.ingress "oauth2-proxy" "enabled")) -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* The settings of the oauth2-proxy that is on (auth.oauth wins; both on is refused). */}}
{{- define "skydeck.oauth2Values" -}}
{{- if .Values.auth.oauth.enabled -}}
{{- toYaml .Values.auth.oauth -}}
{{- else -}}
{{- toYaml (index .Values.ingress "oauth2-proxy") -}}
{{- end -}}
{{- end -}}

{{/* Built-in user management: the server checks passwords itself. */}}
{{- define "skydeck.userManagement" -}}
{{- if and .Values.apiService.enableUserManagement (ne (include "skydeck.oauth2Enabled" .) "true") -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* The nginx ingress does basic auth and forwards the user to the server. */}}
{{- define "skydeck.ingressBasicAuth" -}}
{{- if and .Values.ingress.enabled (or .Values.ingress.authSecret .Values.ingress.authCredentials) (ne (include "skydeck.userManagement" .) "true") (ne (include "skydeck.oauth2Enabled" .) "true") -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{/* The server believes a proxy's identity header (oauth2-proxy or auth.externalProxy). */}}
{{- define "skydeck.proxyAuth" -}}
{{- if or .Values.auth.externalProxy.enabled (eq (include "skydeck.oauth2Enabled" .) "true") -}}true{{- else -}}false{{- end -}}
{{- end -}}

{{- define "skydeck.proxyHeader" -}}
{{- if .Values.auth.externalProxy.enabled -}}
{{- .Values.auth.externalProxy.headerName -}}
{{- else -}}
{{- .Values.apiService.authUserHeaderName | default "X-Auth-Request-Email" -}}
{{- end -}}
{{- end -}}

{{/* Service-account tokens: auth.serviceAccount.enabled, null falls back to apiService.enableServiceAccounts; off under ingress basic auth. */}}
{{- define "skydeck.serviceAccounts" -}}
{{- if eq (include "skydeck.ingressBasicAuth" .) "true" -}}
false
{{- else if and .Values.auth.serviceAccount (ne .Values.auth.serviceAccount.enabled nil) -}}
{{- .Values.auth.serviceAccount.enabled -}}
{{- else -}}
{{- .Values.apiService.enableServiceAccounts -}}
{{- end -}}
{{- end -}}

{{- define "skydeck.initialBasicAuthSecretName" -}}
{{- if .Values.apiService.initialBasicAuthSecret -}}
{{- .Values.apiService.initialBasicAuthSecret -}}
{{- else if .Values.apiService.initialBasicAuthCredentials -}}
{{- include "skydeck.fullname" . }}-initial-basic-auth
{{- end -}}
{{- end -}}

{{- define "skydeck.ingressAuthSecretName" -}}
{{- .Values.ingress.authSecret | default (printf "%s-basic-auth" (include "skydeck.fullname" .)) -}}
{{- end -}}

{{/* ---------------------------------------------------------------------
     Names of the subcharts' objects, computed the way those charts do.
     --------------------------------------------------------------------- */}}
{{- define "skydeck.subchartFullname" -}}
{{- $values := index .root.Values .chart | default dict -}}
{{- if $values.fullnameOverride -}}
{{- $values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := $values.nameOverride | default .chart -}}
{{- if contains $name .root.Release.Name -}}
{{- .root.Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .root.Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "skydeck.ingressControllerService" -}}
{{- include "skydeck.subchartFullname" (dict "root" . "chart" "ingress-nginx") }}-controller
{{- end -}}

{{- define "skydeck.prometheusServerURL" -}}
{{- $server := .Values.prometheus.server | default dict -}}
{{- $name := $server.fullnameOverride | default (printf "%s-server" (include "skydeck.subchartFullname" (dict "root" . "chart" "prometheus"))) -}}
http://{{ $name }}.{{ .Release.Namespace }}.svc:80{{ $server.prefixURL | default "" }}
{{- end -}}

{{- define "skydeck.grafanaService" -}}
{{- include "skydeck.subchartFullname" (dict "root" . "chart" "grafana") -}}
{{- end -}}

{{/* ---------------------------------------------------------------------
     Quantities, for the resource check.
     --------------------------------------------------------------------- */}}
{{/* CPU quantity -> millicores (integer). */}}
{{- define "skydeck.cpuMillis" -}}
{{- $q := toString . -}}
{{- if hasSuffix "m" $q -}}
{{- trimSuffix "m" $q | float64 | int64 -}}
{{- else -}}
{{- mulf (float64 $q) 1000 | int64 -}}
{{- end -}}
{{- end -}}

{{/* Memory quantity -> MiB (integer, rounded down). */}}
{{- define "skydeck.memoryMiB" -}}
{{- $q := toString . -}}
{{- $units := list (list "Ki" 0.0009765625) (list "Mi" 1.0) (list "Gi" 1024.0) (list "Ti" 1048576.0) (list "k" 0.00095367431640625) (list "K" 0.00095367431640625) (list "M" 0.95367431640625) (list "G" 953.67431640625) (list "T" 953674.31640625) -}}
{{- $mib := -1.0 -}}
{{- range $units -}}
{{- if and (lt $mib 0.0) (hasSuffix (index . 0) $q) -}}
{{- $mib = mulf (trimSuffix (index . 0) $q | float64) (index . 1) -}}
{{- end -}}
{{- end -}}
{{- if lt $mib 0.0 -}}
{{- $mib = divf (float64 $q) 1048576.0 -}}
{{- end -}}
{{- $mib | int64 -}}
{{- end -}}

{{/* ---------------------------------------------------------------------
     Render-time checks. Each message says what to change.
     --------------------------------------------------------------------- */}}
{{- define "skydeck.validate" -}}
{{- $v := .Values -}}
{{- $externalDb := eq (include "skydeck.externalDb" .) "true" -}}
{{- $oauth2 := eq (include "skydeck.oauth2Enabled" .) "true" -}}
{{- $ingressBasicAuth := eq (include "skydeck.ingressBasicAuth" .) "true" -}}
{{- $ingressAuthConfigured := and $v.ingress.enabled (or $v.ingress.authSecret $v.ingress.authCredentials) -}}
{{- $ingressOAuth := and $v.ingress.enabled (index $v.ingress "oauth2-proxy" "enabled") -}}

{{- if hasKey $v.rbac "rules" -}}
{{- fail "rbac.rules is no longer supported: move namespaced rules to rbac.namespaceRules and cluster-wide rules to rbac.clusterRules." -}}
{{- end -}}

{{- if eq $v.apiService.upgradeStrategy "RollingUpdate" -}}
{{- if not $externalDb -}}
{{- fail "apiService.upgradeStrategy=RollingUpdate needs an external database: set apiService.dbConnectionSecretName (or apiService.dbConnectionString), or use upgradeStrategy=Recreate." -}}
{{- end -}}
{{- if and $v.storage.enabled (ne $v.storage.accessMode "ReadWriteMany") -}}
{{- fail (printf "apiService.upgradeStrategy=RollingUpdate cannot use storage with accessMode %s (old and new pod mount it at once): set storage.accessMode=ReadWriteMany with an RWX storage class, or storage.enabled=false, or use upgradeStrategy=Recreate." $v.storage.accessMode) -}}
{{- end -}}
{{- end -}}

{{- if gt (int $v.apiService.replicas) 1 -}}
{{- if not $externalDb -}}
{{- fail "apiService.replicas > 1 needs an external database (replicas cannot share a SQLite file): set apiService.dbConnectionSecretName (or apiService.dbConnectionString), or replicas=1." -}}
{{- end -}}
{{- if and $v.storage.enabled (ne $v.storage.accessMode "ReadWriteMany") -}}
{{- fail "apiService.replicas > 1 needs storage.accessMode=ReadWriteMany (or storage.enabled=false)." -}}
{{- end -}}
{{- end -}}

{{- if and $v.apiService.config $externalDb -}}
{{- fail "apiService.config must be null when an external database is configured (apiService.dbConnectionSecretName or apiService.dbConnectionString): the config then lives in the database. Install without it, then set it with `skydeck config set FILE` (admins; it uses POST /api/config)." -}}
{{- end -}}

{{- if eq (int $v.apiService.metrics.port) 46580 -}}
{{- fail "apiService.metrics.port must differ from the API port 46580." -}}
{{- end -}}

{{- /* Authentication conflicts (as SkyPilot's chart). */ -}}
{{- if and $v.auth.oauth.enabled $ingressAuthConfigured -}}
{{- fail "auth.oauth.enabled cannot be used together with ingress basic auth: unset ingress.authCredentials and ingress.authSecret, or turn auth.oauth off." -}}
{{- end -}}
{{- if and $v.auth.oauth.enabled $ingressOAuth -}}
{{- fail "auth.oauth.enabled and ingress.oauth2-proxy.enabled both deploy oauth2-proxy: enable only one of them (auth.oauth is the newer name)." -}}
{{- end -}}
{{- if and $v.auth.externalProxy.enabled $v.auth.oauth.enabled -}}
{{- fail "auth.externalProxy.enabled cannot be used together with auth.oauth.enabled: choose one authentication proxy." -}}
{{- end -}}
{{- if and $v.auth.externalProxy.enabled $ingressOAuth -}}
{{- fail "auth.externalProxy.enabled cannot be used together with ingress.oauth2-proxy.enabled: choose one authentication proxy." -}}
{{- end -}}
{{- if and $v.auth.externalProxy.enabled (eq $v.auth.externalProxy.headerFormat "jwt") -}}
{{- fail "auth.externalProxy.headerFormat=jwt is not supported by Skydeck yet: have the proxy send the user name or e-mail in plain text (headerFormat=plaintext)." -}}
{{- end -}}
{{- if and $v.auth.oauth.enabled (not $v.ingress.enabled) -}}
{{- fail "auth.oauth.enabled needs ingress.enabled=true: Skydeck runs oauth2-proxy through the nginx ingress (auth-url annotations)." -}}
{{- end -}}

{{- if $oauth2 -}}
{{- $o := include "skydeck.oauth2Values" . | fromYaml -}}
{{- $key := ternary "auth.oauth" "ingress.oauth2-proxy" (eq (toString $v.auth.oauth.enabled) "true") -}}
{{- if not (index $o "oidc-issuer-url") -}}
{{- fail (printf "%s.oidc-issuer-url is required when %s.enabled is true (e.g. https://YOUR_DOMAIN.okta.com)." $key $key) -}}
{{- end -}}
{{- if and (not (index $o "client-details-from-secret")) (or (not (index $o "client-id")) (not (index $o "client-secret"))) -}}
{{- fail (printf "%s.client-id and %s.client-secret are required when %s.enabled is true, unless %s.client-details-from-secret names a secret holding them." $key $key $key $key) -}}
{{- end -}}
{{- if and (index $o "redis-url") (index $o "redis-secret") -}}
{{- fail (printf "%s.redis-url and %s.redis-secret are mutually exclusive: set only one." $key $key) -}}
{{- end -}}
{{- end -}}

{{- if and (eq (include "skydeck.userManagement" .) "true") (not (include "skydeck.initialBasicAuthSecretName" .)) -}}
{{- fail "apiService.enableUserManagement needs a first admin: set apiService.initialBasicAuthCredentials (an htpasswd line, `htpasswd -nbB USER PASSWORD`) or apiService.initialBasicAuthSecret." -}}
{{- end -}}

{{- if and (or $ingressBasicAuth (eq (include "skydeck.proxyAuth" .) "true")) (not $v.apiService.trustedProxies) -}}
{{- fail "apiService.trustedProxies is empty, so the server would ignore the user name that the ingress or auth proxy passes on: set it to the CIDRs of your ingress controller or proxy pods (e.g. your pod CIDR)." -}}
{{- end -}}

{{- /* The server refuses to listen on 0.0.0.0 without an auth mode. */ -}}
{{- $anyAuth := or (eq (include "skydeck.userManagement" .) "true") (eq (include "skydeck.serviceAccounts" .) "true") $ingressBasicAuth (eq (include "skydeck.proxyAuth" .) "true") -}}
{{- if and (not $anyAuth) (not $v.apiService.insecureNoAuth) -}}
{{- fail "No authentication would be on, and Skydeck refuses to serve a network without it. Turn on at least one of: ingress.authCredentials (or ingress.authSecret) for basic auth on the ingress, apiService.enableUserManagement=true for users with passwords, auth.serviceAccount.enabled=true (or apiService.enableServiceAccounts=true) for tokens, ingress.oauth2-proxy.enabled / auth.oauth.enabled for SSO, auth.externalProxy.enabled for your own auth proxy. Or set apiService.insecureNoAuth=true to serve without any (a network you trust completely)." -}}
{{- end -}}

{{- if and (not $v.rbac.create) (not $v.rbac.serviceAccountName) -}}
{{- fail "rbac.create=false needs rbac.serviceAccountName: the name of an existing ServiceAccount in the release namespace for the API server." -}}
{{- end -}}

{{- if and $v.ingress.nodePortEnabled (not (index $v "ingress-nginx" "enabled")) -}}
{{- fail "ingress.nodePortEnabled=true exposes the bundled ingress-nginx controller, which is off: set ingress-nginx.enabled=true, or expose your own controller." -}}
{{- end -}}
{{- if eq (toString $v.ingress.nodePortEnabled) "<nil>" -}}
{{- $legacy := lookup "v1" "Service" .Release.Namespace (printf "%s-ingress-controller-np" (include "skydeck.fullname" .)) -}}
{{- if $legacy -}}
{{- fail (printf "The NodePort service %s-ingress-controller-np of an earlier install exists, and ingress.nodePortEnabled is not set. Set ingress.nodePortEnabled=true to keep it, or ingress.nodePortEnabled=false to remove it (use ingress-nginx.controller.service.type=NodePort with ingress-nginx.controller.service.nodePorts.http/https instead)." (include "skydeck.fullname" .)) -}}
{{- end -}}
{{- end -}}

{{- if not $v.apiService.skipResourceCheck -}}
{{- $requests := $v.apiService.resources.requests | default dict -}}
{{- $cpu := include "skydeck.cpuMillis" ($requests.cpu | default "0") | int64 -}}
{{- $mem := include "skydeck.memoryMiB" ($requests.memory | default "0") | int64 -}}
{{- if or (lt $cpu 250) (lt $mem 256) -}}
{{- fail (printf "apiService.resources.requests (cpu %v, memory %v) are below what Skydeck needs to run: at least cpu 250m and memory 256Mi (more if jobs run on the local infrastructure inside the pod). Raise apiService.resources.requests.cpu/.memory, or set apiService.skipResourceCheck=true." ($requests.cpu | default "unset") ($requests.memory | default "unset")) -}}
{{- end -}}
{{- end -}}
{{- end -}}
