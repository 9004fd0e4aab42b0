/**
 * The trust domains as code (../shared/ARCHITECTURE.md, "Three trust domains, one flow"):
 * which top-level folder may import which, checked by dependency-cruiser in `npm test`
 * (`npm run deps`). Type-only imports count: a type names a domain's code as a value does.
 *
 *   shared/       nothing of the other folders (the contract the three domains agree on)
 *   guest/        shared/ only (the guest reaches the machine through its vCPU)
 *   hypervisor/   shared/ only (never verifier-vm/: the host's audit log and keys are its own)
 *   verifier-vm/  shared/ only (what the verifier worker runs, and nothing else)
 *   tools/        shared/ and verifier-vm/ (host-side tools: the files the verifier reads)
 *   machine/      the domains and tools/ (the composition root: createMachine, the steps, lifecycle)
 *   scenario/     shared/ and machine/ (the scenario engine drives a MachineApi)
 *   report/       shared/, hypervisor/, machine/, scenario/ (the HTML report of a run)
 *   checks/       the domains, tools/ and machine/ (the attack catalogue's runner, the reference check)
 *   bench/        what machine/ may, and machine/;  cli/  all of these;  test/  anything
 *   plugins/      shared/, verifier-vm/, tools/ (`heki plugin new` writes here in a checkout:
 *                 heki-sim/plugin-api, /protocol, /plugin-testing)
 *
 * These allowances form no circle, so a circle between top-level folders needs a forbidden
 * import; `no-folder-circle` names it as such all the same. File circles are refused too,
 * but for the known ones listed in KNOWN_FILE_CIRCLES, each with why it is still there.
 */
const FOLDERS = [
  'shared',
  'guest',
  'hypervisor',
  'verifier-vm',
  'tools',
  'machine',
  'scenario',
  'report',
  'checks',
  'bench',
  'cli',
  'test',
  'types',
  'plugins',
];

/**
 * Files of the file circles that predate the rule; a circle among them only is not reported.
 * Remove an entry with the change that breaks its circle.
 */
const KNOWN_FILE_CIRCLES = [
  // The core and its vCPUs and hypercall handlers know each other: vm-core -> vcpu ->
  // hypercalls/dispatch -> each handler -> hypercalls/context -> vm-core (type imports in part).
  '^hypervisor/core/(vm-core|core-state)\\.ts$',
  '^hypervisor/vcpu/(vcpu|memory-access)\\.ts$',
  '^hypervisor/hypercalls/[^/]+\\.ts$',
  // ... and the one authenticated-change function every handler calls names the core's type.
  '^hypervisor/core/auth/authenticated-change\\.ts$',
  // ... and the Hyper-V personality's VtlCall table, which the vCPU reaches as it reaches the KVM one.
  '^hypervisor/hyperv/[^/]+\\.ts$',
  // A request in flight and the worker handle that holds it name each other.
  '^hypervisor/verifier-link/(pending-request|worker-handle)\\.ts$',
  // The benchmark's runner and its scaling sweep.
  '^bench/(run|scaling)\\.ts$',
];

/** Files under `from` may import only files under `from` and `allowed` (and Node's and npm's modules). */
function only(from, allowed, comment) {
  return {
    name: `${from}-imports-only-${allowed.length ? allowed.join('-') : 'itself'}`,
    comment,
    severity: 'error',
    from: { path: `^${from}/` },
    // An import that resolves to nothing is not-to-unresolvable's, named once.
    to: { pathNot: `^(${[from, ...allowed].join('|')}|node_modules)/`, dependencyTypesNot: ['core'], couldNotResolve: false },
  };
}

module.exports = {
  forbidden: [
    only('shared', [], 'shared/ is the contract between the domains: it depends on none of them.'),
    only('guest', ['shared'], 'The guest touches the machine only through its vCPU interface (shared/guest-cpu.ts) and the ABI.'),
    only('hypervisor', ['shared'], 'The core and the VMM reach the verifier only through the protocol and the worker API in shared/.'),
    only('verifier-vm', ['shared'], 'verifier-vm/ holds what the worker runs: byte copies in, verdicts out, no host code.'),
    only('tools', ['shared', 'verifier-vm'], 'Host-side tools write what the verifier reads (keys, manifests, signatures) and test plugins.'),
    only('types', [], 'Declarations for untyped modules only.'),
    only('plugins', ['shared', 'verifier-vm', 'tools'], 'A plugin runs in the worker: the plugin API and the protocol, and the testing kit in its test.'),
    only('machine', ['shared', 'guest', 'hypervisor', 'verifier-vm', 'tools'], 'The composition root wires the domains; it is not the command.'),
    only('scenario', ['shared', 'machine'], 'The scenario engine drives a MachineApi, whatever builds it.'),
    only('report', ['shared', 'hypervisor', 'machine', 'scenario'], 'The report draws what a run observed.'),
    only('checks', ['shared', 'guest', 'hypervisor', 'verifier-vm', 'tools', 'machine'], 'Regression checks run machines and judge them.'),
    only('bench', ['shared', 'guest', 'hypervisor', 'verifier-vm', 'tools', 'machine'], 'The benchmark measures the machine, not the command.'),
    only(
      'cli',
      ['shared', 'guest', 'hypervisor', 'verifier-vm', 'tools', 'machine', 'scenario', 'report', 'checks', 'bench'],
      'The command may use all but the tests.',
    ),
    {
      name: 'no-folder-circle',
      comment: 'A circle between top-level folders makes two of them one.',
      severity: 'error',
      scope: 'folder',
      from: { path: `^(${FOLDERS.join('|')})$` },
      to: { path: `^(${FOLDERS.join('|')})$`, circular: true },
    },
    {
      name: 'no-file-circle',
      comment: 'A file circle (but for KNOWN_FILE_CIRCLES).',
      severity: 'error',
      from: { pathNot: KNOWN_FILE_CIRCLES },
      to: { circular: true },
    },
    {
      name: 'no-unknown-folder',
      comment: 'Every source file is in a folder these rules place: a new folder needs its rule.',
      severity: 'error',
      from: { path: '/', pathNot: `^(${FOLDERS.join('|')}|node_modules)/` },
      to: {},
    },
    {
      name: 'not-to-unresolvable',
      comment: 'An import that resolves to no file.',
      severity: 'error',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    doNotFollow: { path: '^node_modules/' },
    exclude: { path: '^(node_modules|docs/api|\\.git)/' },
    // Resolve as Node does: package `exports` (tsx/esm/api; heki-sim/... from this package itself).
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'node', 'default'] },
  },
};
