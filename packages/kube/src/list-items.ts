/**
 * A list's answer taken apart as it arrives: each element of its top-level `items` array is handed
 * on as its own JSON text the moment it is complete, and what is left (kind, apiVersion, metadata
 * with resourceVersion and continue, and `"items":[]`) is the list's envelope, parsed at the end.
 *
 * Why: a list page of 500 Pods or Deployments is ~2.9 MB of JSON. Read whole, it was held as the
 * text received so far, then flattened by JSON.parse into a second copy, then as 500 parsed objects
 * (~4–5 MiB, managedFields and all) until each was trimmed: ~10 MiB of V8 heap per list slot at
 * once, which made a watcher restarted against 10,000 Sessions peak over its memory budget
 * (BENCHMARKS.md, X1–X6). Split here, a list holds at most the item being received (U1–U12).
 *
 * Only the JSON grammar's strings and brackets are tracked, not its values: an item is whatever
 * stands between the items array's commas (an object, or anything else, which the consumer judges
 * as malformed), and its text is parsed by JSON.parse, which rejects what is not JSON. The answer
 * is a Kubernetes list (an object at the top); `items` is recognised as a key of that object only.
 */
export class ListItemSplitter {
  /** The text not yet consumed: from the open item's start, or from the envelope text not yet kept. */
  private buf = '';
  /** Where scanning resumes in `buf` (past its end by one after a backslash that ended a chunk). */
  private pos = 0;
  /** Start in `buf` of envelope text not yet moved to `envelope`, while outside the items array. */
  private envelopeFrom = 0;
  private envelope = '';
  /** Open arrays and objects. */
  private depth = 0;
  private inString = false;
  /** Start in `buf` of the string being read at depth 1 (a key of the list), or -1. */
  private keyStart = -1;
  private lastKey = '';
  /** Inside the top-level `items` array (its elements are at depth 2). */
  private inItems = false;
  /** Start in `buf` of the item being received, or -1 between items. */
  private itemStart = -1;
  private failure: unknown;
  private items = 0;

  constructor(private readonly onItem: (json: string) => void) {}

  write(chunk: string): void {
    this.buf += chunk;
    this.scan();
    this.compact();
  }

  /** The envelope's JSON text, once the answer has ended; then see `error`. */
  end(): string {
    return this.envelopeFrom === -1 ? this.envelope : this.envelope + this.buf.slice(this.envelopeFrom);
  }

  /**
   * What `onItem` threw (the rest of the list was then not handed on), or that the answer ended
   * inside the list; undefined when the whole list was handed on.
   */
  get error(): unknown {
    if (this.failure !== undefined) return this.failure;
    if (this.depth !== 0 || this.inString)
      return new Error(`the list's answer ended inside it (after ${this.items} items)`);
    return undefined;
  }

  /** Items handed on so far. */
  get count(): number {
    return this.items;
  }

  private scan(): void {
    const buf = this.buf;
    const length = buf.length;
    let i = this.pos;
    // The next backslash at or after i (-1: none left), found once per stretch: searched for at
    // every string, a chunk without one would be read to its end for each of its strings.
    let backslash = -2;
    while (i < length) {
      if (this.inString) {
        // Most of a list's bytes are in strings: jump to the next quote, past escaped characters.
        const quote = buf.indexOf('"', i);
        if (quote === -1) {
          i = this.skipEscapes(buf, i, length);
          break;
        }
        if (backslash !== -1 && backslash < i) backslash = buf.indexOf('\\', i);
        if (backslash !== -1 && backslash < quote) {
          i = backslash + 2;
          continue;
        }
        this.inString = false;
        if (this.keyStart !== -1) {
          this.lastKey = buf.slice(this.keyStart + 1, quote);
          this.keyStart = -1;
        }
        i = quote + 1;
        continue;
      }
      const c = buf.charCodeAt(i);
      if (this.inItems && this.depth === 2 && this.itemStart === -1 && !isSpace(c) && c !== COMMA && c !== CLOSE_BRACKET)
        this.itemStart = i;
      switch (c) {
        case QUOTE:
          this.inString = true;
          if (this.depth === 1) this.keyStart = i;
          break;
        case OPEN_BRACE:
          this.depth++;
          break;
        case OPEN_BRACKET:
          this.depth++;
          if (this.depth === 2 && this.lastKey === 'items') {
            // The array's brackets stay in the envelope, its elements go to onItem.
            this.inItems = true;
            this.envelope += buf.slice(this.envelopeFrom, i + 1);
            this.envelopeFrom = -1;
          }
          break;
        case CLOSE_BRACE:
          this.depth--;
          break;
        case CLOSE_BRACKET:
          if (this.inItems && this.depth === 2) {
            this.endItem(buf, i);
            this.inItems = false;
            this.lastKey = '';
            this.envelopeFrom = i;
          }
          this.depth--;
          break;
        case COMMA:
          if (this.inItems && this.depth === 2) this.endItem(buf, i);
          break;
      }
      i++;
    }
    this.pos = i;
  }

  /** At a chunk's end inside a string: past its escapes, so a backslash ending the chunk escapes the next one's first character. */
  private skipEscapes(buf: string, from: number, length: number): number {
    let i = from;
    for (let backslash = buf.indexOf('\\', i); backslash !== -1; backslash = buf.indexOf('\\', i)) i = backslash + 2;
    return Math.max(i, length);
  }

  private endItem(buf: string, end: number): void {
    if (this.itemStart === -1) return;
    const json = buf.slice(this.itemStart, end);
    this.itemStart = -1;
    if (this.failure !== undefined) return;
    this.items++;
    try {
      this.onItem(json);
    } catch (error) {
      this.failure = error;
    }
  }

  /** Lets go of what was consumed: the buffer keeps only the open item, or the envelope's pending text. */
  private compact(): void {
    let keep: number;
    if (!this.inItems) {
      this.envelope += this.buf.slice(this.envelopeFrom, Math.min(this.pos, this.buf.length));
      this.envelopeFrom = Math.min(this.pos, this.buf.length);
      keep = this.keyStart !== -1 ? Math.min(this.keyStart, this.envelopeFrom) : this.envelopeFrom;
    } else keep = this.itemStart !== -1 ? this.itemStart : Math.min(this.pos, this.buf.length);
    if (keep === 0) return;
    this.buf = this.buf.slice(keep);
    this.pos -= keep;
    if (this.envelopeFrom !== -1) this.envelopeFrom -= keep;
    if (this.itemStart !== -1) this.itemStart -= keep;
    if (this.keyStart !== -1) this.keyStart -= keep;
  }
}

const QUOTE = 0x22;
const COMMA = 0x2c;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}
