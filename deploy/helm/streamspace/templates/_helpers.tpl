{{/* Names, labels and shared pieces of the StreamSpace chart. */}}

{{- define "streamspace.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "streamspace.fullname" -}}
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

{{/*
The four services: name (as in services/<name>), key (in values.yaml) and what they do.
*/}}
{{- define "streamspace.components" -}}
watcher:
  key: watcher
  summary: lists and watches Sessions, Templates and their children; publishes change events and work items
reconciler:
  key: reconciler
  summary: converges Sessions into Deployments, Services, Ingresses and home claims
idle-reaper:
  key: idleReaper
  summary: hibernates idle sessions and terminates those past their maximum duration
metrics:
  key: metrics
  summary: exports the cluster's session state as Prometheus metrics
{{- end }}

{{/* "<fullname>-<component>", at most 63 characters. Call with (list $ "component"). */}}
{{- define "streamspace.componentName" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
{{- printf "%s-%s" (include "streamspace.fullname" $root | trunc (int (sub 62 (len $component)))) $component | trimSuffix "-" }}
{{- end }}

{{- define "streamspace.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "streamspace.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: streamspace
{{- end }}

{{/* Labels of one component's objects. Call with (list $ "component"). */}}
{{- define "streamspace.componentLabels" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
{{ include "streamspace.labels" $root }}
app.kubernetes.io/component: {{ $component }}
{{- end }}

{{/* Selector labels of one component (stable across upgrades). Call with (list $ "component"). */}}
{{- define "streamspace.selectorLabels" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
app.kubernetes.io/name: {{ include "streamspace.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ $component }}
{{- end }}

{{- define "streamspace.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
cluster or namespaces, validated together with the namespaces that host Sessions (docs/security.md,
"Tenancy"): Sessions never live in the release namespace, where the control plane's Secrets and
ServiceAccounts are.
*/}}
{{- define "streamspace.scope" -}}
{{- $scope := .Values.rbac.scope | default "cluster" }}
{{- if eq $scope "namespace" }}
{{- fail (printf "rbac.scope=namespace was replaced by rbac.scope=namespaces: list the namespaces that host Sessions in sessionNamespaces (never the release namespace, %s)" .Release.Namespace) }}
{{- end }}
{{- if not (has $scope (list "cluster" "namespaces")) }}
{{- fail (printf "rbac.scope must be cluster or namespaces, not %q" $scope) }}
{{- end }}
{{- if .Values.watchNamespace }}
{{- fail (printf "watchNamespace was replaced by sessionNamespaces (with rbac.scope=namespaces): set sessionNamespaces={%s}" .Values.watchNamespace) }}
{{- end }}
{{- if .Values.rbac.aggregateToDefaultRoles }}
{{- fail "rbac.aggregateToDefaultRoles was removed: it gave everyone with the built-in edit or admin role all rights on Sessions, in any namespace. Bind the chart's user role instead (kubectl create rolebinding ... --clusterrole=<release>-streamspace-user; docs/deploy.md)" }}
{{- end }}
{{- if and (eq $scope "namespaces") (empty .Values.sessionNamespaces) }}
{{- fail "rbac.scope=namespaces needs the namespaces that host Sessions: set sessionNamespaces, e.g. {desktops}" }}
{{- end }}
{{- range $namespace := .Values.sessionNamespaces }}
{{- if eq $namespace $.Release.Namespace }}
{{- fail (printf "sessionNamespaces must not hold the release namespace %s: whoever may create Sessions there could read the control plane's Secrets and run pods as its ServiceAccounts. Install StreamSpace in a namespace of its own and list the users' namespaces" $namespace) }}
{{- end }}
{{- end }}
{{- $scope }}
{{- end }}

{{/*
The namespaces served with rbac.scope=namespaces, comma-separated (WATCH_NAMESPACE: every service
watches only those); empty with rbac.scope=cluster (all namespaces).
*/}}
{{- define "streamspace.watchNamespace" -}}
{{- if eq (include "streamspace.scope" .) "namespaces" }}
{{- join "," .Values.sessionNamespaces }}
{{- end }}
{{- end }}

{{/* The namespaces the catalog's Templates go to, comma-separated (catalog.namespace, else sessionNamespaces). */}}
{{- define "streamspace.catalogNamespaces" -}}
{{- $namespaces := ternary (list .Values.catalog.namespace) .Values.sessionNamespaces (not (empty .Values.catalog.namespace)) }}
{{- if has .Release.Namespace $namespaces }}
{{- fail (printf "catalog.namespace must not be the release namespace %s: Sessions use the Templates of their own namespace, and Sessions are not served where the control plane runs. Set sessionNamespaces (or catalog.namespace) to the users' namespaces" .Release.Namespace) }}
{{- end }}
{{- join "," $namespaces }}
{{- end }}

{{/*
ingress.hostPattern, validated like the reconciler's INGRESS_HOST_PATTERN
(services/reconciler/src/host-pattern.ts): {session} and {namespace} each a whole DNS label, and
{namespace} left out only when exactly one namespace is served.
*/}}
{{- define "streamspace.hostPattern" -}}
{{- $pattern := .Values.ingress.hostPattern }}
{{- $labels := splitList "." $pattern }}
{{- range $placeholder := list "{session}" "{namespace}" "{domain}" }}
{{- $count := sub (len (splitList $placeholder $pattern)) 1 }}
{{- if gt $count 1 }}
{{- fail (printf "ingress.hostPattern %q: %s may appear only once" $pattern $placeholder) }}
{{- end }}
{{- if and (eq $count 1) (not (has $placeholder $labels)) }}
{{- fail (printf "ingress.hostPattern %q: %s must be a whole DNS label, between dots (e.g. {session}.{namespace}.{domain}); otherwise two different sessions can get the same host (a-b in namespace c and a in namespace b-c both give a-b-c)" $pattern $placeholder) }}
{{- end }}
{{- end }}
{{- if not (has "{session}" $labels) }}
{{- fail (printf "ingress.hostPattern %q must contain {session} as a whole DNS label (e.g. {session}.{namespace}.{domain})" $pattern) }}
{{- end }}
{{- $single := and (eq (include "streamspace.scope" .) "namespaces") (eq (len .Values.sessionNamespaces) 1) }}
{{- if and (not (has "{namespace}" $labels)) (not $single) }}
{{- fail (printf "ingress.hostPattern %q must contain {namespace} as a whole DNS label (e.g. {session}.{namespace}.{domain}) unless StreamSpace serves exactly one namespace (rbac.scope=namespaces and one entry in sessionNamespaces): otherwise a Session in one namespace can take the host of a Session of the same name in another" $pattern) }}
{{- end }}
{{- range $label := $labels }}
{{- if and (not (has $label (list "{session}" "{namespace}" "{domain}"))) (not (regexMatch "^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$" $label)) }}
{{- fail (printf "ingress.hostPattern %q: %q is not a DNS label (lower-case letters, digits and -; only {session}, {namespace} and {domain} are replaced)" $pattern $label) }}
{{- end }}
{{- end }}
{{- $pattern }}
{{- end }}

{{/* The values of one component merged over the chart-wide pod defaults. Call with (list $ "component"). */}}
{{- define "streamspace.componentValues" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
{{- $key := (index (include "streamspace.components" $root | fromYaml) $component).key }}
{{- $own := index $root.Values $key }}
{{- $merged := dict }}
{{- range $field := list "resources" "nodeSelector" "tolerations" "affinity" "podAnnotations" "podLabels" "priorityClassName" "nodeArgs" }}
{{- $value := index $own $field }}
{{- $_ := set $merged $field (ternary $value (index $root.Values $field) (not (empty $value))) }}
{{- end }}
{{- toYaml (merge $merged $own) }}
{{- end }}

{{/*
NATS settings every service reads (packages/shared/src/nats-connection.ts): the URL, the
service's own NATS user (nats.auth: one user per service, with only the permissions its code
needs, docs/security.md "NATS: one user per service"), and TLS files from Secrets. A release
without NATS authentication is refused unless nats.insecure is true; one credential shared by
every service only with nats.sharedCredentials. Call with (list $ "component").
*/}}
{{- define "streamspace.natsAuth" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
{{- $nats := $root.Values.nats }}
{{- $keys := $nats.secretKeys }}
{{- $key := (index (include "streamspace.components" $root | fromYaml) $component).key }}
{{- $own := index ($nats.auth | default dict) $key | default dict }}
{{- $secret := $own.existingSecret | default ($nats.auth.existingSecret | default "") }}
{{- if and $secret (or $own.passwordKey $own.credsKey) }}
{{- if and $own.passwordKey (not $own.credsKey) (not $own.user) }}
{{- fail (printf "nats.auth.%s.user is required with passwordKey (the NATS user name, e.g. streamspace-%s)" $key $component) }}
{{- end }}
{{- toYaml (dict "mode" "own" "secret" $secret "user" ($own.user | default "") "passwordKey" ($own.passwordKey | default "") "credsKey" ($own.credsKey | default "")) }}
{{- else if and $nats.sharedCredentials (or $keys.user $keys.creds) }}
{{- toYaml (dict "mode" "shared" "secret" $nats.existingSecret "userKey" ($keys.user | default "") "passwordKey" ($keys.password | default "") "credsKey" ($keys.creds | default "")) }}
{{- else if or $keys.user $keys.creds }}
{{- fail (printf "nats.secretKeys.user/creds give every service one shared NATS credential, which lets the metrics pod terminate every session. Give each service its own user (nats.auth.existingSecret and nats.auth.%s; scripts/nats-auth prints the NATS server's side), or set nats.sharedCredentials=true to keep the shared credential knowingly." $key) }}
{{- else if $nats.insecure }}
{{- toYaml (dict "mode" "none") }}
{{- else }}
{{- fail (printf "NATS authentication is not configured for the %s: anyone who reaches NATS could then terminate every session or delete the streams. Set nats.auth.existingSecret (a Secret with each service's NATS password; users and permissions from scripts/nats-auth, see docs/security.md), or set nats.insecure=true to install without NATS authentication (a throwaway cluster only)." $component) }}
{{- end }}
{{- end }}

{{- define "streamspace.natsEnv" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
{{- $nats := $root.Values.nats }}
{{- $keys := $nats.secretKeys }}
{{- if and (or $keys.url $keys.user $keys.password $keys.creds) (not $nats.existingSecret) }}
{{- fail "nats.secretKeys names keys of nats.existingSecret: set nats.existingSecret too" }}
{{- end }}
{{- if and $keys.user (not $keys.password) }}
{{- fail "nats.secretKeys.user needs nats.secretKeys.password" }}
{{- end }}
{{- $auth := include "streamspace.natsAuth" . | fromYaml }}
{{- if $keys.url }}
- name: NATS_URL
  valueFrom:
    secretKeyRef:
      name: {{ $nats.existingSecret }}
      key: {{ $keys.url }}
{{- else }}
- name: NATS_URL
  value: {{ required "nats.url is required (or nats.existingSecret with secretKeys.url)" $nats.url | quote }}
{{- end }}
{{- if and (eq $auth.mode "own") $auth.passwordKey (not $auth.credsKey) }}
# This service's own NATS user: it may do what the service does and nothing else.
- name: NATS_USER
  value: {{ $auth.user | quote }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $auth.secret }}
      key: {{ $auth.passwordKey }}
{{- else if and (eq $auth.mode "shared") $auth.userKey }}
- name: NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ $auth.secret }}
      key: {{ $auth.userKey }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $auth.secret }}
      key: {{ $auth.passwordKey }}
{{- end }}
{{- if $auth.credsKey }}
- name: NATS_CREDS_FILE
  value: /etc/streamspace/nats-creds/{{ $auth.credsKey }}
{{- end }}
{{- if $nats.tls.existingSecret }}
{{- if $nats.tls.caKey }}
- name: NATS_TLS_CA
  value: /etc/streamspace/nats-tls/{{ $nats.tls.caKey }}
{{- end }}
{{- if and $nats.tls.certKey $nats.tls.keyKey }}
- name: NATS_TLS_CERT
  value: /etc/streamspace/nats-tls/{{ $nats.tls.certKey }}
- name: NATS_TLS_KEY
  value: /etc/streamspace/nats-tls/{{ $nats.tls.keyKey }}
{{- else if or $nats.tls.certKey $nats.tls.keyKey }}
{{- fail "nats.tls.certKey and nats.tls.keyKey go together (mutual TLS)" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "streamspace.natsVolumeMounts" -}}
{{- $root := index . 0 }}
{{- $auth := include "streamspace.natsAuth" . | fromYaml }}
{{- if $auth.credsKey }}
- name: nats-creds
  mountPath: /etc/streamspace/nats-creds
  readOnly: true
{{- end }}
{{- if $root.Values.nats.tls.existingSecret }}
- name: nats-tls
  mountPath: /etc/streamspace/nats-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "streamspace.natsVolumes" -}}
{{- $root := index . 0 }}
{{- $auth := include "streamspace.natsAuth" . | fromYaml }}
{{- if $auth.credsKey }}
- name: nats-creds
  secret:
    secretName: {{ $auth.secret }}
    defaultMode: 0440
    items:
      - key: {{ $auth.credsKey }}
        path: {{ $auth.credsKey }}
{{- end }}
{{- if $root.Values.nats.tls.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ $root.Values.nats.tls.existingSecret }}
    defaultMode: 0440
{{- end }}
{{- end }}

{{/*
A resource list as `name=quantity,...` (sorted by name), e.g. cpu=4,memory=8Gi: the form of
SESSION_MAX_REQUESTS / SESSION_MAX_LIMITS.
*/}}
{{- define "streamspace.resourceCeiling" -}}
{{- $entries := list }}
{{- range $name, $quantity := . }}{{ $entries = append $entries (printf "%s=%v" $name $quantity) }}{{ end }}
{{- join "," $entries }}
{{- end }}

{{/* The Secret holding the key of per-session activity tokens (the user's, or the chart's). */}}
{{- define "streamspace.activityKeySecret" -}}
{{- .Values.activityAgent.keySecret.existingSecret | default (printf "%s-activity-key" (include "streamspace.fullname" .)) }}
{{- end }}

{{/* Where activity agents in session pods reach the idle reaper's POST /activity. */}}
{{- define "streamspace.activityUrl" -}}
{{- .Values.activityAgent.url | default (printf "http://%s.%s:%v/activity" (include "streamspace.componentName" (list . "idle-reaper")) .Release.Namespace .Values.idleReaper.port) }}
{{- end }}

{{/*
The milliseconds of a duration value that values.schema.json has let through (DURATION_PATTERN:
h, m, s and ms parts, or 0). "ms" comes before "m" in the alternation, which RE2 tries in order.
*/}}
{{- define "streamspace.durationMs" -}}
{{- $ms := 0 }}
{{- range regexFindAll "[0-9]+(h|ms|m|s)" (toString .) -1 }}
{{- if hasSuffix "ms" . }}{{ $ms = add $ms (trimSuffix "ms" . | atoi) }}
{{- else if hasSuffix "h" . }}{{ $ms = add $ms (mul (trimSuffix "h" . | atoi) 3600000) }}
{{- else if hasSuffix "m" . }}{{ $ms = add $ms (mul (trimSuffix "m" . | atoi) 60000) }}
{{- else }}{{ $ms = add $ms (mul (trimSuffix "s" . | atoi) 1000) }}{{ end }}
{{- end }}
{{- $ms }}
{{- end }}

{{/*
Fails unless a duration is at least the shortest its service takes (the minimum of its env.durationMs
in the service's config schema; 0 too where that turns the setting off), so that helm says so, naming
the value, instead of a pod that refuses to start. Call with (list value "minimum" "values.path" zeroAllowed).
*/}}
{{- define "streamspace.requireDurationAtLeast" -}}
{{- $value := index . 0 }}{{ $minimum := index . 1 }}{{ $path := index . 2 }}{{ $zeroAllowed := index . 3 }}
{{- $ms := include "streamspace.durationMs" $value | atoi }}
{{- if and (lt $ms (include "streamspace.durationMs" $minimum | atoi)) (not (and $zeroAllowed (eq $ms 0))) }}
{{- fail (printf "%s=%v is too short: it must be at least %s%s" $path $value $minimum (ternary " (or 0 to turn it off)" "" $zeroAllowed)) }}
{{- end }}
{{- end }}

{{/*
The non-secret environment of one component, as a map (the data of its ConfigMap). Names match
each service's zod config schema. Call with (list $ "component").
*/}}
{{- define "streamspace.componentConfig" -}}
{{- $root := index . 0 }}{{- $component := index . 1 -}}
{{- $v := include "streamspace.componentValues" (list $root $component) | fromYaml }}
{{- $env := dict "LOG_LEVEL" $root.Values.logLevel "HTTP_HOST" "0.0.0.0" "HTTP_PORT" (toString $v.port) }}
{{- with $root.Values.nodeOptions }}{{ $_ := set $env "NODE_OPTIONS" . }}{{ end }}
{{- with include "streamspace.watchNamespace" $root }}{{ $_ := set $env "WATCH_NAMESPACE" . }}{{ end }}
{{- if eq $component "watcher" }}
{{- $_ := set $env "RESYNC_INTERVAL" $v.resyncInterval }}
{{- include "streamspace.requireDurationAtLeast" (list $v.resyncInterval "1s" "watcher.resyncInterval" true) }}
{{- /* The watcher declares the work partition consumers (no other NATS user may), so it sets how many and their pin timeout; the reconcilers read both from NATS. */}}
{{- $_ := set $env "WORK_PARTITIONS" (toString (int $root.Values.reconciler.partitions)) }}
{{- $_ := set $env "PIN_TIMEOUT" (toString $root.Values.reconciler.pinTimeout) }}
{{- include "streamspace.requireDurationAtLeast" (list $root.Values.reconciler.pinTimeout "3s" "reconciler.pinTimeout" false) }}
{{- /* ... and the replica count of everything it declares. */}}
{{- $_ := set $env "NATS_REPLICAS" (toString (default "auto" $root.Values.nats.replicas)) }}
{{- $_ := set $env "EVENTS_MAX_AGE" $v.eventsMaxAge }}
{{- include "streamspace.requireDurationAtLeast" (list $v.eventsMaxAge "1s" "watcher.eventsMaxAge" true) }}
{{- $_ := set $env "EVENT_KINDS" $v.eventKinds }}
{{- $_ := set $env "MAX_OBJECT_BYTES" (toString (int $v.maxObjectBytes)) }}
{{- $_ := set $env "WATCH_TIMEOUT" (toString $v.watch.timeout) }}
{{- $_ := set $env "WATCH_SILENCE_TIMEOUT" (toString $v.watch.silenceTimeout) }}
{{- $_ := set $env "WATCH_ANSWER_TIMEOUT" (toString $v.watch.answerTimeout) }}
{{- include "streamspace.requireDurationAtLeast" (list $v.watch.timeout "1s" "watcher.watch.timeout" false) }}
{{- include "streamspace.requireDurationAtLeast" (list $v.watch.silenceTimeout "100ms" "watcher.watch.silenceTimeout" false) }}
{{- include "streamspace.requireDurationAtLeast" (list $v.watch.answerTimeout "100ms" "watcher.watch.answerTimeout" false) }}
{{- $_ := set $env "LIST_PAGE_SIZE" (toString (int $v.list.pageSize)) }}
{{- $_ := set $env "LIST_CONCURRENCY" (toString (int $v.list.concurrency)) }}
{{- $_ := set $env "EVENTS_MAX_BYTES" (toString (int64 $v.streams.eventsMaxBytes)) }}
{{- $_ := set $env "WORK_MAX_BYTES" (toString (int64 $v.streams.workMaxBytes)) }}
{{- $_ := set $env "DEAD_LETTER_MAX_BYTES" (toString (int64 $v.streams.deadLetterMaxBytes)) }}
{{- else if eq $component "reconciler" }}
{{- $i := $root.Values.ingress }}{{ $h := $root.Values.home }}
{{- $_ := set $env "INGRESS_DOMAIN" (required "ingress.domain is required" $i.domain) }}
{{- $_ := set $env "INGRESS_HOST_PATTERN" (include "streamspace.hostPattern" $root) }}
{{- $_ := set $env "CONTROL_PLANE_NAMESPACE" $root.Release.Namespace }}
{{- with $i.className }}{{ $_ := set $env "INGRESS_CLASS" . }}{{ end }}
{{- with $i.tlsSecret }}{{ $_ := set $env "INGRESS_TLS_SECRET" . }}{{ end }}
{{- $tls := or $i.tlsSecret $i.tls.enabled $i.tls.clusterIssuer }}
{{- $_ := set $env "INGRESS_TLS" (toString (not (not $tls))) }}
{{- with $i.tls.clusterIssuer }}{{ $_ := set $env "INGRESS_CLUSTER_ISSUER" . }}{{ end }}
{{- $a := $root.Values.auth }}
{{- if $a.enabled }}
{{- $_ := set $env "AUTH_URL" (required "auth.url is required with auth.enabled (oauth2-proxy's /oauth2/auth, e.g. http://oauth2-proxy.oauth2-proxy.svc.cluster.local/oauth2/auth); auth.enabled=false serves desktops without sign-in" $a.url) }}
{{- $_ := set $env "AUTH_SIGNIN_URL" ($a.signinUrl | default (printf "%s://auth.%s/oauth2/start" (ternary "https" "http" (not (not $tls))) $i.domain)) }}
{{- with $a.adminUsers }}{{ $_ := set $env "AUTH_ADMIN_USERS" (join "," .) }}{{ end }}
{{- $_ := set $env "AUTH_ANNOTATION_VALIDATION" (toString $a.annotationValidation) }}
{{- if $a.annotationValidation }}{{ range $a.adminUsers }}{{ if not (regexMatch "^[-._~a-zA-Z0-9]+$" .) }}
{{- fail (printf "auth.adminUsers: %q cannot be written into an ingress-nginx auth-url while its annotation validation is on (letters, digits and - . _ ~ only); name admins that way, or set auth.annotationValidation=false with ingress-nginx's --enable-annotation-validation=false" .) }}
{{- end }}{{ end }}{{ end }}
{{- with $a.responseHeaders }}{{ $_ := set $env "AUTH_RESPONSE_HEADERS" (join "," .) }}{{ end }}
{{- end }}
{{- $d := $root.Values.desktops }}
{{- $_ := set $env "DESKTOP_NETWORK_POLICY" (toString $d.networkPolicy.enabled) }}
{{- if $d.networkPolicy.enabled }}{{ $_ := set $env "DESKTOP_INGRESS_FROM" (toJson $d.networkPolicy.ingressFrom) }}{{ end }}
{{- $_ := set $env "DESKTOP_ALLOWED_CAPABILITIES" (join "," $d.allowedCapabilities | default "none") }}
{{- with $h.storageClass }}{{ $_ := set $env "HOME_STORAGE_CLASS" . }}{{ end }}
{{- $_ := set $env "HOME_STORAGE_SIZE" (toString $h.size) }}
{{- $_ := set $env "HOME_ACCESS_MODE" $h.accessMode }}
{{- $_ := set $env "STARTUP_DEADLINE" (toString $root.Values.sessions.startupDeadline) }}
{{- $_ := set $env "WORKER_CONCURRENCY" (toString $v.workerConcurrency) }}
{{- $_ := set $env "MAX_ATTEMPTS" (toString $v.maxAttempts) }}
{{- $_ := set $env "SESSION_MAX_REQUESTS" (include "streamspace.resourceCeiling" $root.Values.sessions.limits.maxRequests) }}
{{- $_ := set $env "SESSION_MAX_LIMITS" (include "streamspace.resourceCeiling" $root.Values.sessions.limits.maxLimits) }}
{{- if $root.Values.activityAgent.enabled }}
{{- $_ := set $env "ACTIVITY_AGENT_IMAGE" (include "streamspace.image" $root) }}
{{- $_ := set $env "ACTIVITY_AGENT_URL" (include "streamspace.activityUrl" $root) }}
{{- $_ := set $env "ACTIVITY_AGENT_NODE_ARGS" $root.Values.activityAgent.nodeArgs }}
{{- $_ := set $env "ACTIVITY_SESSION_KEY_FILE" (printf "/etc/streamspace/activity-key/%s" $root.Values.activityAgent.keySecret.key) }}
{{- end }}
{{- else if eq $component "idle-reaper" }}
{{- $_ := set $env "DEFAULT_IDLE_TIMEOUT" (toString $root.Values.sessions.defaultIdleTimeout) }}
{{- $_ := set $env "DEFAULT_MAX_SESSION_DURATION" (toString $root.Values.sessions.defaultMaxDuration) }}
{{- $_ := set $env "REAPER_OPT_OUT_ALLOWED" (toString $root.Values.sessions.limits.allowReaperOptOut) }}
{{- $_ := set $env "MAX_IDLE_TIMEOUT" (toString $root.Values.sessions.limits.maxIdleTimeout) }}
{{- $_ := set $env "MAX_SESSION_DURATION" (toString $root.Values.sessions.limits.maxDuration) }}
{{- $_ := set $env "LAST_ACTIVITY_WRITE_INTERVAL" (toString $v.lastActivityWriteInterval) }}
{{- $_ := set $env "ACTIVITY_FLUSH_INTERVAL" (toString $v.activityFlushInterval) }}
{{- $_ := set $env "REAPER_MEMBER_TTL" (toString $v.memberTtl) }}
{{- include "streamspace.requireDurationAtLeast" (list $v.lastActivityWriteInterval "100ms" "idleReaper.lastActivityWriteInterval" false) }}
{{- include "streamspace.requireDurationAtLeast" (list $v.activityFlushInterval "100ms" "idleReaper.activityFlushInterval" false) }}
{{- include "streamspace.requireDurationAtLeast" (list $v.memberTtl "1s" "idleReaper.memberTtl" false) }}
{{- $_ := set $env "EXECUTOR_CONCURRENCY" (toString (int $v.executorConcurrency)) }}
{{- $_ := set $env "KUBE_MAX_CONNECTIONS" (toString (int $v.kubeMaxConnections)) }}
{{- if $v.activityToken.existingSecret }}
{{- $_ := set $env "ACTIVITY_TOKEN_FILE" (printf "/etc/streamspace/activity-token/%s" $v.activityToken.key) }}
{{- end }}
{{- if $root.Values.activityAgent.enabled }}
{{- $_ := set $env "ACTIVITY_SESSION_KEY_FILE" (printf "/etc/streamspace/activity-key/%s" $root.Values.activityAgent.keySecret.key) }}
{{- end }}
{{- else if eq $component "metrics" }}
{{- $_ := set $env "METRICS_USER_LABEL" (toString $v.userLabel) }}
{{- if $root.Values.watcher.enabled }}
{{- $_ := set $env "WATCHER_READY_URL" (printf "http://%s:%v/readyz" (include "streamspace.componentName" (list $root "watcher")) $root.Values.watcher.port) }}
{{- end }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/*
The API access each service needs, and nothing more (verified by test/integration/rbac.test.ts
against each service's code). Call with (list $ "component"); returns a YAML list of rules.
*/}}
{{- define "streamspace.rules" -}}
{{- $component := index . 1 -}}
{{- if eq $component "watcher" }}
# The only reader of the API server: lists and watches Sessions, Templates and every kind a
# Session's children are made of (and home claims), and shares what it sees over NATS.
- apiGroups: [stream.streamspace.io]
  resources: [sessions, templates]
  verbs: [list, watch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods, services, persistentvolumeclaims]
  verbs: [list, watch]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [list, watch]
{{- else if eq $component "reconciler" }}
# Reads nothing from the API server (the shared state on NATS answers its reads); writes the
# status of Sessions and Templates.
- apiGroups: [stream.streamspace.io]
  resources: [sessions/status, templates/status]
  verbs: [patch]
# Children carry an owner reference with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only to who may update the owner's finalizers.
- apiGroups: [stream.streamspace.io]
  resources: [sessions/finalizers]
  verbs: [update]
# A session's children: applied server-side (patch, which creates what is missing), removed when it terminates.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [create, patch, delete]
# Home claims outlive sessions: never deleted by StreamSpace.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [create, patch]
{{- if (index . 0).Values.activityAgent.enabled }}
# Each session's activity token, in a Secret the Session owns (applied, never read).
- apiGroups: [""]
  resources: [secrets]
  verbs: [create, patch]
{{- end }}
# Events on the Session (each one created anew, never patched).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- else if eq $component "idle-reaper" }}
# Changes spec.state (hibernated/terminated) with a recorded reason, and status.lastActivity;
# reads the Session once more before it acts. Follows Sessions through the shared state on NATS.
- apiGroups: [stream.streamspace.io]
  resources: [sessions]
  verbs: [get, patch]
- apiGroups: [stream.streamspace.io]
  resources: [sessions/status]
  verbs: [patch]
# Events on the Session saying why it was hibernated or terminated.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- else if eq $component "metrics" }}
# Nothing: its gauges come from the shared state on NATS, which the watcher keeps.
[]
{{- end }}
{{- end }}
