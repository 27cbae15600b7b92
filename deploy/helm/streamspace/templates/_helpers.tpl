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

{{/* cluster or namespace, validated. */}}
{{- define "streamspace.scope" -}}
{{- $scope := .Values.rbac.scope | default "cluster" }}
{{- if not (has $scope (list "cluster" "namespace")) }}
{{- fail (printf "rbac.scope must be cluster or namespace, not %q" $scope) }}
{{- end }}
{{- $scope }}
{{- end }}

{{/* The namespace served with rbac.scope=namespace; empty with rbac.scope=cluster (all namespaces). */}}
{{- define "streamspace.watchNamespace" -}}
{{- if eq (include "streamspace.scope" .) "namespace" }}
{{- .Values.watchNamespace | default .Release.Namespace }}
{{- end }}
{{- end }}

{{- define "streamspace.catalogNamespace" -}}
{{- .Values.catalog.namespace | default (include "streamspace.watchNamespace" .) | default .Release.Namespace }}
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
NATS settings every service reads (packages/shared/src/nats-connection.ts): the URL, and the
user/password, credentials file and TLS files from Secrets.
*/}}
{{- define "streamspace.natsEnv" -}}
{{- $nats := .Values.nats }}
{{- $keys := $nats.secretKeys }}
{{- if and (or $keys.url $keys.user $keys.password $keys.creds) (not $nats.existingSecret) }}
{{- fail "nats.secretKeys names keys of nats.existingSecret: set nats.existingSecret too" }}
{{- end }}
{{- if and $keys.user (not $keys.password) }}
{{- fail "nats.secretKeys.user needs nats.secretKeys.password" }}
{{- end }}
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
{{- if $keys.user }}
- name: NATS_USER
  valueFrom:
    secretKeyRef:
      name: {{ $nats.existingSecret }}
      key: {{ $keys.user }}
- name: NATS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $nats.existingSecret }}
      key: {{ $keys.password }}
{{- end }}
{{- if $keys.creds }}
- name: NATS_CREDS_FILE
  value: /etc/streamspace/nats-creds/{{ $keys.creds }}
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
{{- if .Values.nats.secretKeys.creds }}
- name: nats-creds
  mountPath: /etc/streamspace/nats-creds
  readOnly: true
{{- end }}
{{- if .Values.nats.tls.existingSecret }}
- name: nats-tls
  mountPath: /etc/streamspace/nats-tls
  readOnly: true
{{- end }}
{{- end }}

{{- define "streamspace.natsVolumes" -}}
{{- if .Values.nats.secretKeys.creds }}
- name: nats-creds
  secret:
    secretName: {{ .Values.nats.existingSecret }}
    defaultMode: 0440
    items:
      - key: {{ .Values.nats.secretKeys.creds }}
        path: {{ .Values.nats.secretKeys.creds }}
{{- end }}
{{- if .Values.nats.tls.existingSecret }}
- name: nats-tls
  secret:
    secretName: {{ .Values.nats.tls.existingSecret }}
    defaultMode: 0440
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
{{- $_ := set $env "EVENTS_MAX_AGE" $v.eventsMaxAge }}
{{- else if eq $component "reconciler" }}
{{- $i := $root.Values.ingress }}{{ $h := $root.Values.home }}
{{- $_ := set $env "INGRESS_DOMAIN" (required "ingress.domain is required" $i.domain) }}
{{- $_ := set $env "INGRESS_HOST_PATTERN" $i.hostPattern }}
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
{{- $_ := set $env "LOCK_TTL" (toString $v.lockTtl) }}
{{- else if eq $component "idle-reaper" }}
{{- $_ := set $env "DEFAULT_IDLE_TIMEOUT" (toString $root.Values.sessions.defaultIdleTimeout) }}
{{- $_ := set $env "DEFAULT_MAX_SESSION_DURATION" (toString $root.Values.sessions.defaultMaxDuration) }}
{{- if $v.activityToken.existingSecret }}
{{- $_ := set $env "ACTIVITY_TOKEN_FILE" (printf "/etc/streamspace/activity-token/%s" $v.activityToken.key) }}
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
# Lists and watches Sessions, Templates and the Deployments and Pods the reconciler created.
- apiGroups: [stream.streamspace.io]
  resources: [sessions, templates]
  verbs: [list, watch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
{{- else if eq $component "reconciler" }}
# Reads the Session and Template of each work item; writes only their status.
- apiGroups: [stream.streamspace.io]
  resources: [sessions, templates]
  verbs: [get]
- apiGroups: [stream.streamspace.io]
  resources: [sessions/status, templates/status]
  verbs: [patch]
# Children carry an owner reference with blockOwnerDeletion, which the
# OwnerReferencesPermissionEnforcement admission plugin allows only to who may update the owner's finalizers.
- apiGroups: [stream.streamspace.io]
  resources: [sessions/finalizers]
  verbs: [update]
# A session's children: read, applied server-side (patch, which creates what is missing), removed when it terminates.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, delete]
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [get, create, patch, delete]
# Home claims outlive sessions: never deleted by StreamSpace.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, create, patch]
# The session's pod tells whether it is Ready, or why not.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
# Events on the Session (each one created anew, never patched).
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- else if eq $component "idle-reaper" }}
# Changes spec.state (hibernated/terminated) with a recorded reason, and status.lastActivity.
- apiGroups: [stream.streamspace.io]
  resources: [sessions]
  verbs: [get, list, watch, patch]
- apiGroups: [stream.streamspace.io]
  resources: [sessions/status]
  verbs: [patch]
# Events on the Session saying why it was hibernated or terminated.
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- else if eq $component "metrics" }}
# Read-only: its gauges come from its own list + watch of Sessions and Templates.
- apiGroups: [stream.streamspace.io]
  resources: [sessions, templates]
  verbs: [list, watch]
{{- end }}
{{- end }}
