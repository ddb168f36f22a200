import { expect } from 'chai';
import { FaultInjector, parseFaultSpec, type FaultEndpoint } from '../../src/sim/faults';

function kinds(injector: FaultInjector, endpoint: FaultEndpoint, n: number): string[] {
  return Array.from({ length: n }, () => injector.decide(endpoint).action.kind);
}

describe('sim fault spec', () => {
  it('parses endpoint:kind=value rules, with named endpoints overriding *', () => {
    const spec = parseFaultSpec('send:503=0.1, send:reset-after-accept=0.05,download:reset=0.1,*:latency=20,*:429=0.05,*:retry-after=3');
    expect(spec).to.deep.equal({
      send: { '503': 0.1, 'reset-after-accept': 0.05 },
      download: { reset: 0.1 },
      '*': { latency: 20, '429': 0.05, 'retry-after': 3 },
    });
    expect(parseFaultSpec(undefined)).to.deep.equal({});
    expect(parseFaultSpec('  ')).to.deep.equal({});
  });

  const BAD: Array<[string, RegExp]> = [
    ['send:503', /not endpoint:kind=value/],
    ['upload:503=0.1', /unknown endpoint "upload"/],
    ['send:404=0.1', /unknown kind "404"/],
    ['send:503=1.5', /probability 0..1/],
    ['inbox:reset-after-accept=0.1', /only to send and chunk/],
    ['send:503=0.6,send:500=0.6', /add up to 1.2/],
  ];
  for (const [spec, message] of BAD) {
    it(`refuses "${spec}" with a clear message`, () => {
      expect(() => parseFaultSpec(spec)).to.throw(message).with.property('code', 'SIM_FAULT_SPEC');
    });
  }

  it('gives the same faults for the same seed and different ones for another seed', () => {
    const spec = 'send:503=0.3,send:500=0.2,*:429=0.1';
    const a = kinds(new FaultInjector(spec, 42), 'send', 200);
    const b = kinds(new FaultInjector(spec, 42), 'send', 200);
    const c = kinds(new FaultInjector(spec, 43), 'send', 200);
    expect(a).to.deep.equal(b);
    expect(a).not.to.deep.equal(c);
    expect(a).to.include.members(['503', '500', '429', 'none']);
  });

  it('keeps each endpoint on its own stream, so traffic elsewhere does not shift it', () => {
    const spec = '*:503=0.5';
    const quiet = new FaultInjector(spec, 7);
    const busy = new FaultInjector(spec, 7);
    const expected = kinds(quiet, 'download', 50);
    const got: string[] = [];
    for (let i = 0; i < 50; i++) {
      busy.decide('inbox');
      busy.decide('ack');
      got.push(busy.decide('download').action.kind);
    }
    expect(got).to.deep.equal(expected);
  });

  it('roughly honours the probabilities over many draws', () => {
    const injector = new FaultInjector('inbox:503=0.25', 1);
    const hits = kinds(injector, 'inbox', 4000).filter((k) => k === '503').length;
    expect(hits).to.be.within(800, 1200);
  });

  it('adds latency without a fault, and 429 carries the retry-after seconds', () => {
    const injector = new FaultInjector('*:latency=20,ack:429=1,ack:retry-after=7', 1);
    expect(injector.decide('inbox')).to.deep.equal({ action: { kind: 'none' }, latencyMs: 20 });
    expect(injector.decide('ack')).to.deep.equal({ action: { kind: '429', retryAfterSeconds: 7 }, latencyMs: 20 });
  });

  it('applies reset-after-accept from * only to send and chunk', () => {
    const injector = new FaultInjector('*:reset-after-accept=1', 1);
    expect(injector.decide('send').action.kind).to.equal('reset-after-accept');
    expect(injector.decide('chunk').action.kind).to.equal('reset-after-accept');
    expect(injector.decide('download').action.kind).to.equal('none');
  });

  it('answers some 500s with an XML body, as real MESH does', () => {
    const injector = new FaultInjector('tracking:500=1', 3);
    const flavours = Array.from({ length: 40 }, () => injector.decide('tracking').action).map((a) => (a.kind === '500' ? a.xmlBody : undefined));
    expect(flavours).to.include(true);
    expect(flavours).to.include(false);
  });
});
