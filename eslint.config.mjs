import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const WRITERS = ['writeFile', 'writeFileSync', 'copyFile', 'copyFileSync', 'cp', 'cpSync', 'createWriteStream', 'appendFile', 'appendFileSync'];
const SAFE_FS = 'create and copy files through src/safe-fs.ts (never through an existing name or a link)';

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'bin/**', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-constant-condition': ['error', { checkLoops: false }],
    },
  },
  {
    // Every file meshd creates or copies goes through src/safe-fs.ts: O_CREAT|O_EXCL|O_NOFOLLOW under
    // a fresh name, exact modes, renamed into place (docs/operations.md, "Security model").
    // The simulator is a separate program with its own data dir.
    files: ['src/**/*.ts'],
    ignores: ['src/safe-fs.ts', 'src/sim/**'],
    rules: {
      'no-restricted-imports': ['error', { paths: ['node:fs', 'node:fs/promises', 'fs', 'fs/promises'].map((name) => ({ name, importNames: WRITERS, message: SAFE_FS })) }],
      'no-restricted-properties': ['error', ...['fs', 'fsp', 'promises'].flatMap((object) => WRITERS.map((property) => ({ object, property, message: SAFE_FS })))],
    },
  },
);
