import { escapeControl } from '../safe-text';

/**
 * A one-line progress bar on stderr, only when stderr is a terminal (quiet in scripts, under
 * systemd and in tests). Results still go to stdout.
 */
export interface Progress {
  update(done: number, total: number, note?: string): void;
  finish(): void;
}

export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update() {}, finish() {} };
  const width = 30;
  let drawn = false;
  return {
    update(done, total, note = '') {
      const ratio = total > 0 ? Math.min(1, done / total) : 0;
      const filled = Math.round(ratio * width);
      stream.write(`\r${escapeControl(label)} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${done}/${total} ${escapeControl(note)}`.padEnd(stream.columns ? stream.columns - 1 : 0));
      drawn = true;
    },
    finish() {
      if (drawn) stream.write('\n');
    },
  };
}
