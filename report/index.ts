/** The HTML report of a run (`heki run --report`): denials collected, then the page rendered. */
export { DenialCollector, MAX_DENIALS, MAX_SITES, requestSites, type Denial, type DenialSite } from './denials.ts';
export { renderReport, placeDenials, type ReportInput, type RenderedReport } from './report-page.ts';
export { mapRegions, placeSite, type MapRegion, type Placement } from './map-placement.ts';
export { esc } from './escape.ts';
export { permClass, permClasses, PERM_CLASSES } from './perm-class.ts';
