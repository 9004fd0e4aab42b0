/** Escaping for the report's HTML: every text and attribute value goes through {@link esc}. */

const ENTITIES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** `s` with `& < > " '` replaced by entities: safe in element content and in quoted attributes. */
export function esc(s: string | number | bigint): string {
  return String(s).replace(/[&<>"']/g, (c) => ENTITIES[c]!);
}

/**
 * Text for inside a `<script>` or `<style>` element: no `</` can end the element early
 * (`<\/` is the same string to JavaScript and never appears in the CSS we write).
 */
export function rawText(s: string): string {
  return s.replace(/<\//g, '<\\/');
}
