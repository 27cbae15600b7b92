import { describe, expect, it } from 'vitest';
import { reconcilerEnvSchema, settingsFromEnv } from './reconciler-settings.js';

describe('the resource ceiling settings', () => {
  it('default to a ceiling, read name=quantity lists, and may be emptied', () => {
    const defaults = settingsFromEnv(reconcilerEnvSchema.parse({}));
    expect(defaults.resourceCeiling).toEqual({
      requests: { cpu: '4', memory: '8Gi' },
      limits: { cpu: '8', memory: '16Gi' },
    });
    const custom = settingsFromEnv(
      reconcilerEnvSchema.parse({
        SESSION_MAX_REQUESTS: ' cpu=500m , nvidia.com/gpu=1',
        SESSION_MAX_LIMITS: '',
      }),
    );
    expect(custom.resourceCeiling).toEqual({ requests: { cpu: '500m', 'nvidia.com/gpu': '1' }, limits: {} });
  });

  it.each([
    ['cpu', "'cpu' is not name=quantity"],
    ['cpu=lots', "'lots' (for cpu) is not a quantity"],
    ['memory=-1Gi', "'-1Gi' (for memory) is not a quantity"],
    ['cpu=1=2', "'cpu=1=2' is not name=quantity"],
  ])('refuses %j with a message saying what is wrong', (value, message) => {
    const result = reconcilerEnvSchema.safeParse({ SESSION_MAX_REQUESTS: value });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]?.message).toContain(message);
  });
});
