/** See hnsw-check.mjs: the first structural problem of a saved usearch index, or null. */
export function usearchProblem(bytes: Uint8Array, expect: { dim: number; count: number; metric?: 'ip' | 'cos'; connectivity?: number }): string | null;
