import type { Finding } from '../certs';
import type { MeshdConfig } from '../config/types';
import { isLoopbackHost } from '../config/validate';

/**
 * `meshd config check` on the web console: beyond loopback it must have ui.tls (validation
 * refuses it otherwise) and, even then, is a warning: anyone who can reach the port can try logins.
 */
export function uiFindings(config: MeshdConfig): Finding[] {
  if (!config.ui || isLoopbackHost(config.ui.host)) return [];
  return [
    {
      severity: 'warning',
      key: 'ui.host',
      message: `the web console listens on ${config.ui.host}, reachable from beyond this host`,
      hint: 'prefer ui.host 127.0.0.1 and an SSH tunnel; otherwise firewall the port to the administrators’ network',
    },
  ];
}
