// Generations: every user action that replaces the photo takes a new one, and work begun for an
// older one (a file read, a decode, a preview, a result, a block view) is dropped wherever it
// arrives. Pure (no DOM), tested with `node --test`.

/** Thrown (and ignored by the views) when an answer belongs to a photo that was replaced. */
export class Stale extends Error {
  constructor(what = 'answer') { super(`this ${what} belongs to an earlier photo`); this.stale = true; }
}

export class Generations {
  constructor() {
    /** The newest photo asked for. */
    this.latest = 0;
    /** The photo whose result is on screen (0: none). */
    this.shown = 0;
  }

  /** A new photo replaces whatever came before: its generation. */
  take() { this.latest += 1; return this.latest; }

  /** Whether `gen` is still the newest photo. */
  current(gen) { return gen === this.latest; }

  /** `gen`'s result is now on screen. */
  show(gen) { this.shown = gen; }

  /** Nothing is on screen any more (the model that answered is gone). */
  clear() { this.shown = 0; }

  /** Whether what is on screen is the newest photo (no newer one is on its way). */
  settled() { return this.shown !== 0 && this.shown === this.latest; }

  /**
   * `promise`'s value if `gen` is still current when it settles, else a `Stale` rejection (its
   * own failure too is dropped then: it belongs to a photo nobody waits for).
   */
  async guard(gen, promise, what) {
    let value;
    try {
      value = await promise;
    } catch (e) {
      if (!this.current(gen)) throw new Stale(what);
      throw e;
    }
    if (!this.current(gen)) throw new Stale(what);
    return value;
  }
}
