import {
  env,
  natsEnvSchema,
  watchNamespacesSchema,
} from '@streamspace/shared';
import { z } from 'zod';

const urlList = z
  .string()
  .optional()
  .transform((text, ctx) => {
    const urls = (text ?? '')
      .split(',')
      .map((u) => u.trim())
      .filter((u) => u.length > 0);
    for (const url of urls) {
      if (!/^https?:\/\/[^\s]+$/.test(url)) {
        ctx.addIssue({
          code: 'custom',
          message: `'${url}' is not an http(s) URL; give one or more comma-separated URLs such as http://streamspace-watcher:8081/readyz`,
        });
        return z.NEVER;
      }
    }
    return urls;
  });

export const metricsConfigSchema = natsEnvSchema.extend({
  /** Count the Sessions of these namespaces only (comma-separated); all namespaces when unset. */
  WATCH_NAMESPACE: watchNamespacesSchema,
  /**
   * Put the `user` label on streamspace_active_sessions: one series per user, so off unless asked
   * for, as in the chart (metrics.userLabel). With a user per Session, 10,000 Sessions made 10,000
   * series: 3 MiB of prom-client's heap and an 0.8 MB scrape (bench/metrics-session-memory.mjs).
   */
  METRICS_USER_LABEL: env.boolean(false),
  /** The watcher's /readyz URL(s), comma-separated, probed at each scrape; unset: not probed. */
  WATCHER_READY_URL: urlList,
  /** How long a scrape waits for JetStream and the watcher before leaving their figures out. */
  PROBE_TIMEOUT: env.durationMs('2s', 100),
});

export type MetricsConfig = z.infer<typeof metricsConfigSchema>;
