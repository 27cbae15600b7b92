import { describe, expect, it } from 'vitest';
import { countConnections, isSocketTable } from './tcp-connections.js';

const HEADER =
  '  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode';
const V4 = [
  HEADER,
  // listening on 3000 (0BB8): not a client
  '   0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0',
  // a client connected to 3000
  '   1: 0100007F:0BB8 0100007F:D2A4 01 00000000:00000000 00:00000000 00000000  1000        0 2 1 0000000000000000 20 4 30 10 -1',
  // a connection closing (TIME_WAIT 06): gone
  '   2: 0100007F:0BB8 0100007F:D2A6 06 00000000:00000000 03:00000E29 00000000     0        0 0 3 0000000000000000',
  // the agent's own connection to the reaper (remote port 8083 = 1F93): not to our port
  '   3: 0100007F:D2A8 0100007F:1F93 01 00000000:00000000 00:00000000 00000000  1000        0 3 1 0000000000000000 20 4 30 10 -1',
  '',
].join('\n');
const V6 = [
  '  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode',
  '   0: 0000000000000000FFFF00000100007F:0BB8 0000000000000000FFFF00000100007F:E001 01 00000000:00000000 00:00000000 00000000  1000        0 4 1 0000000000000000 20 4 30 10 -1',
  '   1: 00000000000000000000000001000000:0BB8 00000000000000000000000001000000:E002 01 00000000:00000000 00:00000000 00000000  1000        0 5 1 0000000000000000 20 4 30 10 -1',
].join('\n');

describe('countConnections', () => {
  it('counts established connections to the port only', () => {
    expect(countConnections(V4, 3000)).toEqual({ connected: 1, unparsed: 0 });
    expect(countConnections(V6, 3000)).toEqual({ connected: 2, unparsed: 0 });
    expect(countConnections(V4, 5900)).toEqual({ connected: 0, unparsed: 0 });
  });

  it('counts lines it cannot read instead of guessing, and never reports activity from them', () => {
    const garbage = `${HEADER}\nnot a socket line\n   7: XYZ 01\n   8: 0100007F:0BB8 0100007F:D2A4 ZZ\n`;
    expect(countConnections(garbage, 3000)).toEqual({ connected: 0, unparsed: 3 });
    expect(isSocketTable(garbage)).toBe(true);
    expect(isSocketTable('{"json": true}')).toBe(false);
    expect(isSocketTable(V6)).toBe(true);
    expect(countConnections('', 3000)).toEqual({ connected: 0, unparsed: 0 });
  });
});
