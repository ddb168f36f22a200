import { expect } from 'chai';
import { COMMAND_GROUP, buildProgram, commandNamed } from '../../src/cli/main';

describe('cli main: only the named command group is loaded', () => {
  it('knows the group of every top-level command, and only those', () => {
    const all = buildProgram().commands.map((c) => c.name());
    expect([...all].sort()).to.deep.equal(Object.keys(COMMAND_GROUP).sort());
    for (const name of all) {
      const alone = buildProgram(name).commands.map((c) => c.name());
      expect(alone, name).to.include(name);
      expect(alone.length, name).to.be.below(all.length);
    }
  });

  it('finds the command after the global options, skipping their values', () => {
    expect(commandNamed(['run', '--once'])).to.equal('run');
    expect(commandNamed(['--config', 'run', 'status'])).to.equal('status');
    expect(commandNamed(['-c', 'meshd.yaml', '--json', '-m', 'X26ABC1', '--log-level', 'debug', 'ledger', 'list'])).to.equal('ledger');
    expect(commandNamed(['--config=meshd.yaml', 'send', 'a.dat'])).to.equal('send');
  });

  it('names none for help, version, a typo or nothing: then every command is registered', () => {
    for (const args of [[], ['--help'], ['-h', 'run'], ['-V'], ['help', 'run'], ['rnu', '--once'], ['--', 'run']]) {
      expect(commandNamed(args), args.join(' ')).to.equal(undefined);
    }
  });
});
