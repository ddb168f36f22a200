import { expect } from 'chai';
import { checkOutboundControl, ctlDateTime, formatControlFile, parseControlFile } from '../../src/transfer/ctl';

describe('DTSControl files', () => {
  it('reads the Java client elements case-insensitively and tolerates unknown ones', () => {
    const ctl = parseControlFile(`<?xml version="1.0" encoding="UTF-8"?>
<dtscontrol>
  <version>1.0</version>
  <ADDRESSTYPE>DTS</ADDRESSTYPE>
  <MessageType>Data</MessageType>
  <From_DTS>X26ABC1</From_DTS>
  <to_dts>X26ABC2</to_dts>
  <Subject>Weekly list</Subject>
  <LocalId>batch-7</LocalId>
  <WorkflowId>TEST_WORKFLOW</WorkflowId>
  <Compress>y</Compress>
  <AllowChunking>N</AllowChunking>
  <SomethingNew>kept out</SomethingNew>
</dtscontrol>`);
    expect(ctl).to.include({ toDts: 'X26ABC2', fromDts: 'X26ABC1', workflowId: 'TEST_WORKFLOW', subject: 'Weekly list', localId: 'batch-7', compress: true, allowChunking: false });
    expect(() => checkOutboundControl(ctl)).not.to.throw();
  });

  it('keeps status codes as text ("00" stays "00")', () => {
    const ctl = parseControlFile('<DTSControl><StatusRecord><DateTime>20261124100000</DateTime><Event>TRANSFER</Event><Status>SUCCESS</Status><StatusCode>00</StatusCode><Description>ok</Description></StatusRecord></DTSControl>');
    expect(ctl.statusRecords).to.deep.equal([{ dateTime: '20261124100000', event: 'TRANSFER', status: 'SUCCESS', statusCode: '00', description: 'ok' }]);
  });

  it('refuses malformed XML with the line and column', () => {
    expect(() => parseControlFile('<DTSControl><To_DTS>X</DTSControl>')).to.throw(/not well-formed XML.*line 1/);
  });

  it('refuses DTDs and entity declarations (no entity expansion)', () => {
    expect(() => parseControlFile('<!DOCTYPE x [<!ENTITY a "aaaa">]><DTSControl><To_DTS>&a;</To_DTS></DTSControl>')).to.throw(/DTD/);
  });

  it('refuses a document without a DTSControl root', () => {
    expect(() => parseControlFile('<Other/>')).to.throw(/DTSControl/);
  });

  it('refuses a non-Y/N flag', () => {
    expect(() => parseControlFile('<DTSControl><Compress>maybe</Compress></DTSControl>')).to.throw(/Compress.*Y or N/);
  });

  it('requires a recipient and a workflow to send, and only Data messages', () => {
    expect(() => checkOutboundControl(parseControlFile('<DTSControl><WorkflowId>W</WorkflowId></DTSControl>'))).to.throw(/To_DTS/);
    expect(() => checkOutboundControl(parseControlFile('<DTSControl><To_DTS>X</To_DTS></DTSControl>'))).to.throw(/WorkflowId/);
    expect(() => checkOutboundControl(parseControlFile('<DTSControl><To_DTS>X</To_DTS><WorkflowId>W</WorkflowId><MessageType>Report</MessageType></DTSControl>'))).to.throw(/only Data/);
  });

  it('writes a control file that reads back the same, escaping markup', () => {
    const original = {
      toDts: 'X26ABC2',
      fromDts: 'X26ABC1',
      workflowId: 'TEST_WORKFLOW',
      subject: 'A & B <list>',
      dtsId: '20261124100000123456_ABCDEF',
      compress: true,
      statusRecords: [{ dateTime: ctlDateTime(new Date('2026-11-24T10:00:00Z')), event: 'TRANSFER', status: 'SUCCESS', statusCode: '00', description: 'Transferred' }],
    };
    const back = parseControlFile(formatControlFile(original));
    expect(back).to.include({ toDts: 'X26ABC2', fromDts: 'X26ABC1', workflowId: 'TEST_WORKFLOW', subject: 'A & B <list>', dtsId: original.dtsId, compress: true });
    expect(back.statusRecords[0].dateTime).to.equal('20261124100000');
  });
});
