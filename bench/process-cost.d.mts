export type ProcStatusField = 'VmHWM' | 'VmRSS' | 'RssAnon' | 'RssFile';
export function procStatus(pid: number | undefined, field: ProcStatusField): number;
export function procStatFields(text: string): string[];
export function parsePidStatTicks(text: string): number;
export function procCpuSeconds(pid: number | undefined): number;
export function pidOf(...parts: string[]): number;
