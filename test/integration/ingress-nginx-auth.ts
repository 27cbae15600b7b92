import { createHash } from 'node:crypto';
import type { V1Ingress } from '@kubernetes/client-node';
import { INGRESS_NGINX_URL_CHARACTERS } from '../../services/reconciler/src/desktop-access.js';

/**
 * Turns a Session's Ingress, as the reconciler wrote it to the API server, into the nginx
 * configuration ingress-nginx would run for it, so a test can put a real nginx with the real
 * annotations in front of a desktop. It follows ingress-nginx's template (rootfs/etc/nginx/
 * template/nginx.tmpl) for external auth:
 *
 * - an internal location per auth URL that nginx's auth_request calls with the client's headers
 *   and without its body, passing the original URL and method;
 * - in the desktop's location: `auth_request` to it; each `auth-response-headers` header copied
 *   from the auth answer onto the request to the desktop (`proxy_set_header`, which replaces the
 *   client's own header, and drops it when the answer has none); the answer's Set-Cookie passed
 *   back; 401 answered by a 302 to `auth-signin`; 403 (and any other refusal) returned as is;
 * - websocket upgrade (`Upgrade`/`Connection`) and the proxy timeouts from the annotations.
 *
 * Like ingress-nginx with its annotation validation on (its default), the auth URLs must pass
 * its URL check, or the Ingress is refused here as there.
 *
 * One difference: ingress-nginx defines `$escaped_request_uri` with set_escape_uri (a module
 * Debian's nginx lacks); here it is `$request_uri`, the same for the paths tests use.
 */

const NGINX = 'nginx.ingress.kubernetes.io';

export interface IngressRendering {
  /** The server block of the Ingress's host. */
  server: string;
  host: string;
}

/** nginx quotes no `$`: a value holding one would be read as a variable, so refuse it. */
function quoted(value: string): string {
  if (/["\\\n]/.test(value)) throw new Error(`cannot put ${JSON.stringify(value)} in an nginx string`);
  return `"${value}"`;
}

/**
 * The server block for one Ingress rule. `backend` is where its Service's endpoints are
 * (host:port); with `withAuth: false` the annotations' external auth is left out (the baseline of
 * the latency measurement).
 */
export function renderIngressServer(
  ingress: V1Ingress,
  options: { listen: number; backend: string; withAuth?: boolean },
): IngressRendering {
  const annotations = ingress.metadata?.annotations ?? {};
  const rule = ingress.spec?.rules?.[0];
  const host = rule?.host;
  if (!host) throw new Error(`Ingress ${ingress.metadata?.name} has no host`);
  for (const key of ['auth-url', 'auth-signin']) {
    const value = annotations[`${NGINX}/${key}`];
    if (value !== undefined && !INGRESS_NGINX_URL_CHARACTERS.test(value))
      throw new Error(`ingress-nginx's annotation validation refuses ${NGINX}/${key}: ${value}`);
  }
  const authUrl = options.withAuth === false ? undefined : annotations[`${NGINX}/auth-url`];
  const signin = annotations[`${NGINX}/auth-signin`]?.replaceAll('$escaped_request_uri', '$request_uri');
  const responseHeaders = (annotations[`${NGINX}/auth-response-headers`] ?? '')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean);
  const readTimeout = annotations[`${NGINX}/proxy-read-timeout`] ?? '60';
  const sendTimeout = annotations[`${NGINX}/proxy-send-timeout`] ?? '60';
  const authPath = `/_external-auth-${createHash('sha1')
    .update(`${host}/`)
    .digest('hex')
    .slice(0, 16)}-Prefix`;
  const signinLocation = `@${authPath.slice(1)}-signin`;

  const lines: string[] = [];
  lines.push(`server {`, `  listen 127.0.0.1:${options.listen};`, `  server_name ${host};`);
  if (authUrl) {
    const target = new URL(authUrl);
    lines.push(
      `  location = ${authPath} {`,
      '    internal;',
      '    proxy_pass_request_body off;',
      '    proxy_set_header Content-Length "";',
      '    proxy_set_header X-Forwarded-Proto "";',
      `    proxy_set_header Host ${quoted(target.host)};`,
      '    proxy_set_header X-Original-URL $scheme://$http_host$request_uri;',
      '    proxy_set_header X-Original-Method $request_method;',
      '    proxy_set_header X-Sent-From "nginx-ingress-controller";',
      '    proxy_set_header X-Real-IP $remote_addr;',
      '    proxy_set_header X-Forwarded-For $remote_addr;',
      '    proxy_set_header X-Auth-Request-Redirect $request_uri;',
      '    proxy_http_version 1.1;',
      '    proxy_pass_request_headers on;',
      `    set $target ${quoted(authUrl)};`,
      '    proxy_pass $target;',
      '  }',
    );
    if (signin)
      lines.push(
        `  location ${signinLocation} {`,
        '    internal;',
        '    add_header Set-Cookie $auth_cookie;',
        `    return 302 ${quoted(signin)};`,
        '  }',
      );
  }
  lines.push('  location / {');
  if (authUrl) {
    lines.push(
      `    auth_request ${authPath};`,
      '    auth_request_set $auth_cookie $upstream_http_set_cookie;',
      '    add_header Set-Cookie $auth_cookie;',
    );
    responseHeaders.forEach((header, i) => {
      const variable = `$upstream_http_${header.toLowerCase().replaceAll('-', '_')}`;
      lines.push(
        `    auth_request_set $authHeader${i} ${variable};`,
        `    proxy_set_header '${header}' $authHeader${i};`,
      );
    });
    if (signin) lines.push(`    error_page 401 = ${signinLocation};`);
  }
  lines.push(
    '    proxy_set_header Host $host;',
    '    proxy_set_header Upgrade $http_upgrade;',
    '    proxy_set_header Connection $connection_upgrade;',
    '    proxy_set_header X-Real-IP $remote_addr;',
    '    proxy_set_header X-Forwarded-For $remote_addr;',
    '    proxy_set_header X-Forwarded-Host $host;',
    '    proxy_set_header X-Forwarded-Proto $scheme;',
    '    proxy_http_version 1.1;',
    `    proxy_read_timeout ${readTimeout}s;`,
    `    proxy_send_timeout ${sendTimeout}s;`,
    `    proxy_pass http://${options.backend};`,
    '  }',
    '}',
  );
  return { server: lines.join('\n'), host };
}

/** A plain reverse-proxy server block (e.g. oauth2-proxy's own Ingress at auth.<domain>). */
export function renderProxyServer(host: string, listen: number, backend: string): string {
  return [
    'server {',
    `  listen 127.0.0.1:${listen};`,
    `  server_name ${host};`,
    '  location / {',
    '    proxy_set_header Host $host;',
    '    proxy_set_header X-Real-IP $remote_addr;',
    '    proxy_set_header X-Forwarded-For $remote_addr;',
    '    proxy_set_header X-Forwarded-Proto $scheme;',
    '    proxy_set_header X-Forwarded-Host $host;',
    `    proxy_pass http://${backend};`,
    '  }',
    '}',
  ].join('\n');
}

/** A whole nginx.conf around some server blocks, every file it writes under `dir`. */
export function nginxConfig(dir: string, servers: string[]): string {
  return [
    'daemon off;',
    'worker_processes 1;',
    `pid ${dir}/nginx.pid;`,
    `error_log ${dir}/error.log warn;`,
    'events { worker_connections 1024; }',
    'http {',
    '  access_log off;',
    `  client_body_temp_path ${dir}/client_body;`,
    `  proxy_temp_path ${dir}/proxy;`,
    `  fastcgi_temp_path ${dir}/fastcgi;`,
    `  uwsgi_temp_path ${dir}/uwsgi;`,
    `  scgi_temp_path ${dir}/scgi;`,
    // As ingress-nginx: keep the upgrade for websockets, close otherwise.
    '  map $http_upgrade $connection_upgrade { default upgrade; "" close; }',
    // oauth2-proxy's session cookies exceed nginx's default 4k header buffers.
    '  proxy_buffer_size 16k;',
    '  proxy_buffers 8 16k;',
    '  large_client_header_buffers 4 16k;',
    ...servers.map((s) => s.replace(/^/gm, '  ')),
    '}',
    '',
  ].join('\n');
}
