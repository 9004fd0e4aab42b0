/**
 * The dependency rules (.dependency-cruiser.cjs, `npm run deps` in `npm test`) refuse what the
 * trust domains forbid. Each case runs the real checker with the real configuration on a small
 * tree in a temporary folder: the clean tree passes (so a failure below is the import's, not
 * the fixture's), and each forbidden import or circle alone fails, naming its rule. So the
 * check cannot pass silently because a rule no longer matches anything.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('../..', import.meta.url));
const CONFIG = join(root, '.dependency-cruiser.cjs');
const CRUISER = join(root, 'node_modules', 'dependency-cruiser', 'bin', 'dependency-cruise.mjs');

/** A tree that keeps every rule: each domain imports only what it may. */
const CLEAN: Readonly<Record<string, string>> = {
  'tsconfig.json': JSON.stringify({ compilerOptions: { module: 'NodeNext', moduleResolution: 'NodeNext', allowImportingTsExtensions: true, noEmit: true } }),
  'shared/abi.ts': 'export const ABI = 1;\n',
  'shared/protocol.ts': "import { ABI } from './abi.ts';\nexport const PROTOCOL = ABI;\n",
  'guest/kernel.ts': "import { ABI } from '../shared/abi.ts';\nexport const GUEST = ABI;\n",
  'hypervisor/vmm.ts':
    "import { readFileSync } from 'node:fs';\nimport { PROTOCOL } from '../shared/protocol.ts';\nexport const VMM = [readFileSync, PROTOCOL];\n",
  'verifier-vm/verifier.ts': "import { PROTOCOL } from '../shared/protocol.ts';\nexport const VERIFIER = PROTOCOL;\n",
  'tools/keygen.ts': "import { VERIFIER } from '../verifier-vm/verifier.ts';\nexport const KEYGEN = VERIFIER;\n",
  'machine/machine.ts':
    "import { GUEST } from '../guest/kernel.ts';\nimport { VMM } from '../hypervisor/vmm.ts';\nimport { KEYGEN } from '../tools/keygen.ts';\nexport const MACHINE = [GUEST, VMM, KEYGEN];\n",
  'cli/main.ts': "import { MACHINE } from '../machine/machine.ts';\nexport const MAIN = MACHINE;\n",
  'test/machine.test.ts': "import { MAIN } from '../cli/main.ts';\nexport const T = MAIN;\n",
};

interface Outcome {
  readonly code: number;
  readonly rules: readonly string[];
  readonly output: string;
}

/** Runs the checker with the project's configuration on CLEAN changed by `change`. */
async function check(change: Readonly<Record<string, string>>): Promise<Outcome> {
  const dir = mkdtempSync(join(tmpdir(), 'heki-deps-'));
  try {
    for (const [path, text] of Object.entries({ ...CLEAN, ...change })) {
      mkdirSync(dirname(join(dir, path)), { recursive: true });
      writeFileSync(join(dir, path), text);
    }
    // The `err` reporter is the one `npm run deps` uses: its exit code is the number of errors.
    const { code, stdout } = await new Promise<{ code: number; stdout: string }>((resolve) => {
      execFile(process.execPath, [CRUISER, '.', '--config', CONFIG, '--output-type', 'err'], { cwd: dir, maxBuffer: 1 << 24 }, (e, out) =>
        resolve({ code: e ? Number(e.code ?? 1) : 0, stdout: out }),
      );
    });
    const rules = [...stdout.matchAll(/^\s*error ([\w-]+):/gm)].map((m) => m[1] as string);
    return { code, rules: [...new Set(rules)].sort(), output: stdout };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('a tree whose domains import only what they may passes', async (t) => {
  const r = await check({});
  t.is(r.code, 0, r.output);
  t.deepEqual(r.rules, []);
});

/** One forbidden import or circle each: the change to CLEAN and the rules that must name it. */
const FORBIDDEN: ReadonlyArray<{ readonly title: string; readonly change: Readonly<Record<string, string>>; readonly rules: readonly string[] }> = [
  {
    title: 'hypervisor/ naming verifier-vm/ code fails, even for a type only',
    change: { 'hypervisor/vmm.ts': "import type { VERIFIER } from '../verifier-vm/verifier.ts';\nexport type V = typeof VERIFIER;\n" },
    rules: ['hypervisor-imports-only-shared'],
  },
  {
    title: 'shared/ importing a domain fails',
    change: { 'shared/protocol.ts': "import { VMM } from '../hypervisor/vmm.ts';\nexport const PROTOCOL = VMM;\n" },
    // shared -> hypervisor -> shared is also a circle, of the two files and of the two folders.
    rules: ['no-file-circle', 'no-folder-circle', 'shared-imports-only-itself'],
  },
  {
    title: 'the guest importing the hypervisor fails',
    change: { 'guest/kernel.ts': "import { VMM } from '../hypervisor/vmm.ts';\nexport const GUEST = VMM;\n" },
    rules: ['guest-imports-only-shared'],
  },
  {
    title: 'verifier-vm/ importing a host-side tool fails',
    change: { 'verifier-vm/verifier.ts': "import { KEYGEN } from '../tools/keygen.ts';\nexport const VERIFIER = KEYGEN;\n" },
    rules: ['no-file-circle', 'no-folder-circle', 'verifier-vm-imports-only-shared'],
  },
  {
    title: 'a circle between two folders fails as a circle',
    change: { 'machine/machine.ts': "import { MAIN } from '../cli/main.ts';\nexport const MACHINE = MAIN;\n" },
    rules: ['no-file-circle', 'no-folder-circle', 'machine-imports-only-shared-guest-hypervisor-verifier-vm-tools'],
  },
  {
    title: 'a file circle inside one folder fails',
    change: { 'shared/abi.ts': "import { PROTOCOL } from './protocol.ts';\nexport const ABI = 1;\nexport const P = () => PROTOCOL;\n" },
    rules: ['no-file-circle'],
  },
  {
    title: 'a source folder no rule places fails',
    change: { 'extra/thing.ts': "import { ABI } from '../shared/abi.ts';\nexport const THING = ABI;\n" },
    rules: ['no-unknown-folder'],
  },
  {
    title: 'an import of a file that does not exist fails',
    change: { 'guest/kernel.ts': "import { ABI } from '../shared/abj.ts';\nexport const GUEST = ABI;\n" },
    rules: ['not-to-unresolvable'],
  },
];

for (const c of FORBIDDEN) {
  test(c.title, async (t) => {
    const r = await check(c.change);
    t.not(r.code, 0, r.output);
    t.deepEqual(r.rules, [...c.rules].sort(), r.output);
  });
}

test('every top-level folder that holds TypeScript is type-checked (tsconfig.json include)', (t) => {
  const include = (JSON.parse(readFileSync(join(root, 'tsconfig.json'), 'utf8')) as { include: string[] }).include;
  const holdsTs = (dir: string): boolean =>
    readdirSync(dir).some((name) => {
      const path = join(dir, name);
      return statSync(path).isDirectory() ? holdsTs(path) : name.endsWith('.ts');
    });
  const folders = readdirSync(root).filter(
    (name) => !name.startsWith('.') && name !== 'node_modules' && name !== 'docs' && statSync(join(root, name)).isDirectory() && holdsTs(join(root, name)),
  );
  t.true(folders.includes('machine'));
  for (const folder of folders) t.true(include.includes(folder), `${folder}/ is in tsconfig.json's include`);
});
