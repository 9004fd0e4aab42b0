/**
 * Reading a static call's function off a trampoline, as `heki reference check` does to find
 * the static calls the real kernel's init code updated: `jmp func` is func; `ret; int3...` and,
 * on a return-thunk kernel, `jmp __x86_return_thunk` are NULL (6.1's
 * __static_call_transform(), case RET); anything else is unreadable, not guessed.
 */
import test from 'ava';
import { changedStaticCalls, staticCallStates, trampolineFunction } from '../../checks/reference/runtime-state.ts';
import { RET5, encodeJmp32 } from '../../shared/x86/patch-encodings.ts';

const TRAMP = 0xffffffff81e00000n;
const THUNK = 0xffffffff81e01000n;
const FUNC = 0xffffffff81234560n;

test('a trampoline names its function, NULL, or nothing', (t) => {
  t.is(trampolineFunction(TRAMP, encodeJmp32(TRAMP, FUNC), THUNK), FUNC);
  t.is(trampolineFunction(TRAMP, encodeJmp32(TRAMP, THUNK), THUNK), null);
  t.is(trampolineFunction(TRAMP, Uint8Array.from(RET5), THUNK), null);
  t.is(trampolineFunction(TRAMP, encodeJmp32(TRAMP, THUNK), undefined), THUNK, 'without a return thunk a jmp is a function');
  t.is(trampolineFunction(TRAMP, Uint8Array.of(0xe8, 0, 0, 0, 0), THUNK), undefined, 'a call is no trampoline form');
});

test('only the keys whose trampoline moved are changed', (t) => {
  const keys = [
    { key: 1n, trampoline: TRAMP },
    { key: 2n, trampoline: TRAMP + 8n },
    { key: 3n, trampoline: TRAMP + 16n },
    { key: 4n, trampoline: TRAMP + 24n },
  ];
  const text = (funcs: readonly (bigint | null)[]) => {
    const bytes = new Uint8Array(32);
    funcs.forEach((f, i) => bytes.set(f === null ? RET5 : encodeJmp32(TRAMP + BigInt(i * 8), f), i * 8));
    bytes.set([0x0f, 0x0b, 0x90, 0x90, 0x90], 24);
    return (va: bigint, len: number) =>
      va >= TRAMP && va + BigInt(len) <= TRAMP + 32n ? bytes.subarray(Number(va - TRAMP), Number(va - TRAMP) + len) : undefined;
  };
  const booted = staticCallStates(keys, text([FUNC, null, FUNC]), THUNK);
  const real = staticCallStates(keys, text([FUNC, FUNC + 16n, null]), THUNK);
  t.deepEqual(real.unreadable, [TRAMP + 24n]);
  t.deepEqual(
    [...changedStaticCalls(booted, real)],
    [
      [2n, FUNC + 16n],
      [3n, null],
    ],
  );
});
