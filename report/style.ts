/** The report page's inline stylesheet and script (no external resource: it opens from file://). */

/** Colours of the EPT classes (report/perm-class.ts). */
export const PERM_COLOURS = {
  rx: '#2f9e5b',
  r: '#3d7fd9',
  rw: '#e3a128',
  rwx: '#d9463e',
  x: '#8f5cc9',
  none: '#4a4f57',
  unmapped: '#d7dbe0',
} as const;

/** The stylesheet. */
export const REPORT_CSS = `
:root { --fg:#1d2329; --muted:#5b6670; --line:#dde2e7; --bg:#f6f8fa; --card:#fff; --accent:#b3261e; }
* { box-sizing: border-box; }
body { margin:0; font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif; color:var(--fg); background:var(--bg); }
header { background:#1f2933; color:#fff; padding:18px 28px; }
header h1 { margin:0 0 4px; font-size:20px; font-weight:600; }
header .sub { color:#c5cdd5; font-size:13px; }
.badge { display:inline-block; padding:1px 9px; border-radius:10px; font-size:12px; font-weight:600; margin-left:8px; vertical-align:2px; }
.badge.pass { background:#2f9e5b; color:#fff; } .badge.fail { background:#d9463e; color:#fff; }
.badge.verified { background:#e6f4ea; color:#1e6b3a; } .badge.unverified { background:#fdecea; color:#a12a22; }
main { padding:18px 28px 120px; max-width:1500px; }
section.card { background:var(--card); border:1px solid var(--line); border-radius:8px; padding:14px 18px; margin-bottom:18px; }
h2 { font-size:16px; margin:0 0 10px; } h3 { font-size:14px; margin:14px 0 6px; }
.note { color:var(--muted); font-size:12.5px; margin:4px 0 10px; }
code, .mono { font-family:ui-monospace,"DejaVu Sans Mono",Menlo,Consolas,monospace; font-size:12.5px; }
.legend { display:flex; flex-wrap:wrap; gap:8px 18px; margin:2px 0 4px; }
.legend .item { display:flex; align-items:center; gap:6px; font-size:12.5px; }
.legend .sw { width:26px; height:14px; border-radius:3px; display:inline-block; position:relative; }
.run { position:relative; height:100%; min-width:4px; border-right:1px solid rgba(255,255,255,.7); cursor:pointer; }
.run:last-child { border-right:0; }
${Object.entries(PERM_COLOURS)
  .map(([k, c]) => `.perm-${k} { background:${c}; }`)
  .join('\n')}
.perm-unmapped { background:repeating-linear-gradient(90deg,#e4e7eb 0 4px,#d0d5db 4px 8px); }
.imm::after { content:""; position:absolute; inset:0; background:repeating-linear-gradient(135deg,rgba(255,255,255,.55) 0 2px,transparent 2px 6px); pointer-events:none; }
.frozen { outline:2px dashed #111; outline-offset:-2px; }
.run.sel { outline:3px solid #111; outline-offset:-1px; z-index:2; }
.map { display:grid; grid-template-columns:minmax(12rem,17rem) 15rem 8.5rem 1fr; column-gap:14px; align-items:center; }
.map > .h { font-size:11.5px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); padding-bottom:4px; border-bottom:1px solid var(--line); }
.map > div.cell { padding:7px 0; border-bottom:1px solid #eef1f4; min-height:34px; display:flex; align-items:center; }
.map .name { font-weight:600; overflow:hidden; text-overflow:ellipsis; white-space:nowrap; }
.map .name details { white-space:normal; font-weight:400; }
.map .name summary { font-weight:600; cursor:pointer; }
.map .name small { font-weight:400; color:var(--muted); margin-left:6px; }
.bar { position:relative; display:flex; width:100%; height:18px; border-radius:3px; background:#eef1f4; }
.ticks { position:absolute; inset:0; pointer-events:none; background:repeating-linear-gradient(90deg,transparent 0,transparent calc(100% / var(--n) - 1px),rgba(255,255,255,.75) calc(100% / var(--n) - 1px),rgba(255,255,255,.75) calc(100% / var(--n))); }
.marker { position:absolute; top:-9px; bottom:-3px; width:0; border-left:2px solid var(--accent); z-index:3; text-decoration:none; transform:translateX(-1px); }
.marker span { position:absolute; top:-8px; left:-9px; min-width:16px; height:16px; padding:0 3px; border-radius:8px; background:var(--accent); color:#fff; font-size:10.5px; font-weight:700; line-height:16px; text-align:center; box-shadow:0 0 0 2px #fff; }
.marker:hover span, .marker:focus span { background:#000; }
.module-head { display:flex; align-items:center; gap:4px; margin:16px 0 2px; font-weight:600; }
.overview { position:relative; height:22px; background:#eef1f4; border-radius:3px; margin:6px 0 2px; }
.overview .ov { position:absolute; top:0; bottom:0; min-width:2px; }
.axis { display:flex; justify-content:space-between; color:var(--muted); font-size:11.5px; }
table { border-collapse:collapse; width:100%; }
th, td { text-align:left; padding:6px 8px; border-bottom:1px solid #eef1f4; vertical-align:top; }
th { font-size:11.5px; text-transform:uppercase; letter-spacing:.04em; color:var(--muted); border-bottom:1px solid var(--line); }
td.reason { max-width:640px; word-break:break-word; }
tr:target { background:#fff3cd; outline:2px solid #e3a128; }
.outcome { font-weight:600; } .outcome.allowed { color:#1e6b3a; } .outcome.denied { color:var(--accent); } .outcome.error { color:#8f5cc9; }
.ok { color:#1e6b3a; font-weight:600; } .fail { color:#fff; background:#d9463e; padding:0 6px; border-radius:3px; font-weight:600; }
a { color:#1f5fbf; }
a.pin { color:var(--accent); font-weight:600; text-decoration:none; white-space:nowrap; }
a.pin::before { content:"\\25BC "; font-size:10px; }
.sites { margin:0; padding-left:16px; }
details summary { cursor:pointer; color:var(--muted); font-size:12.5px; margin-left:16px; } .sites li { margin:1px 0; }
#detail { position:fixed; right:18px; bottom:18px; width:420px; max-width:calc(100vw - 36px); background:#1f2933; color:#f1f4f7; border-radius:8px; padding:12px 14px; font:12.5px/1.5 ui-monospace,"DejaVu Sans Mono",monospace; white-space:pre-line; box-shadow:0 6px 20px rgba(0,0,0,.25); z-index:10; }
#detail .x { position:absolute; right:8px; top:4px; cursor:pointer; color:#c5cdd5; font:16px system-ui; background:none; border:0; }
`;

/** The script: clicking a run shows its details in the panel. */
export const REPORT_JS = `
(function () {
  var panel = document.getElementById('detail');
  var body = document.getElementById('detail-body');
  document.addEventListener('click', function (e) {
    var t = e.target;
    if (t.closest && t.closest('#detail .x')) { panel.hidden = true; return; }
    var r = t.closest ? t.closest('[data-info]') : null;
    if (!r) return;
    document.querySelectorAll('.sel').forEach(function (x) { x.classList.remove('sel'); });
    r.classList.add('sel');
    body.textContent = r.getAttribute('data-info');
    panel.hidden = false;
  });
})();
`;
