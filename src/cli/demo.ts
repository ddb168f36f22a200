import type { Command } from 'commander';

/** `meshd demo`: the whole flow on this machine, with no NHS access. */
export function register(program: Command): void {
  program
    .command('demo')
    .description('try meshd end to end: a local MESH simulator, CSV in, FHIR over MESH, HL7 v2 out')
    .option('--dir <dir>', 'where to put the demo (default: a new folder under the system temp dir)')
    .option('--keep', 'leave the simulator running until Ctrl-C so you can look around')
    .action(async (opts: { dir?: string; keep?: boolean }, cmd: Command) => {
      const { runDemo } = await import('./demo-flow');
      process.exitCode = await runDemo({ ...opts, json: cmd.optsWithGlobals().json === true });
    });
}
