// parseCsv (csv-parse's sync API underneath): RFC 4180 fields, and bad
// quoting as an error that names the line instead of a silently merged file.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { manifestSource, parseCsv } from '../lib/data';
import { tmpDir } from './helpers';

describe('parseCsv', () => {
  it('quoted fields, "" escapes, CRLF, a BOM, blank lines, ragged rows', () => {
    expect(parseCsv('\ufeffa,b\r\n"x,1","say ""hi"""\r\n\r\n"multi\nline",3,extra\nlast')).to.deep.equal([
      ['a', 'b'],
      ['x,1', 'say "hi"'],
      ['multi\nline', '3', 'extra'],
      ['last'],
    ]);
    expect(parseCsv('')).to.deep.equal([]);
  });

  it('an unterminated quote is an error naming its line, not the rest of the file swallowed into one field', () => {
    expect(() => parseCsv('"unterminated,x\n1,2')).to.throw(/line 1\b.*quote/i);
    expect(() => parseCsv('a,b\n1,2\n"open,3\n4,5\n', 'list.csv')).to.throw(/list\.csv: line 3\b.*quote.*Fix:/is);
  });

  it('a quote inside an unquoted field is an error naming line and column', () => {
    expect(() => parseCsv('a,b\nx,y"z\n', 'm.csv')).to.throw(/m\.csv: line 2\b.*column 2\b/);
  });

  it('a manifest with an unterminated quote fails naming the file and line', async () => {
    const dir = tmpDir('csv');
    const mf = path.join(dir, 'list.csv');
    fs.writeFileSync(mf, 'path,label\na.mp4,0\n"b.mp4,1\nc.mp4,2\n');
    let err: Error | undefined;
    try {
      await manifestSource(mf).list();
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(new RegExp(`${mf.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: line 3\\b`));
  });
});
