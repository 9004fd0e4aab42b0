/**
 * The LZMA symbol decoder used inside LZMA2 chunks, after xz-embedded's `xz_dec_lzma2.c`
 * (Lasse Collin and Igor Pavlov, public domain), in its single-call form: the dictionary
 * is the output buffer itself, starting at the last dictionary reset.
 *
 * This is the hot loop of kernel decompression (about 66 MB of output for the fixture
 * vmlinux), so it is one function over local variables: the range-decoder bit step is
 * written out in place rather than called, and nothing is allocated per symbol. `range`
 * and `code` are the C decoder's uint32 values kept as int32 bit patterns, so V8 keeps them
 * in integer registers (about 25% faster than unsigned doubles): the range is normalized
 * when `range >>> 24 === 0` (RC_TOP_VALUE = 2^24), `bound` is `Math.imul`, and unsigned
 * comparisons flip the sign bit of both sides. The file is longer than the usual
 * ~300-line budget for that reason.
 */

/** Probability-array layout, as xz_dec_lzma2.c's `struct lzma_dec` flattened. */
const IS_MATCH = 0; // [12 states][16 pos states]
const IS_REP = 192; // [12]
const IS_REP0 = 204; // [12]
const IS_REP1 = 216; // [12]
const IS_REP2 = 228; // [12]
const IS_REP0_LONG = 240; // [12][16]
const DIST_SLOT = 432; // [4 dist states][64]
const DIST_SPECIAL = 688; // [128 - 14]
const DIST_ALIGN = 802; // [16]
const MATCH_LEN = 818; // length decoder: choice, choice2, low[16][8], mid[16][8], high[256]
const REP_LEN = 1332;
const LITERAL = 1846; // [16 coders][0x300]
/** PROBS_TOTAL in xz_lzma2.h: 1846 + LITERAL_CODERS_MAX * LITERAL_CODER_SIZE. */
const PROBS_TOTAL = LITERAL + 16 * 0x300;

const LEN_LOW = 2;
const LEN_MID = 2 + 128;
const LEN_HIGH = 2 + 256;

/** RC_BIT_MODEL_TOTAL / 2: the initial probability. */
const PROB_INIT = 1024;

/** Returned by {@link LzmaDecoder.decodeChunk} when the data is corrupt. */
export const LZMA_CORRUPT = -1;

/**
 * LZMA state that survives between LZMA2 chunks: probabilities, the state machine, the
 * four repeat distances and the lc/lp/pb properties. The range coder restarts at every
 * chunk.
 */
export class LzmaDecoder {
  private readonly probs = new Uint16Array(PROBS_TOTAL);
  private state = 0;
  private rep0 = 0;
  private rep1 = 0;
  private rep2 = 0;
  private rep3 = 0;
  private lc = 0;
  private lpMask = 0;
  private pbMask = 0;
  /** Input offset where the last decode went wrong, for error messages. */
  errorOffset = 0;
  /** What went wrong in the last failed decode. */
  errorDetail = '';

  /**
   * Sets lc/lp/pb from an LZMA2 properties byte and resets the state. Returns false for an
   * invalid byte (above (4*5+4)*9+8, or lc + lp > 4 as LZMA2 requires).
   */
  setProps(props: number): boolean {
    if (props > (4 * 5 + 4) * 9 + 8) return false;
    const pb = Math.floor(props / 45);
    props -= pb * 45;
    const lp = Math.floor(props / 9);
    const lc = props - lp * 9;
    if (lc + lp > 4) return false;
    this.lc = lc;
    this.lpMask = (1 << lp) - 1;
    this.pbMask = (1 << pb) - 1;
    this.resetState();
    return true;
  }

  /** Resets probabilities, state and repeat distances (LZMA2 control >= 0xA0). */
  resetState(): void {
    this.probs.fill(PROB_INIT);
    this.state = 0;
    this.rep0 = this.rep1 = this.rep2 = this.rep3 = 0;
  }

  /**
   * Decodes one LZMA chunk: compressed bytes `inp[ip, inEnd)` into `out[op, opEnd)`.
   * `dictStart` is where the dictionary was last reset (matches may not reach before it),
   * `dictSize` the block's dictionary size. Returns the input offset after the chunk, or
   * {@link LZMA_CORRUPT} (see `errorOffset` / `errorDetail`).
   *
   * INVARIANT: `inp` extends at least 32 bytes past `inEnd` (padded by the caller), because
   * like xz-embedded the loop checks the input limit once per symbol and a symbol reads at
   * most 20 bytes.
   */
  decodeChunk(inp: Uint8Array, ip: number, inEnd: number, out: Uint8Array, op: number, opEnd: number, dictStart: number, dictSize: number): number {
    const probs = this.probs;
    const lc = this.lc;
    const lcShift = 8 - lc;
    const lpMask = this.lpMask;
    const pbMask = this.pbMask;
    let state = this.state;
    let rep0 = this.rep0;
    let rep1 = this.rep1;
    let rep2 = this.rep2;
    let rep3 = this.rep3;

    // rc_read_init: five bytes, the first of which must be zero (as liblzma requires).
    if (inEnd - ip < 5) return this.fail(ip, 'LZMA chunk shorter than the range coder init');
    if (inp[ip] !== 0) return this.fail(ip, 'range coder init byte is not zero');
    let code = (inp[ip + 1]! << 24) | (inp[ip + 2]! << 16) | (inp[ip + 3]! << 8) | inp[ip + 4]!;
    let range = -1; // 0xffffffff as int32
    ip += 5;

    // The decoder's locals live across the loop's states, so their first values can look
    // unused to a linter that does not follow the state machine.
    /* eslint-disable no-useless-assignment */
    let p = 0;
    let bound = 0;
    let i = 0;
    let sym = 0;
    let len = 0;
    /* eslint-enable no-useless-assignment */

    while (op < opEnd) {
      if (ip > inEnd) return this.fail(inEnd, 'LZMA chunk overruns its compressed size');
      const rel = op - dictStart;
      const posState = rel & pbMask;

      // is_match[state][posState]
      i = IS_MATCH + (state << 4) + posState;
      if (range >>> 24 === 0) {
        range <<= 8;
        code = (code << 8) | inp[ip++]!;
      }
      p = probs[i]!;
      bound = Math.imul(range >>> 11, p);
      if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        // ---- literal ----
        const prev = rel > 0 ? out[op - 1]! : 0;
        const base = LITERAL + 0x300 * ((prev >>> lcShift) + ((rel & lpMask) << lc));
        sym = 1;
        if (state < 7) {
          do {
            i = base + sym;
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | inp[ip++]!;
            }
            p = probs[i]!;
            bound = Math.imul(range >>> 11, p);
            if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              sym <<= 1;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[i] = p - (p >>> 5);
              sym = (sym << 1) | 1;
            }
          } while (sym < 0x100);
        } else {
          // INVARIANT: a non-literal state means rep0 was validated by the last match.
          let matchByte = out[op - rep0 - 1]! << 1;
          let offs = 0x100;
          do {
            const matchBit = matchByte & offs;
            matchByte <<= 1;
            i = base + offs + matchBit + sym;
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | inp[ip++]!;
            }
            p = probs[i]!;
            bound = Math.imul(range >>> 11, p);
            if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              sym <<= 1;
              offs &= ~matchBit;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[i] = p - (p >>> 5);
              sym = (sym << 1) | 1;
              offs &= matchBit;
            }
          } while (sym < 0x100);
        }
        out[op++] = sym & 0xff;
        state = state < 4 ? 0 : state < 10 ? state - 3 : state - 6;
        continue;
      }
      range = (range - bound) | 0;
      code = (code - bound) | 0;
      probs[i] = p - (p >>> 5);

      // is_rep[state]
      i = IS_REP + state;
      if (range >>> 24 === 0) {
        range <<= 8;
        code = (code << 8) | inp[ip++]!;
      }
      p = probs[i]!;
      bound = Math.imul(range >>> 11, p);
      let lenBase: number;
      if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
        range = bound;
        probs[i] = p + ((2048 - p) >>> 5);
        // ---- simple match: new distance ----
        rep3 = rep2;
        rep2 = rep1;
        rep1 = rep0;
        state = state < 7 ? 7 : 10;
        lenBase = MATCH_LEN;
      } else {
        range = (range - bound) | 0;
        code = (code - bound) | 0;
        probs[i] = p - (p >>> 5);
        // ---- repeated match ----
        i = IS_REP0 + state;
        if (range >>> 24 === 0) {
          range <<= 8;
          code = (code << 8) | inp[ip++]!;
        }
        p = probs[i]!;
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          i = IS_REP0_LONG + (state << 4) + posState;
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | inp[ip++]!;
          }
          p = probs[i]!;
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            // short rep: one byte at distance rep0
            state = state < 7 ? 9 : 11;
            if (rep0 >= rel || rep0 >= dictSize) return this.fail(ip, `short repeat distance ${rep0 + 1} reaches before the dictionary`);
            out[op] = out[op - rep0 - 1]!;
            op++;
            continue;
          }
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          let dist: number;
          i = IS_REP1 + state;
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | inp[ip++]!;
          }
          p = probs[i]!;
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            dist = rep1;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            i = IS_REP2 + state;
            if (range >>> 24 === 0) {
              range <<= 8;
              code = (code << 8) | inp[ip++]!;
            }
            p = probs[i]!;
            bound = Math.imul(range >>> 11, p);
            if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
              range = bound;
              probs[i] = p + ((2048 - p) >>> 5);
              dist = rep2;
            } else {
              range = (range - bound) | 0;
              code = (code - bound) | 0;
              probs[i] = p - (p >>> 5);
              dist = rep3;
              rep3 = rep2;
            }
            rep2 = rep1;
          }
          rep1 = rep0;
          rep0 = dist;
        }
        state = state < 7 ? 8 : 11;
        lenBase = REP_LEN;
      }

      // ---- match length (lzma_len) ----
      {
        let treeBase: number;
        let limit: number;
        i = lenBase;
        if (range >>> 24 === 0) {
          range <<= 8;
          code = (code << 8) | inp[ip++]!;
        }
        p = probs[i]!;
        bound = Math.imul(range >>> 11, p);
        if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
          range = bound;
          probs[i] = p + ((2048 - p) >>> 5);
          treeBase = lenBase + LEN_LOW + (posState << 3);
          limit = 8;
          len = 2;
        } else {
          range = (range - bound) | 0;
          code = (code - bound) | 0;
          probs[i] = p - (p >>> 5);
          i = lenBase + 1;
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | inp[ip++]!;
          }
          p = probs[i]!;
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            treeBase = lenBase + LEN_MID + (posState << 3);
            limit = 8;
            len = 10;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            treeBase = lenBase + LEN_HIGH;
            limit = 256;
            len = 18;
          }
        }
        sym = 1;
        do {
          i = treeBase + sym;
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | inp[ip++]!;
          }
          p = probs[i]!;
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            sym <<= 1;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            sym = (sym << 1) | 1;
          }
        } while (sym < limit);
        len += sym - limit;
      }

      if (lenBase === MATCH_LEN) {
        // ---- distance (lzma_match) ----
        const slotBase = DIST_SLOT + ((len < 6 ? len - 2 : 3) << 6);
        sym = 1;
        do {
          i = slotBase + sym;
          if (range >>> 24 === 0) {
            range <<= 8;
            code = (code << 8) | inp[ip++]!;
          }
          p = probs[i]!;
          bound = Math.imul(range >>> 11, p);
          if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
            range = bound;
            probs[i] = p + ((2048 - p) >>> 5);
            sym <<= 1;
          } else {
            range = (range - bound) | 0;
            code = (code - bound) | 0;
            probs[i] = p - (p >>> 5);
            sym = (sym << 1) | 1;
          }
        } while (sym < 64);
        const slot = sym - 64;
        if (slot < 4) {
          rep0 = slot;
        } else {
          const limit = (slot >>> 1) - 1;
          if (slot < 14) {
            rep0 = (2 | (slot & 1)) << limit;
            const rb = DIST_SPECIAL + rep0 - slot - 1;
            sym = 1;
            for (let k = 0; k < limit; k++) {
              i = rb + sym;
              if (range >>> 24 === 0) {
                range <<= 8;
                code = (code << 8) | inp[ip++]!;
              }
              p = probs[i]!;
              bound = Math.imul(range >>> 11, p);
              if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
                range = bound;
                probs[i] = p + ((2048 - p) >>> 5);
                sym <<= 1;
              } else {
                range = (range - bound) | 0;
                code = (code - bound) | 0;
                probs[i] = p - (p >>> 5);
                sym = (sym << 1) | 1;
                rep0 += 1 << k;
              }
            }
          } else {
            // Up to 26 direct bits: keep rep0 as an unsigned double, since it may exceed 2^31.
            rep0 = 2 | (slot & 1);
            for (let k = limit - 4; k > 0; k--) {
              if (range >>> 24 === 0) {
                range <<= 8;
                code = (code << 8) | inp[ip++]!;
              }
              range >>>= 1;
              if ((code ^ 0x80000000) >= (range ^ 0x80000000)) {
                code = (code - range) | 0;
                rep0 = rep0 * 2 + 1;
              } else rep0 = rep0 * 2;
            }
            rep0 *= 16;
            sym = 1;
            for (let k = 0; k < 4; k++) {
              i = DIST_ALIGN + sym;
              if (range >>> 24 === 0) {
                range <<= 8;
                code = (code << 8) | inp[ip++]!;
              }
              p = probs[i]!;
              bound = Math.imul(range >>> 11, p);
              if ((code ^ 0x80000000) < (bound ^ 0x80000000)) {
                range = bound;
                probs[i] = p + ((2048 - p) >>> 5);
                sym <<= 1;
              } else {
                range = (range - bound) | 0;
                code = (code - bound) | 0;
                probs[i] = p - (p >>> 5);
                sym = (sym << 1) | 1;
                rep0 += 1 << k;
              }
            }
          }
        }
      }

      // ---- dict_repeat ----
      if (rep0 >= rel || rep0 >= dictSize) {
        return this.fail(ip, `match distance ${rep0 + 1} reaches before the dictionary (${Math.min(rel, dictSize)} bytes available)`);
      }
      if (len > opEnd - op) return this.fail(ip, 'match runs past the end of the LZMA2 chunk');
      let src = op - rep0 - 1;
      if (len >= 32 && rep0 + 1 >= len) {
        out.copyWithin(op, src, src + len);
        op += len;
      } else {
        const end = op + len;
        while (op < end) out[op++] = out[src++]!;
      }
    }

    // xz-embedded normalizes once more after the loop; the chunk must then be consumed
    // exactly and the range coder must be finished (code == 0).
    if (range >>> 24 === 0) {
      // eslint-disable-next-line no-useless-assignment -- the normalisation is xz-embedded's, kept whole
      range <<= 8;
      code = (code << 8) | inp[ip++]!;
    }
    if (ip !== inEnd) return this.fail(Math.min(ip, inEnd), `LZMA chunk used ${ip > inEnd ? 'more' : 'fewer'} bytes than its header says`);
    if (code !== 0) return this.fail(ip, 'range coder did not finish cleanly at the end of the chunk');

    this.state = state;
    this.rep0 = rep0;
    this.rep1 = rep1;
    this.rep2 = rep2;
    this.rep3 = rep3;
    return ip;
  }

  private fail(offset: number, detail: string): number {
    this.errorOffset = offset;
    this.errorDetail = detail;
    return LZMA_CORRUPT;
  }
}
