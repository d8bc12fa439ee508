/** See contained.mjs. */
export function manifestPathProblem(rel: unknown): string | null;
export function containedFile(root: string, rel: string): { path: string } | { problem: string; missing?: boolean };
