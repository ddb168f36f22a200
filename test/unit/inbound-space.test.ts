import { expect } from 'chai';
import { spaceGuard, type SpaceReading } from '../../src/transfer/inbound/deliver';

describe('free-space guard of a receive pass', () => {
  const MiB = 1024 * 1024;

  function pass(free: number) {
    const state: { space?: SpaceReading; reads: number } = { reads: 0 };
    const read = async () => {
      state.reads++;
      return free;
    };
    return { state, read };
  }

  it('reads free space once for many small downloads, and again once 16 MiB were reserved since', async () => {
    const { state, read } = pass(100 * MiB);
    for (let i = 0; i < 100; i++) {
      const reserve = spaceGuard(10 * MiB, state, read); // one per download, as fetchOne makes them
      await reserve(0);
      await reserve(2_000);
    }
    expect(state.reads).to.equal(1);
    await spaceGuard(10 * MiB, state, read)(15 * MiB);
    expect(state.reads).to.equal(1);
    await spaceGuard(10 * MiB, state, read)(MiB);
    expect(state.reads).to.equal(2);
  });

  it('counts what every download of the pass reserved against the one reading', async () => {
    const { state, read } = pass(10 * MiB + 500_000);
    const first = spaceGuard(10 * MiB, state, read);
    const second = spaceGuard(10 * MiB, state, read);
    await first(300_000);
    let err: unknown;
    await second(300_000).catch((e) => (err = e));
    expect(err).to.have.property('code', 'IN_DISK_LOW');
    expect(state.reads).to.equal(1);
  });

  it('reads again when the reading is over a second old', async () => {
    const { state, read } = pass(100 * MiB);
    await spaceGuard(0, state, read)(0);
    state.space!.at -= 1_001;
    await spaceGuard(0, state, read)(0);
    expect(state.reads).to.equal(2);
  });
});
