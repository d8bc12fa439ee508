#!/usr/bin/env node
// Entry point: registers tsx so the TypeScript sources run directly, then hands over to the CLI.
// `towerlab serve` first restarts itself with a larger V8 young generation (see serve-relaunch.mjs).
import { followParent, relaunchServe } from './serve-relaunch.mjs';

if (!relaunchServe()) {
  followParent();
  const { register } = await import('tsx/esm/api');
  register();
  const { main } = await import('../src/cli/main.ts');
  await main(process.argv);
}
