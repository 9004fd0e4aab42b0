/**
 * Every authenticated hypercall goes through the one authenticated-change function: for each,
 * the steps as the machine shows them (EPT changes, the core's text writes, the VMM exit that
 * stages a kexec image, the verifier call, the audit record) come in the order freeze,
 * snapshot and verify, apply, audit, thaw; a denial applies nothing; a step that throws still
 * thaws and audits; and no handler calls a step itself.
 */
import { gfn, gpa, gva } from '../../shared/addr.ts';
import test from 'ava';
import { readdirSync, readFileSync } from 'node:fs';
import { HC, KVM_STATUS, MEM_ATTR } from '../../shared/abi.ts';
import { encodeCodeDesc, encodeKexecDesc, encodePatchBatch } from '../../shared/heki-descriptors.ts';
import { EPT_FROZEN } from '../../hypervisor/ept/permissions.ts';
import type { OutgoingRequest } from '../../hypervisor/verifier-link/verifier-link.ts';
import { LAYOUT, type SyntheticMachine } from '../helpers/synthetic-machine.ts';
import { BLOB, BLOB_VA, DESC, MOD_DATA, MOD_TEXT, MOD_VA, grants, withVerifier } from '../helpers/stub-verifier-machine.ts';

const NAME_VA = BLOB_VA + 13n; // 'mod0'
const frame = (pa: bigint) => Number(pa >> 12n);

interface Case {
  readonly nr: number;
  /** The audit kind. */
  readonly kind: string;
  /** Writes the descriptor (and runs earlier steps); resolves to the hypercall's arguments. */
  readonly setup: (m: SyntheticMachine) => Promise<bigint[]> | bigint[];
  /** The frames that must be frozen while the verifier decides. */
  readonly frozen: readonly number[];
  /** A guest-virtual address on a frozen frame that the guest's page tables map writable. */
  readonly writable?: bigint;
  /** The steps of an allowed change, repeats folded. */
  readonly allowed: readonly string[];
  /** What a denial returns and audits as applied. */
  readonly denied: { readonly status: number; readonly applied: boolean };
}

const GATED_DENIAL = { status: -KVM_STATUS.KVM_EPERM, applied: false };
const GATED = ['freeze', 'verify', 'apply', 'audit', 'thaw'];

const CASES: Readonly<Record<string, Case>> = {
  'end-boot': {
    nr: HC.HEKI_END_BOOT,
    kind: 'kernel-text',
    setup: () => [],
    frozen: [frame(LAYOUT.text)],
    allowed: ['freeze', 'verify', 'audit', 'thaw'],
    denied: GATED_DENIAL,
  },
  'load-module': {
    nr: HC.HEKI_LOAD_MODULE,
    kind: 'module-load',
    setup: () => [DESC],
    frozen: [frame(MOD_TEXT), frame(MOD_DATA)],
    writable: MOD_VA,
    allowed: GATED,
    denied: GATED_DENIAL,
  },
  'load-code': {
    nr: HC.HEKI_LOAD_CODE,
    kind: 'code-load',
    setup: (m) => {
      m.vmm.core.memory.write(
        gpa(DESC),
        encodeCodeDesc({
          what: 'bpf-jit',
          imageGva: MOD_VA,
          imageLen: 10,
          nameGva: NAME_VA,
          nameLen: 4,
          keyId: new Uint8Array(8),
          signature: new Uint8Array(64),
        }),
      );
      return [DESC];
    },
    frozen: [frame(MOD_TEXT)],
    writable: MOD_VA,
    allowed: GATED,
    denied: GATED_DENIAL,
  },
  'set-memory': {
    nr: HC.HEKI_SET_MEMORY,
    kind: 'set-memory',
    setup: () => [BLOB_VA, 1n, BigInt(MEM_ATTR.READ)],
    frozen: [frame(BLOB)],
    writable: BLOB_VA,
    allowed: GATED,
    denied: GATED_DENIAL,
  },
  'text-patch': {
    nr: HC.HEKI_TEXT_PATCH,
    kind: 'text-patch',
    setup: (m) => {
      m.vmm.core.memory.write(
        gpa(DESC),
        encodePatchBatch([
          { kind: 'ftrace', site: m.kva(LAYOUT.text), oldBytes: Uint8Array.of(0x0f, 0x1f, 0x44, 0, 0), newBytes: Uint8Array.of(0xe8, 1, 2, 3, 4) },
        ]),
      );
      return [DESC];
    },
    frozen: [frame(LAYOUT.text)],
    allowed: GATED,
    denied: GATED_DENIAL,
  },
  'kexec-load': {
    nr: HC.HEKI_KEXEC_LOAD,
    kind: 'kexec-image',
    setup: (m) => {
      m.vmm.core.memory.write(gpa(DESC), encodeKexecDesc({ imageGva: BLOB_VA, imageLen: 12, manifestGva: NAME_VA, manifestLen: 4 }));
      return [DESC, 0n];
    },
    frozen: [],
    allowed: ['verify', 'apply', 'audit'],
    denied: GATED_DENIAL,
  },
  'unload-module': {
    nr: HC.HEKI_UNLOAD_MODULE,
    kind: 'module-unload',
    setup: async (m) => {
      if ((await m.cpu.vmcall(HC.HEKI_LOAD_MODULE, DESC)) !== 0) throw new Error('setup: the module did not load');
      return [NAME_VA, 4n];
    },
    frozen: [],
    // A revocation: permissions are taken away first, whatever the verifier says.
    allowed: ['apply', 'verify', 'audit'],
    denied: { status: 0, applied: true },
  },
};

/**
 * Runs `c` on a fresh machine whose verifier answers `answer` ('audit-fails': allows, and the
 * change's first audit record cannot be written), tracing its steps from the hypercall on.
 */
async function traced(c: Case, answer: 'allow' | 'deny' | 'audit-fails') {
  const trace: string[] = [];
  const during: { frozen?: boolean; guestWrite?: boolean } = {};
  let armed = false;
  let denyNow = false;
  const { m, audit } = withVerifier((r: OutgoingRequest) => {
    if (armed) {
      trace.push('verify');
      during.frozen = c.frozen.every((f) => (m.vmm.core.ept.get(gfn(f)) & EPT_FROZEN) !== 0);
      if (c.writable !== undefined) during.guestWrite = m.cpu.write(gva(c.writable), Uint8Array.of(0xcc)).ok; // TOCTOU attempt
    }
    if (denyNow) return { ok: false, reason: 'stub: no' };
    if (r.kind === 'module-load') return { ok: true, reason: 'ok', grants };
    if (r.kind === 'text-patch') return { ok: true, reason: 'ok', items: r.items.map(() => ({ ok: true, reason: 'ok' })) };
    return { ok: true, reason: 'ok' };
  });
  const args = await c.setup(m);
  const core = m.vmm.core;
  const set = core.ept.set.bind(core.ept);
  core.ept.set = (f, perms) => {
    const was = core.ept.get(f);
    if (armed && was !== perms) trace.push(!(was & EPT_FROZEN) && perms & EPT_FROZEN ? 'freeze' : was & EPT_FROZEN && !(perms & EPT_FROZEN) ? 'thaw' : 'apply');
    set(f, perms);
  };
  const copyIn = core.memory.copyIn.bind(core.memory);
  core.memory.copyIn = (...a) => {
    if (armed) trace.push('apply');
    copyIn(...a);
  };
  const exit = core.exit.bind(core);
  core.exit = (e) => {
    if (armed && e.reason === 'kexec-load') trace.push('apply');
    return exit(e);
  };
  const append = audit.append.bind(audit);
  let auditFailed = false;
  audit.append = (fields) => {
    if (armed) trace.push('audit');
    if (armed && answer === 'audit-fails' && !auditFailed) {
      auditFailed = true;
      throw new Error('audit disk full');
    }
    return append(fields);
  };
  const mark = audit.count;
  denyNow = answer === 'deny';
  armed = true;
  const status = await m.cpu.vmcall(c.nr, ...args);
  const folded = trace.filter((s, i) => s !== trace[i - 1]);
  return { m, status, folded, during, records: audit.since(mark) };
}

for (const [name, c] of Object.entries(CASES)) {
  test(`${name}: allowed, the steps come in order, frozen while the verifier decides, one record`, async (t) => {
    const r = await traced(c, 'allow');
    t.is(r.status, 0);
    t.deepEqual(r.folded, c.allowed);
    t.true(r.during.frozen, 'every target frame is frozen while the verifier decides');
    if (c.writable !== undefined) t.false(r.during.guestWrite, 'the guest cannot change the bytes between the snapshot and the verdict');
    t.true(
      c.frozen.every((f) => (r.m.vmm.core.ept.get(gfn(f)) & EPT_FROZEN) === 0),
      'thawed',
    );
    t.is(r.records.length, 1);
    t.like(r.records[0], { event: 'verdict', kind: c.kind, ok: true, applied: true });
  });

  test(`${name}: denied, nothing is applied, one record`, async (t) => {
    const r = await traced(c, 'deny');
    t.is(r.status, c.denied.status);
    t.is(r.folded.includes('apply'), c.denied.applied, c.denied.applied ? 'a revocation applies regardless' : 'a denial applies nothing');
    t.true(
      c.frozen.every((f) => (r.m.vmm.core.ept.get(gfn(f)) & EPT_FROZEN) === 0),
      'thawed',
    );
    t.is(r.records.length, 1);
    t.like(r.records[0], { kind: c.kind, ok: false, applied: c.denied.applied });
  });

  test(`${name}: a step that throws (the audit log) still thaws and audits, and the VM stops`, async (t) => {
    const r = await traced(c, 'audit-fails');
    t.is(r.status, -KVM_STATUS.KVM_EFAULT);
    t.regex(r.m.vmm.core.stopped ?? '', /internal error in hypercall \d+: audit disk full/);
    t.true(
      c.frozen.every((f) => (r.m.vmm.core.ept.get(gfn(f)) & EPT_FROZEN) === 0),
      'thawed',
    );
    t.is(r.records.length, 1, 'the failure is audited');
    t.like(r.records[0], { kind: c.kind, ok: true, step: 'audit', error: 'audit disk full', applied: true });
  });
}

test('no hypercall handler runs a step itself: every authenticated one calls authenticatedChange', (t) => {
  const dir = new URL('../../hypervisor/hypercalls/', import.meta.url);
  const files = readdirSync(dir).filter((f) => f.endsWith('.ts'));
  for (const f of files) {
    const src = readFileSync(new URL(f, dir), 'utf8');
    t.notRegex(src, /\bauth\.(freeze|thaw|verify|verifyPatches|record)\(/, `${f} calls a step of the authenticated change itself`);
  }
  for (const name of Object.keys(CASES)) {
    t.regex(readFileSync(new URL(`${name}.ts`, dir), 'utf8'), /\bauthenticatedChange\(ctx, auth, \{/, `${name}.ts goes through authenticatedChange`);
  }
});
