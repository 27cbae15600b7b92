/**
 * Counts the clients connected to a port from the kernel's socket tables (`/proc/net/tcp` and
 * `/proc/net/tcp6` of the reader's network namespace, which a pod's containers share). Pure: the
 * shell reads the files. Readable without privileges.
 *
 * A line (after the header) reads
 *   `sl local_address rem_address st tx_queue:rx_queue ...`
 * e.g. `0: 0100007F:0BB8 0100007F:D2A4 01 00000000:00000000 ...`, addresses as hex `ip:port`.
 */

/** `st` of an established connection (include/net/tcp_states.h: TCP_ESTABLISHED = 1). */
const ESTABLISHED = '01';

export interface ConnectionCount {
  /** Established connections whose local port is the port asked for. */
  connected: number;
  /** Lines that are not socket entries (a format this parser does not know). */
  unparsed: number;
}

export function countConnections(table: string, port: number): ConnectionCount {
  let connected = 0;
  let unparsed = 0;
  const lines = table.split('\n');
  // The first line is the header (`sl local_address rem_address st ...`).
  for (let i = 1; i < lines.length; i++) {
    const line = lines[i]?.trim();
    if (!line) continue;
    const fields = line.split(/\s+/);
    const local = fields[1];
    const state = fields[3];
    const colon = local?.lastIndexOf(':') ?? -1;
    const localPort = colon > 0 && local ? Number.parseInt(local.slice(colon + 1), 16) : Number.NaN;
    if (
      fields.length < 4 ||
      !/^[0-9]+:$/.test(fields[0] ?? '') ||
      !Number.isInteger(localPort) ||
      !/^[0-9A-F]{2}$/i.test(state ?? '')
    ) {
      unparsed++;
      continue;
    }
    if (localPort === port && state === ESTABLISHED) connected++;
  }
  return { connected, unparsed };
}

/** Whether the text looks like a socket table at all (its header), so a wrong file is told apart from an empty one. */
export function isSocketTable(table: string): boolean {
  return /^\s*sl\s+local_address\s+rem(?:ote)?_address\s+st\b/.test(table);
}
