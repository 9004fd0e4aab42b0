import test from 'ava';
import { indexManifest, type ManifestBody } from '../../verifier-vm/manifest.ts';

const body: ManifestBody = {
  kernel: 'synthetic',
  vmlinuzSha256: '0'.repeat(64),
  sections: [{ name: '.text', vaddr: 'ffffffff81000000', paddr: '1000000', size: 0x1000, sha256: '0'.repeat(64) }],
  symbols: { __init_begin: 'ffffffff83044000', __init_end: 'ffffffff83306000' },
  mcountSites: [],
  jumpEntries: [],
  exports: {},
  ftraceTrampolines: {},
  fentry: 'ffffffff81076650',
};

test('the init region from __init_begin/__init_end is an .init.text range, so plugins can refuse it after boot', (t) => {
  const m = indexManifest(body, '0123456789abcdef');
  t.deepEqual(
    m.textRanges.map((r) => [r.name, r.start.toString(16), r.end.toString(16)]),
    [
      ['.text', 'ffffffff81000000', 'ffffffff81001000'],
      ['.init.text', 'ffffffff83044000', 'ffffffff83306000'],
    ],
  );
});
