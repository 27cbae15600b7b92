export interface DockerInstruction {
  line: number;
  keyword: string;
  args: string;
}
export function parseDockerfile(text: string): DockerInstruction[];
export function checkDockerfile(options: { repo: string; text?: string; requireBuilt?: boolean }): string[];
export function servicesOfEntrypoint(file: string): string[];
