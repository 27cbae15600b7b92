import { execFile } from 'node:child_process';
import { isAbsolute, join } from 'node:path';

/**
 * A kubeconfig `user.exec` entry: a credential plugin (aws eks get-token, gke-gcloud-auth-plugin,
 * kubelogin, …) run as a child process that prints an ExecCredential. Same contract as client-go's
 * plugin/pkg/client/auth/exec: KUBERNETES_EXEC_INFO in the environment, the answer on stdout, the
 * credential cached until its expirationTimestamp (or until the API server answers 401).
 */
export interface ExecConfig {
  apiVersion?: string;
  command: string;
  args?: string[];
  env?: { name: string; value: string }[] | null;
  interactiveMode?: string;
  provideClusterInfo?: boolean;
}

export interface ExecResult {
  token?: string;
  cert?: Buffer;
  key?: Buffer;
  /** Epoch ms; undefined: valid until the API server refuses it. */
  expiresAt?: number;
}

const SUPPORTED = ['client.authentication.k8s.io/v1', 'client.authentication.k8s.io/v1beta1'];
/** Fetch a new credential this long before the old one expires: a request must not leave with a token about to lapse. */
const EXPIRY_MARGIN_MS = 10_000;

interface ClusterInfo {
  server: string;
  caData?: string;
  insecure?: boolean;
}

export class ExecCredentialPlugin {
  private cached: ExecResult | undefined;
  private pending: Promise<ExecResult> | undefined;

  constructor(
    private readonly config: ExecConfig,
    /** The kubeconfig's directory: a relative command path is resolved against it, as kubectl does. */
    private readonly baseDir: string,
    private readonly cluster: ClusterInfo,
    private readonly now: () => number = Date.now,
  ) {
    const version = config.apiVersion ?? '';
    if (!SUPPORTED.includes(version)) {
      throw new Error(
        `exec credential plugin '${config.command}' asks for apiVersion '${version}'; supported: ${SUPPORTED.join(', ')}`,
      );
    }
    if (config.interactiveMode === 'Always') {
      throw new Error(
        `exec credential plugin '${config.command}' needs an interactive terminal (interactiveMode: Always); a service has none`,
      );
    }
  }

  /** The current credential, from the cache while it is valid; concurrent callers share one run. */
  get(): Promise<ExecResult> {
    const cached = this.cached;
    if (cached && (cached.expiresAt === undefined || cached.expiresAt - EXPIRY_MARGIN_MS > this.now())) {
      return Promise.resolve(cached);
    }
    if (!this.pending) {
      this.pending = this.run().then(
        (result) => {
          this.cached = result;
          this.pending = undefined;
          return result;
        },
        (error: unknown) => {
          this.pending = undefined;
          throw error;
        },
      );
    }
    return this.pending;
  }

  /** The API server refused the credential (401): the next request runs the plugin again. */
  invalidate(): void {
    this.cached = undefined;
  }

  private run(): Promise<ExecResult> {
    const { config } = this;
    const command =
      config.command.includes('/') && !isAbsolute(config.command)
        ? join(this.baseDir, config.command)
        : config.command;
    const spec: Record<string, unknown> = { interactive: false };
    if (config.provideClusterInfo) {
      spec.cluster = {
        server: this.cluster.server,
        ...(this.cluster.caData ? { 'certificate-authority-data': this.cluster.caData } : {}),
        ...(this.cluster.insecure ? { 'insecure-skip-tls-verify': true } : {}),
      };
    }
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      KUBERNETES_EXEC_INFO: JSON.stringify({ apiVersion: config.apiVersion, kind: 'ExecCredential', spec }),
    };
    for (const entry of config.env ?? []) env[entry.name] = entry.value;
    return new Promise((resolve, reject) => {
      execFile(
        command,
        config.args ?? [],
        { env, timeout: 60_000, maxBuffer: 1 << 20 },
        (error, stdout, stderr) => {
          if (error) {
            const detail = String(stderr).trim().slice(0, 500) || error.message;
            return reject(new Error(`exec credential plugin '${config.command}' failed: ${detail}`));
          }
          try {
            resolve(parseExecCredential(stdout, config.apiVersion ?? ''));
          } catch (parseError) {
            reject(new Error(`exec credential plugin '${config.command}': ${(parseError as Error).message}`));
          }
        },
      );
    });
  }
}

/** Reads a plugin's stdout: an ExecCredential with a token or a client certificate and key. */
export function parseExecCredential(stdout: string, apiVersion: string): ExecResult {
  let answer: { apiVersion?: string; kind?: string; status?: Record<string, unknown> };
  try {
    answer = JSON.parse(stdout);
  } catch {
    throw new Error('printed something that is not JSON; expected an ExecCredential');
  }
  if (answer.kind !== 'ExecCredential')
    throw new Error(`printed kind '${answer.kind}', expected ExecCredential`);
  if (answer.apiVersion !== apiVersion)
    throw new Error(`answered with apiVersion '${answer.apiVersion}', asked for '${apiVersion}'`);
  const status = answer.status ?? {};
  const result: ExecResult = {};
  if (typeof status.token === 'string' && status.token) result.token = status.token;
  if (typeof status.clientCertificateData === 'string' && typeof status.clientKeyData === 'string') {
    result.cert = Buffer.from(status.clientCertificateData);
    result.key = Buffer.from(status.clientKeyData);
  }
  if (!result.token && !result.cert)
    throw new Error('the ExecCredential carries neither a token nor a client certificate and key');
  if (typeof status.expirationTimestamp === 'string') {
    const at = Date.parse(status.expirationTimestamp);
    if (Number.isNaN(at))
      throw new Error(`expirationTimestamp '${status.expirationTimestamp}' is not a time`);
    result.expiresAt = at;
  }
  return result;
}
