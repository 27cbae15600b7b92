export function natsServerBinary(): string;

export interface NatsServerProcess {
  url: string;
  readonly running: boolean;
  start(): Promise<void>;
  stop(): Promise<void>;
  kill(): Promise<void>;
}

export function natsServerProcess(options: {
  port: number;
  storeDir?: string;
  configFile?: string;
  probe?: { user?: string; pass?: string };
  name?: string;
  /** nats-server's HTTP monitoring port (loopback), when wanted. */
  monitorPort?: number;
}): NatsServerProcess;
