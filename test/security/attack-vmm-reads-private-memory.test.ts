/**
 * Attack: the host reads private guest memory (the threat of the KVM protected-memory RFC,
 * 2020): a compromised or curious VMM, or a guest that tricks the VMM's disk into copying its
 * kernel's secrets out, reads memory the guest never shared.
 *
 * The guest runs in protected-memory mode: everything is private except what it shares with
 * KVM_HC_MAP_GPA_RANGE. It keeps a secret in a private page and shares one bounce page.
 *
 * Expected stop: the VMM's copy paths (hypervisor/vmm/host-memory.ts) refuse a private page
 * loudly, with a typed `private-page` error naming the path, the address and that the page is
 * private; nothing is copied; the refusal is in the VMM's event log and the audit log. The
 * shared page works. The disk cannot be used as a side door: a virtio-blk WRITE from the
 * private page is refused, and the secret never reaches the disk.
 */
import { gpa } from '../../shared/addr.ts';
import test from 'ava';
import { bootSynthetic } from '../helpers/synthetic-machine.ts';
import { HC, KVM_MAP_GPA_RANGE } from '../../shared/abi.ts';
import { VIRTIO_BLK_S, VIRTIO_BLK_T, encodeVirtioBlkRequest } from '../../shared/virtio-blk.ts';

const SECRET_PAGE = 0x72_0000n;
const BOUNCE = 0x73_0000n;
const SECRET = new TextEncoder().encode('-----BEGIN PRIVATE KEY----- guest secret');

async function protectedGuest() {
  const m = bootSynthetic({ protectedMemory: true });
  m.vmm.core.memory.write(gpa(SECRET_PAGE), SECRET); // the guest's own write
  const r = await m.cpu.vmcall(HC.MAP_GPA_RANGE, BOUNCE, 1n, BigInt(KVM_MAP_GPA_RANGE.DECRYPTED));
  if (r !== 0) throw new Error(`MAP_GPA_RANGE failed: ${r}`);
  m.vmm.core.memory.write(gpa(BOUNCE), new TextEncoder().encode('shared data'));
  return m;
}

test("the VMM's snapshot path on a private page fails loudly, copies nothing, and is audited", async (t) => {
  const m = await protectedGuest();
  const r = m.vmm.hostMemory.copyFromGuest('snapshot', gpa(SECRET_PAGE), SECRET.length);
  t.false(r.ok, 'private memory must not be readable by the host');
  if (r.ok) return;
  t.is(r.error.kind, 'private-page');
  t.is(r.error.path, 'snapshot');
  t.is<bigint, bigint>(r.error.gpa, SECRET_PAGE);
  t.is(
    r.error.message,
    `snapshot: host read of 0x720000+${SECRET.length} refused: frame 0x720 is private guest memory (protected-memory mode; the guest has not shared it with KVM_HC_MAP_GPA_RANGE)`,
  );
  t.false('value' in r, 'no bytes come back');

  const ev = m.vmm.log.byKind('host-access-refused');
  t.is(ev.length, 1);
  t.like(ev[0], { path: 'snapshot', access: 'read', gpa: SECRET_PAGE, frame: 0x720 });
  const audit = m.vmm.ownAudit.records();
  t.is(audit.length, 1);
  t.like(audit[0], { event: 'host-access-refused', path: 'snapshot', access: 'read', gpa: '0x720000', frame: 0x720 });
  t.regex(String(audit[0]!['reason']), /private guest memory/);
});

test('a page the guest shared can be read; once it takes it back, it cannot', async (t) => {
  const m = await protectedGuest();
  const r = m.vmm.hostMemory.copyFromGuest('snapshot', gpa(BOUNCE), 11);
  t.true(r.ok);
  if (r.ok) t.is(new TextDecoder().decode(r.value), 'shared data');
  t.is(await m.cpu.vmcall(HC.MAP_GPA_RANGE, BOUNCE, 1n, BigInt(KVM_MAP_GPA_RANGE.ENCRYPTED)), 0);
  const again = m.vmm.hostMemory.copyFromGuest('snapshot', gpa(BOUNCE), 11);
  t.false(again.ok);
  if (!again.ok) t.is(again.error.kind, 'private-page');
});

test('the disk is no side door: a virtio-blk write from a private page is refused and the secret stays off the disk', async (t) => {
  const m = await protectedGuest();
  const disk = m.vmm.devices.disk;
  // The descriptor and the status byte live in the shared bounce page, as a real driver's would.
  m.vmm.core.memory.write(
    gpa(BOUNCE),
    encodeVirtioBlkRequest({ type: VIRTIO_BLK_T.OUT, sector: 0n, dataGpa: SECRET_PAGE, dataLen: 512, statusGpa: BOUNCE + 0x100n }),
  );
  const r = disk.notify(BOUNCE);
  t.false(r.ok);
  if (!r.ok) {
    t.is(r.error.kind, 'dma-refused');
    t.is(r.error.refusal?.kind, 'private');
    t.is(r.error.status, VIRTIO_BLK_S.IOERR);
  }
  t.true(
    disk.readSectors(0, 1).every((b) => b === 0),
    'nothing reached the disk',
  );
  t.is(m.vmm.core.memory.read(gpa(BOUNCE + 0x100n), 1)[0], VIRTIO_BLK_S.IOERR);
  t.like(m.vmm.ownAudit.records().at(-1), { event: 'dma-refused', direction: 'from-guest', refusal: 'private', frame: 0x720 });
});
