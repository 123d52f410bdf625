/**
 * Field extensions marking a field whose value depends on who asks (the
 * viewer's read position, whether the viewer reacted). Live payloads are
 * rendered once and shared by every subscriber of the same shape; a
 * subscription that selects such a field is rendered for each subscriber
 * instead (src/realtime/render.ts reads this mark).
 */
export const VIEWER_DEPENDENT = { viewerDependent: true } as const;
