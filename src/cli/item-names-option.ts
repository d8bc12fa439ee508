/** `--item-names FILE[:COLUMN]` on the commands that show items, and how they print names beside ids. */
import { loadItemNames } from '../data/item-names.ts';

/** The names `--item-names` gives for `itemIds`, else `fallback` (e.g. those saved with the model). */
export async function itemNamesFrom(o: { itemNames?: string }, itemIds: readonly string[], itemCol?: string, fallback?: (string | null)[]): Promise<(string | null)[] | undefined> {
  return o.itemNames ? loadItemNames(o.itemNames, itemIds, itemCol) : fallback;
}

/** Adds `name` to each {item} that has one. */
export function named<T extends { item: string }>(items: T[], itemIds: readonly string[], names: (string | null)[] | undefined): Array<T & { name?: string }> {
  if (!names) return items;
  const index = new Map(itemIds.map((id, i) => [id, i]));
  return items.map((it) => {
    const name = names[index.get(it.item) ?? -1];
    return name ? { ...it, name } : it;
  });
}

/** One ranked line: rank, id, score, and the name when known. */
export function itemLine(rank: number, it: { item: string; score: number; name?: string }): string {
  return `${String(rank).padStart(3)}  ${it.item}  ${it.score.toFixed(4)}${it.name ? `  ${it.name}` : ''}\n`;
}
