/**
 * A dependency-free tokenizer: lowercase, split on Unicode letter/digit runs, optionally drop English stop
 * words and strip plural endings (Harman's S-stemmer), then hash word unigrams, word bigrams and optionally
 * character n-grams of each word (with boundary marks, as fastText) into a fixed number of buckets with
 * FNV-1a. Hashing needs no vocabulary pass, so the same tokenizer serves any corpus; each feature kind is
 * hashed with its own prefix so "ab" the word and "ab" the trigram do not collide by construction.
 */

/** Lucene's English stop set (EnglishAnalyzer.ENGLISH_STOP_WORDS_SET). */
export const ENGLISH_STOPWORDS: ReadonlySet<string> = new Set(
  'a an and are as at be but by for if in into is it no not of on or such that the their then there these they this to was will with'.split(' '),
);

export interface WordOptions {
  stopwords: boolean;
  /** Harman's S-stemmer: -ies → -y, -es → -e, -s → '' (with its exceptions). */
  stem: boolean;
}

const WORD = /[\p{L}\p{N}]+/gu;

/** S-stemmer (Harman 1991), the mildest English stemmer: only plural endings. */
export function sStem(w: string): string {
  if (w.length <= 3) return w;
  if (w.endsWith('ies') && !w.endsWith('eies') && !w.endsWith('aies')) return w.slice(0, -3) + 'y';
  if (w.endsWith('es') && !w.endsWith('aes') && !w.endsWith('ees') && !w.endsWith('oes')) return w.slice(0, -1);
  if (w.endsWith('s') && !w.endsWith('us') && !w.endsWith('ss')) return w.slice(0, -1);
  return w;
}

export function words(text: string, o: WordOptions = { stopwords: false, stem: false }): string[] {
  const out: string[] = [];
  for (const m of text.toLowerCase().matchAll(WORD)) {
    const w = m[0];
    if (o.stopwords && ENGLISH_STOPWORDS.has(w)) continue;
    out.push(o.stem ? sStem(w) : w);
  }
  return out;
}

/** FNV-1a, 32-bit, over the UTF-16 code units of `s`, continuing from `h`. */
export function fnv1a(s: string, h = 0x811c9dc5): number {
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

const SEED_UNI = fnv1a('u\u0001');
const SEED_BI = fnv1a('b\u0001');
const SEED_CHAR = fnv1a('c\u0001');

export interface TokenizerOptions extends WordOptions {
  /** Number of hash buckets (rows of the embedding table). */
  buckets: number;
  /** Add hashed word bigrams to the feature bag. */
  bigrams: boolean;
  /** Character n-gram lengths of each word (with '<' '>' boundary marks) added to the bag, e.g. [3]; [] for none. */
  charNgrams: number[];
}

export const defaultTokenizerOptions: TokenizerOptions = { buckets: 1 << 17, bigrams: true, charNgrams: [], stopwords: true, stem: true };

export class HashedTokenizer {
  constructor(readonly opts: TokenizerOptions) {
    if (!Number.isInteger(opts.buckets) || opts.buckets < 1) throw new RangeError(`tokenizer: buckets must be a positive integer, got ${opts.buckets}`);
  }

  words(text: string): string[] {
    return words(text, this.opts);
  }

  /** Unigram bucket ids in text order (the transformer's token sequence). */
  tokens(text: string): Int32Array {
    return this.tokensOfWords(this.words(text));
  }

  tokensOfWords(w: string[], lo = 0, hi = w.length): Int32Array {
    const out = new Int32Array(Math.max(0, hi - lo));
    for (let i = lo; i < hi; i++) out[i - lo] = fnv1a(w[i], SEED_UNI) % this.opts.buckets;
    return out;
  }

  /** The bag of features of a word span [lo, hi): unigrams, bigrams inside the span, char n-grams; duplicates kept. */
  featuresOfWords(w: string[], lo = 0, hi = w.length): Int32Array {
    const B = this.opts.buckets;
    const out: number[] = [];
    for (let i = lo; i < hi; i++) {
      out.push(fnv1a(w[i], SEED_UNI) % B);
      if (this.opts.bigrams && i + 1 < hi) out.push(fnv1a(w[i + 1], fnv1a(' ', fnv1a(w[i], SEED_BI))) % B);
      for (const n of this.opts.charNgrams) {
        const s = `<${w[i]}>`;
        for (let j = 0; j + n <= s.length; j++) out.push(fnv1a(s.slice(j, j + n), SEED_CHAR) % B);
      }
    }
    return Int32Array.from(out);
  }

  features(text: string): Int32Array {
    return this.featuresOfWords(this.words(text));
  }
}
