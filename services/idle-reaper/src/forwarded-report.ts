/**
 * A report one reaper replica passes on to the replica owning its session
 * (`streamspace.reaper.activity.<member>`): the session key and the activity time the receiving
 * replica already checked and clamped. Only the reapers' NATS user may publish on that subject.
 */
export interface ForwardedReport {
  key: string;
  at: number;
}

export function encodeForwardedReport(key: string, at: number): string {
  return JSON.stringify({ key, at } satisfies ForwardedReport);
}

const utf8 = new TextDecoder();

/** The report, or undefined when the message is not one. */
export function decodeForwardedReport(data: Uint8Array): ForwardedReport | undefined {
  try {
    const value = JSON.parse(utf8.decode(data)) as Partial<ForwardedReport>;
    if (typeof value.key !== 'string' || value.key === '' || value.key.length > 512) return undefined;
    if (typeof value.at !== 'number' || !Number.isFinite(value.at) || value.at <= 0) return undefined;
    return { key: value.key, at: value.at };
  } catch {
    return undefined;
  }
}
