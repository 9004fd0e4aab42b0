/**
 * Putting user-supplied text (a path, a name, a value from a file) into a message. Input can
 * be binary or megabytes long; echoed as it is it floods the terminal, and control bytes in
 * it can move the cursor or retitle the window. This is the one helper every message uses
 * for text it did not write itself.
 */

/** Longest quoted text in a message, in characters, when the caller names no other bound. */
export const MESSAGE_TEXT_MAX = 80;

/**
 * `text` fit for a message: C0/C1 controls, DEL, lone surrogates and the Unicode line and
 * bidi controls escaped (`\n`, `\x00`, `\u202e`), cut to `max` characters with the number
 * of characters left out (`…(1048496 more)`). `quoted` wraps the result in single quotes.
 */
export function quoteForMessage(text: string, max: number = MESSAGE_TEXT_MAX, quoted = false): string {
  let out = '';
  let shown = 0;
  let i = 0;
  for (; i < text.length && shown < max; i++) {
    const code = text.charCodeAt(i);
    let piece: string;
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && (text.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      piece = text.slice(i, i + 2);
      i++;
    } else piece = escapeChar(code);
    out += piece;
    shown++;
  }
  const rest = text.length - i;
  const cut = rest > 0 ? `…(${rest} more)` : '';
  return quoted ? `'${out}'${cut}` : `${out}${cut}`;
}

function escapeChar(code: number): string {
  switch (code) {
    case 0x0a:
      return '\\n';
    case 0x0d:
      return '\\r';
    case 0x09:
      return '\\t';
  }
  const control = code < 0x20 || (code >= 0x7f && code <= 0x9f);
  if (control) return `\\x${code.toString(16).padStart(2, '0')}`;
  const invisible =
    (code >= 0xd800 && code <= 0xdfff) ||
    code === 0x2028 ||
    code === 0x2029 ||
    (code >= 0x202a && code <= 0x202e) ||
    (code >= 0x2066 && code <= 0x2069) ||
    code === 0xfeff;
  if (invisible) return `\\u${code.toString(16).padStart(4, '0')}`;
  return String.fromCharCode(code);
}
