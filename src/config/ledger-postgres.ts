import type { Problems } from './problems';
import { resolveSecret } from './secrets';
import type { Environment } from './types';

/**
 * `ledger.postgres`: the connection URL of a shared PostgreSQL ledger, a secret like any other
 * ({ env }, { file }, { credential }; a literal only with environment: local). Absent: the
 * SQLite ledger in dataDir. Resolved even for read-only commands: they read the ledger through it.
 */
export function ledgerPostgres(
  problems: Problems,
  value: unknown,
  ctx: { configDir: string; environment: Environment; env: NodeJS.ProcessEnv },
): { postgres?: string } {
  if (value === undefined || value === null) return {};
  const url = resolveSecret(problems, 'ledger.postgres', value, { ...ctx, skipSecrets: false });
  if (url === undefined) return {};
  // The value is a secret: the message says what is wrong, never what it is.
  if (!/^postgres(ql)?:\/\/\S+$/.test(url)) {
    problems.add('ledger.postgres', 'must be a postgresql:// connection URL');
    return {};
  }
  return { postgres: url };
}
