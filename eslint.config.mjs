import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const WRITERS = ['writeFile', 'writeFileSync', 'copyFile', 'copyFileSync', 'cp', 'cpSync', 'createWriteStream', 'appendFile', 'appendFileSync'];
const SAFE_FS = 'create and copy files through src/safe-fs.ts (never through an existing name or a link)';

/** For each folder of src/, the folders it must never import from. */
const LAYERS = {
  root: ['cli', 'daemon', 'ui', 'transfer', 'mesh', 'ledger', 'transform', 'sim', 'certs'],
  daemon: ['cli', 'ui'],
  ui: ['cli'],
  transfer: ['cli', 'daemon', 'ui', 'sim'],
  mesh: ['cli', 'daemon', 'ui', 'transfer', 'ledger', 'transform', 'sim', 'certs'],
  ledger: ['cli', 'daemon', 'ui', 'transfer', 'mesh', 'transform', 'sim', 'certs'],
  transform: ['cli', 'daemon', 'ui', 'transfer', 'mesh', 'ledger', 'sim', 'certs'],
  certs: ['cli', 'daemon', 'ui', 'transfer', 'mesh', 'ledger', 'transform', 'sim'],
  sim: ['cli', 'daemon', 'ui', 'transfer', 'ledger', 'transform', 'certs'],
  config: ['cli', 'daemon', 'ui', 'transfer', 'mesh', 'ledger', 'transform', 'sim', 'certs'],
};

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
  // Layers: imports point down only. cli → {daemon, ui} → transfer → {mesh, ledger, transform}; sim and
  // certs beside them; config, log, errors, safe-fs, safe-text and version at the bottom.
  // Files: every file meshd creates or copies goes through src/safe-fs.ts (O_CREAT|O_EXCL|O_NOFOLLOW
  // under a fresh name, exact modes, renamed into place; docs/operations.md, "Security model").
  // The simulator is a separate program with its own data dir. One block per folder, because a
  // later block's options for a rule replace an earlier one's.
  ...['cli', ...Object.keys(LAYERS)].map((folder) => {
    const safeFs = folder !== 'sim';
    const forbidden = LAYERS[folder] ?? [];
    return {
      files: folder === 'root' ? ['src/*.ts'] : [`src/${folder}/**/*.ts`],
      ignores: ['src/safe-fs.ts'],
      rules: {
        'no-restricted-imports': ['error', {
          paths: safeFs ? ['node:fs', 'node:fs/promises', 'fs', 'fs/promises'].map((name) => ({ name, importNames: WRITERS, message: SAFE_FS })) : [],
          patterns: forbidden.length ? [{ group: forbidden.flatMap((f) => [`../${f}`, `../${f}/*`, `../../${f}`, `../../${f}/*`]), message: `src/${folder} may not import from a layer above it (docs/architecture.md, "Layout")` }] : [],
        }],
        'no-restricted-properties': safeFs ? ['error', ...['fs', 'fsp', 'promises'].flatMap((object) => WRITERS.map((property) => ({ object, property, message: SAFE_FS })))] : 'off',
      },
    };
  }),
);
