/**
 * A token bucket in the manner of client-go's flowcontrol limiter: `burst` requests may go at
 * once, then `qps` per second. Each request reserves its token and waits its turn, so requests
 * leave in the order they asked and a burst of thousands is spread out instead of refused.
 */
export class TokenBucket {
  private tokens: number;
  private updatedAt: number;

  constructor(
    private readonly qps: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    if (!(qps > 0) || !(burst >= 1))
      throw new Error(`a rate limit needs qps > 0 and burst >= 1 (got qps ${qps}, burst ${burst})`);
    this.tokens = burst;
    this.updatedAt = now();
  }

  /** Takes one token; returns how many ms the caller must wait before it may use it (0: go now). */
  reserve(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedAt) * this.qps) / 1000);
    this.updatedAt = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.qps);
  }
}
