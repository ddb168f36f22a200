import type { Command } from 'commander';

/** Registers this group's commands. Filled in by the issue that owns the group. */
export function register(_program: Command): void {}
