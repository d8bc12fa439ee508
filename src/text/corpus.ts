/**
 * A BEIR set turned into words once (the tokenizer's word pass: lowercase, stop words, S-stemmer) plus what
 * the towers need: a document's words are its title's then its text's; chunks are word spans of a window;
 * a tower input of a span is either its hashed token sequence (transformer) or its bag of hashed
 * uni/bi-gram features (bag of embeddings).
 */
import type { BeirData } from './beir.ts';
import { chunkDocs, type ChunkSet } from './chunk.ts';
import { HashedTokenizer, type TokenizerOptions } from './tokenize.ts';

export type InputKind = 'tokens' | 'features';

export class TextCorpus {
  readonly docWords: string[][];
  readonly titleWords: string[][];
  readonly bodyWords: string[][];
  readonly queryWords: string[][];
  readonly tokenizer: HashedTokenizer;

  constructor(
    readonly data: BeirData,
    tok: TokenizerOptions,
  ) {
    this.tokenizer = new HashedTokenizer(tok);
    this.titleWords = data.titles.map((t) => this.tokenizer.words(t));
    this.bodyWords = data.texts.map((t) => this.tokenizer.words(t));
    this.docWords = this.titleWords.map((t, i) => t.concat(this.bodyWords[i]));
    this.queryWords = data.queries.map((q) => this.tokenizer.words(q));
  }

  chunks(window: number, stride: number): ChunkSet {
    return chunkDocs(this.docWords.map((w) => w.length), window, stride);
  }

  /** The tower input of words[lo, hi), truncated to `maxLen` words. */
  input(kind: InputKind, words: string[], maxLen: number, lo = 0, hi = words.length): Int32Array {
    hi = Math.min(hi, lo + maxLen);
    if (kind === 'features') return this.tokenizer.featuresOfWords(words, lo, hi);
    return this.tokenizer.tokensOfWords(words, lo, hi);
  }
}

/** Sentences of a text (split after . ! ? followed by white space), for inverse-cloze pre-training. */
export function sentences(text: string): string[] {
  return text.split(/(?<=[.!?])\s+/).filter((s) => s.trim().length > 0);
}
