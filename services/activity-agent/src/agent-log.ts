/**
 * JSON log lines in the fields pino writes (level as a number, time in ms, msg), so the agent's
 * logs read like every other StreamSpace service's, without loading pino into every desktop pod.
 */
const LEVELS = { debug: 20, info: 30, warn: 40, error: 50 } as const;
export type Level = keyof typeof LEVELS;

export type AgentLog = (level: Level, msg: string, fields?: Record<string, unknown>) => void;

export function agentLog(name: string, minLevel: Level, write: (line: string) => void): AgentLog {
  const min = LEVELS[minLevel] ?? LEVELS.info;
  return (level, msg, fields = {}) => {
    if (LEVELS[level] < min) return;
    write(`${JSON.stringify({ level: LEVELS[level], time: Date.now(), name, ...fields, msg })}\n`);
  };
}
