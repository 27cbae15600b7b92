// Checks the repository's Dockerfile without a Docker engine: what `docker build` would trip
// over, and what would make the image unsafe or stale. Used by scripts/check-dockerfile and by
// test/unit/dockerfile.test.ts.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Dockerfile instructions, with line continuations joined and comments dropped. */
export function parseDockerfile(text) {
  const instructions = [];
  let buffer = '';
  let startLine = 0;
  text.split('\n').forEach((raw, index) => {
    const line = raw.trimEnd();
    if (buffer === '' && (line.trim() === '' || line.trimStart().startsWith('#'))) return;
    if (buffer !== '' && line.trimStart().startsWith('#')) return; // comments inside a continuation
    if (buffer === '') startLine = index + 1;
    if (line.endsWith('\\')) {
      buffer += `${line.slice(0, -1)} `;
      return;
    }
    buffer += line;
    const match = /^\s*([A-Za-z]+)\s+([\s\S]*)$/.exec(buffer);
    if (match) instructions.push({ line: startLine, keyword: match[1].toUpperCase(), args: match[2].trim() });
    buffer = '';
  });
  return instructions;
}

function substitute(value, args) {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (whole, a, b) => args.get(a ?? b) ?? whole);
}

/** Splits `--flag=x --other src1 src2 dest` (or the JSON form) into flags and paths. */
function copyOperands(args) {
  const words = args.startsWith('[') ? JSON.parse(args) : args.split(/\s+/);
  const flags = {};
  const paths = [];
  for (const word of words) {
    const flag = /^--([\w-]+)(?:=(.*))?$/.exec(word);
    if (flag && paths.length === 0) flags[flag[1]] = flag[2] ?? true;
    else paths.push(word);
  }
  return { flags, sources: paths.slice(0, -1), dest: paths.at(-1) };
}

function ignoreMatchers(repo) {
  const file = join(repo, '.dockerignore');
  if (!existsSync(file)) return [];
  return readFileSync(file, 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#') && !l.startsWith('!'))
    .map((pattern) => {
      const body = pattern
        .replace(/^\/+/, '')
        .replace(/[.+^$()|[\]{}]/g, '\\$&')
        .replace(/\*\*\//g, '@@ANYDIR@@')
        .replace(/\*\*/g, '.*')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replace(/@@ANYDIR@@/g, '(?:.*/)?');
      return { pattern, regex: new RegExp(`^${body}(?:/.*)?$`) };
    });
}

const PINNED_TAG = /:[^:@/]*\d+\.\d+\.\d+[^:@/]*$/;
const DIGEST = /@sha256:[a-f0-9]{64}$/;

/**
 * Returns the problems found (empty when the Dockerfile is sound). `text` overrides the
 * Dockerfile's content, so tests can show that a broken one is caught.
 */
export function checkDockerfile({
  repo,
  text = readFileSync(join(repo, 'Dockerfile'), 'utf8'),
  requireBuilt = false,
}) {
  const problems = [];
  const instructions = parseDockerfile(text);
  const globalArgs = new Map();
  const stages = [];
  const ignores = ignoreMatchers(repo);

  for (const ins of instructions) {
    const where = `Dockerfile:${ins.line}`;
    if (ins.keyword === 'ARG' && stages.length === 0) {
      const [name, ...rest] = ins.args.split('=');
      globalArgs.set(name.trim(), rest.join('=').trim());
      continue;
    }
    if (ins.keyword === 'FROM') {
      const [imageRef, , alias] = ins.args.split(/\s+/).filter((w) => !w.startsWith('--'));
      const image = substitute(imageRef, globalArgs);
      const stage = { name: alias?.toLowerCase(), image, user: undefined, copies: [], line: ins.line };
      if (!stages.some((s) => s.name === image.toLowerCase()) && image !== 'scratch') {
        if (image.includes('$'))
          problems.push(`${where}: base image ${imageRef} does not resolve (no default for its ARG)`);
        else if (!DIGEST.test(image) && !PINNED_TAG.test(image)) {
          problems.push(
            `${where}: base image ${image} is not pinned: use an exact version tag (x.y.z) or a @sha256 digest`,
          );
        }
      }
      stages.push(stage);
      continue;
    }
    const stage = stages.at(-1);
    if (!stage) continue;
    if (ins.keyword === 'USER') stage.user = ins.args.trim();
    if (ins.keyword === 'COPY' || ins.keyword === 'ADD') {
      const { flags, sources } = copyOperands(ins.args);
      stage.copies.push({ flags, sources, line: ins.line });
      if (flags.from) {
        if (!stages.some((s) => s.name === String(flags.from).toLowerCase())) {
          problems.push(`${where}: COPY --from=${flags.from} names no earlier stage`);
        }
        continue;
      }
      for (const source of sources) {
        const relative = source.replace(/^\.\//, '').replace(/\/$/, '');
        if (/^https?:/.test(source)) continue;
        if (!existsSync(join(repo, relative)))
          problems.push(`${where}: COPY source ${source} does not exist`);
        const ignored = ignores.find((m) => m.regex.test(relative));
        if (ignored)
          problems.push(`${where}: COPY source ${source} is excluded by .dockerignore (${ignored.pattern})`);
      }
    }
    if (ins.keyword === 'ENTRYPOINT' || ins.keyword === 'CMD') {
      if (ins.keyword === 'ENTRYPOINT' && !ins.args.startsWith('[')) {
        problems.push(`${where}: ENTRYPOINT must use the exec (JSON) form so the service gets SIGTERM`);
      }
      stage[ins.keyword.toLowerCase()] = ins.args.startsWith('[') ? JSON.parse(ins.args) : [ins.args];
    }
  }

  const final = stages.at(-1);
  if (!final) return [...problems, 'Dockerfile: no FROM instruction'];
  if (!final.user) problems.push('Dockerfile: the final stage sets no USER, so the image runs as root');
  else if (!/^\d+(:\d+)?$/.test(final.user)) {
    problems.push(
      `Dockerfile: USER ${final.user} must be numeric (uid[:gid]) so Kubernetes can verify runAsNonRoot`,
    );
  } else if (final.user.split(':')[0] === '0') problems.push('Dockerfile: USER 0 is root');

  // Every workspace package is built into the image: its manifest, tsconfig and sources are copied.
  const copied = new Set(
    stages.flatMap((s) => s.copies.filter((c) => !c.flags.from).flatMap((c) => c.sources)),
  );
  const packages = ['packages', 'services'].flatMap((dir) =>
    readdirSync(join(repo, dir), { withFileTypes: true })
      .filter((d) => d.isDirectory() && existsSync(join(repo, dir, d.name, 'package.json')))
      .map((d) => `${dir}/${d.name}`),
  );
  for (const pkg of packages) {
    for (const file of ['package.json', 'tsconfig.json', 'src']) {
      if (!copied.has(`${pkg}/${file}`))
        problems.push(`Dockerfile: ${pkg}/${file} is never copied into the build`);
    }
  }

  // The entrypoint starts services/<name>/dist/main.js, which `tsc -b` must produce.
  const entry = final.entrypoint ?? [];
  const script = entry.find((a) => a.endsWith('.mjs') || a.endsWith('.js'));
  if (!script) problems.push('Dockerfile: the ENTRYPOINT names no script');
  const entrySource = stages
    .flatMap((s) => s.copies)
    .filter((c) => !c.flags.from)
    .flatMap((c) => c.sources)
    .find((s) => script && s.endsWith(script.split('/').at(-1)));
  if (script && !entrySource)
    problems.push(`Dockerfile: ENTRYPOINT script ${script} is not copied from the repository`);
  const services = entrySource ? servicesOfEntrypoint(join(repo, entrySource)) : [];
  const rootRefs = JSON.parse(readFileSync(join(repo, 'tsconfig.json'), 'utf8')).references.map(
    (r) => r.path,
  );
  for (const service of packages.filter((p) => p.startsWith('services/'))) {
    const name = service.slice('services/'.length);
    if (entrySource && !services.includes(name))
      problems.push(`${entrySource}: service ${name} cannot be started (missing from SERVICES)`);
  }
  for (const name of services) {
    const dir = `services/${name}`;
    if (!existsSync(join(repo, dir, 'src/main.ts'))) {
      problems.push(`${entrySource}: starts ${dir}/dist/main.js but ${dir}/src/main.ts does not exist`);
      continue;
    }
    const tsconfig = JSON.parse(readFileSync(join(repo, dir, 'tsconfig.json'), 'utf8'));
    const { rootDir, outDir } = tsconfig.compilerOptions ?? {};
    if (rootDir !== 'src' || outDir !== 'dist') {
      problems.push(`${dir}/tsconfig.json: rootDir/outDir must be src/dist for tsc -b to emit dist/main.js`);
    }
    if (!rootRefs.some((p) => p.replace(/^\.\//, '') === dir))
      problems.push(`tsconfig.json: does not reference ${dir}, so tsc -b skips it`);
    if (requireBuilt && !existsSync(join(repo, dir, 'dist/main.js')))
      problems.push(`${dir}/dist/main.js was not produced by tsc -b`);
  }
  return problems;
}

/** The SERVICES array literal of the entrypoint script. */
export function servicesOfEntrypoint(file) {
  const match = /const SERVICES = (\[[^\]]*\])/.exec(readFileSync(file, 'utf8'));
  return match ? JSON.parse(match[1].replace(/'/g, '"')) : [];
}
