/**
 * Who may open a desktop: the annotations that make the ingress controller ask an external
 * authorizer (oauth2-proxy) before it forwards a single request to the desktop. Pure.
 *
 * Shape (ingress-nginx external auth, docs/security.md#desktop-access):
 * - `auth-url`: oauth2-proxy's `/oauth2/auth` with `allowed_emails=<spec.user>,<admins…>`. Per
 *   request oauth2-proxy answers 202 (signed in and listed), 401 (not signed in) or 403 (signed
 *   in as someone else).
 * - `auth-signin`: where a 401 sends the browser, with `rd` back to the desktop's own URL.
 * - `auth-response-headers`: the identity oauth2-proxy vouched for, copied onto the request to the
 *   desktop; nginx sets these from the auth response, replacing whatever the client sent.
 *
 * Why admins are named by identity and not by group: oauth2-proxy v7.15's /oauth2/auth ANDs its
 * query constraints (allowed_groups AND allowed_email_domains AND allowed_emails; each one is an
 * OR over its own comma-separated list). "owner OR member of an admin group" therefore cannot be
 * said in one URL, whereas "owner OR one of these admins" is one allowed_emails list.
 */

/**
 * The characters ingress-nginx accepts in `auth-url` and `auth-signin` while its annotation
 * validation is on (the default since v1.9, `--enable-annotation-validation`): its
 * URLWithNginxVariableRegex, letters, digits, `-._~/:`, `,`, space, `?&=` and `$`. Notably not
 * `@` and not `%`: an email address cannot be written into an auth-url, neither raw nor
 * percent-encoded, and the controller (or its admission webhook) refuses the Ingress.
 */
export const INGRESS_NGINX_URL_CHARACTERS = /^[-._~a-zA-Z0-9/:, ?&=$]*$/;

export interface DesktopAuth {
  /** oauth2-proxy's auth endpoint as the ingress controller reaches it, e.g. http://oauth2-proxy.auth.svc/oauth2/auth. */
  url: string;
  /** Where an unauthenticated browser signs in, e.g. https://auth.example.com/oauth2/start. */
  signinUrl: string;
  /** Identities (as the IdP's email claim says them) allowed into every desktop. */
  adminUsers: readonly string[];
  /** Headers of the auth response passed on to the desktop. */
  responseHeaders: readonly string[];
  /**
   * The ingress controller validates annotation values (ingress-nginx's default): identities must
   * then be written with the characters it accepts, so user names with `@` cannot be authorized.
   */
  annotationValidation: boolean;
}

const NGINX = 'nginx.ingress.kubernetes.io';

/**
 * Why a user name cannot be authorized per request, or undefined when it can. oauth2-proxy splits
 * every allowed_emails value at commas (after URL decoding), so a name with a comma would admit
 * each of its parts: such a Session gets no Ingress at all.
 */
export function unauthorizableUser(user: string, auth?: DesktopAuth): string | undefined {
  if (user.includes(','))
    return `spec.user "${user}" contains a comma, which oauth2-proxy's allowed_emails splits into several users; use the identity the sign-in provider reports`;
  if (user.trim() !== user || user.length === 0)
    return `spec.user "${user}" has leading or trailing spaces, so it can never equal the identity the sign-in provider reports`;
  if (auth?.annotationValidation && !INGRESS_NGINX_URL_CHARACTERS.test(authorizationUrl(auth, user)))
    return `spec.user "${user}" cannot be written into an ingress-nginx auth-url: with annotation validation on, ingress-nginx accepts only letters, digits and - . _ ~ in it (not @ or %); sign users in by a name without them (oauth2-proxy --oidc-email-claim=preferred_username, the API server's --oidc-username-claim to match), or turn ingress-nginx's --enable-annotation-validation off and set the chart value auth.annotationValidation=false (AUTH_ANNOTATION_VALIDATION)`;
  return undefined;
}

/** The auth URL that admits exactly this user and the admins. */
export function authorizationUrl(auth: DesktopAuth, user: string): string {
  const url = new URL(auth.url);
  // Replace any allowed_emails the platform owner wrote into the URL: only ours may decide.
  url.searchParams.delete('allowed_emails');
  // Each identity percent-encoded (a comma inside one becomes %2C, yet oauth2-proxy would still
  // split it: unauthorizableUser refuses those); the separating commas stay raw, which keeps a
  // list of plain names within ingress-nginx's annotation validation.
  const identities = [user, ...auth.adminUsers].map(encodeURIComponent).join(',');
  return `${url.toString()}${url.search ? '&' : '?'}allowed_emails=${identities}`;
}

/**
 * Where a browser without a session is sent: the sign-in URL with `rd` back to this desktop
 * (`$escaped_request_uri` is ingress-nginx's URL-escaped request path and query).
 */
export function signinUrl(auth: DesktopAuth, desktopOrigin: string): string {
  const separator = auth.signinUrl.includes('?') ? '&' : '?';
  return `${auth.signinUrl}${separator}rd=${desktopOrigin}$escaped_request_uri`;
}

/** The annotations of a Session's Ingress that put external auth in front of its desktop. */
export function desktopAuthAnnotations(
  auth: DesktopAuth,
  user: string,
  desktopOrigin: string,
): Record<string, string> {
  return {
    [`${NGINX}/auth-url`]: authorizationUrl(auth, user),
    [`${NGINX}/auth-signin`]: signinUrl(auth, desktopOrigin),
    [`${NGINX}/auth-response-headers`]: auth.responseHeaders.join(','),
  };
}
