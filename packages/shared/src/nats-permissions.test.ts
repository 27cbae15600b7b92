import { describe, expect, it } from 'vitest';
import {
  ACTIVITY_REPORTER,
  inboxPrefix,
  natsPermissions,
  natsUsers,
  passwordVariable,
  renderNatsAuthorization,
  SERVICE_IDENTITIES,
} from './nats-permissions.js';
import { BUCKETS, CONSUMERS, STREAMS, subjects } from './subjects.js';
import { workConsumerName } from './work-partitions.js';

/** NATS subject matching: `*` one token, `>` one or more trailing tokens. */
function matches(pattern: string, subject: string): boolean {
  const p = pattern.split('.');
  const s = subject.split('.');
  for (let i = 0; i < p.length; i++) {
    if (p[i] === '>') return s.length > i;
    if (i >= s.length) return false;
    if (p[i] !== '*' && p[i] !== s[i]) return false;
  }
  return p.length === s.length;
}
const mayPublish = (identity: string, subject: string) =>
  natsPermissions(identity).publish.some((p) => matches(p, subject));
const maySubscribe = (identity: string, subject: string) =>
  natsPermissions(identity).subscribe.some((p) => matches(p, subject));

const everyone = [...SERVICE_IDENTITIES, ACTIVITY_REPORTER, 'portal'];
const reaperCommand = subjects.command('idle-reaper', 'team-a', 'desk');

describe('natsPermissions', () => {
  it('lets only the idle reaper publish commands, and only under its own issuer token', () => {
    expect(everyone.filter((id) => mayPublish(id, reaperCommand))).toEqual(['idle-reaper']);
    expect(mayPublish('idle-reaper', subjects.command('portal', 'team-a', 'desk'))).toBe(false);
    // An issuer named by the operator publishes under its own token only.
    expect(mayPublish('portal', subjects.command('portal', 'team-a', 'desk'))).toBe(true);
    expect(mayPublish('portal', reaperCommand)).toBe(false);
  });

  it('lets nobody delete or purge a stream, or delete a consumer in use', () => {
    for (const id of everyone)
      for (const stream of Object.values(STREAMS)) {
        expect(mayPublish(id, `$JS.API.STREAM.DELETE.${stream}`), id).toBe(false);
        expect(mayPublish(id, `$JS.API.STREAM.PURGE.${stream}`), id).toBe(false);
        expect(mayPublish(id, `$JS.API.STREAM.MSG.DELETE.${stream}`), id).toBe(false);
        expect(mayPublish(id, `$JS.API.CONSUMER.DELETE.${stream}.${workConsumerName(0)}`), id).toBe(false);
        expect(mayPublish(id, `$JS.API.CONSUMER.DELETE.${stream}.${CONSUMERS.commandExecutor}`), id).toBe(
          false,
        );
      }
    // The one exception: the watcher removes the unpartitioned consumer of releases before
    // partitions, which would keep the workqueue stream from taking the partition consumers.
    expect(
      everyone.filter((id) => mayPublish(id, `$JS.API.CONSUMER.DELETE.${STREAMS.work}.reconciler`)),
    ).toEqual(['watcher']);
  });

  it('lets only the watcher create or update streams and durable consumers', () => {
    const creators = (subject: string) => everyone.filter((id) => mayPublish(id, subject));
    expect(creators(`$JS.API.STREAM.CREATE.${STREAMS.commands}`)).toEqual(['watcher']);
    expect(creators(`$JS.API.STREAM.UPDATE.${STREAMS.work}`)).toEqual(['watcher']);
    expect(creators('$JS.API.STREAM.CREATE.KV_streamspace-activity')).toEqual(['watcher']);
    expect(creators(`$JS.API.CONSUMER.CREATE.${STREAMS.work}.reconciler`)).toEqual(['watcher']);
    expect(creators(`$JS.API.CONSUMER.DURABLE.CREATE.${STREAMS.commands}.command-executor`)).toEqual([
      'watcher',
    ]);
    expect(creators('$JS.API.STREAM.CREATE.SOMETHING_ELSE')).toEqual([]);
  });

  it('keeps metrics read-only: no message subject, no KV write, no ack', () => {
    const metrics = natsPermissions('metrics').publish;
    // JetStream API reads, and the flow-control answers of its own KV watches (they carry nothing).
    for (const subject of metrics)
      expect(
        subject.startsWith('$JS.API.') || subject.startsWith('$JS.FC.'),
        `${subject} is not a JetStream API read`,
      ).toBe(true);
    expect(mayPublish('metrics', `$KV.${BUCKETS.state}.session.a.b`)).toBe(false);
    for (const verb of ['STREAM.CREATE', 'STREAM.UPDATE', 'STREAM.DELETE', 'STREAM.PURGE', 'CONSUMER.DELETE'])
      expect(
        metrics.some((s) => s.includes(verb)),
        verb,
      ).toBe(false);
    expect(mayPublish('metrics', subjects.event('session', 'a', 'b'))).toBe(false);
    expect(mayPublish('metrics', subjects.deadLetter('event', 'unknown', 'malformed'))).toBe(false);
    expect(mayPublish('metrics', `$JS.ACK.${STREAMS.work}.reconciler.1.1.1.1.1`)).toBe(false);
  });

  it('gives each service its own inbox and keeps it out of the others', () => {
    for (const id of SERVICE_IDENTITIES) {
      const reply = `${inboxPrefix(id)}.abc.1`;
      expect(everyone.filter((other) => maySubscribe(other, reply))).toEqual([id]);
    }
    // The default inbox root (what the activity reporter uses) matches no service inbox.
    expect(matches('_INBOX.>', `${inboxPrefix('watcher')}.x`)).toBe(false);
  });

  it('gives each service what its code uses', () => {
    expect(mayPublish('watcher', subjects.event('pod', 'a', 'b'))).toBe(true);
    expect(mayPublish('watcher', subjects.work('session', 'a', 'b'))).toBe(true);
    expect(mayPublish('reconciler', subjects.work('session', 'a', 'b'))).toBe(true);
    expect(mayPublish('reconciler', subjects.deadLetter('session', 'a', 'b'))).toBe(true);
    expect(mayPublish('reconciler', `$JS.ACK.${STREAMS.work}.${workConsumerName(3)}.1.2.3.4.5`)).toBe(true);
    expect(mayPublish('reconciler', `$JS.API.CONSUMER.MSG.NEXT.${STREAMS.work}.${workConsumerName(7)}`)).toBe(
      true,
    );
    expect(mayPublish('reconciler', `$JS.API.CONSUMER.CREATE.${STREAMS.work}.${workConsumerName(7)}`)).toBe(
      false,
    );
    expect(
      mayPublish('watcher', `$JS.API.CONSUMER.DURABLE.CREATE.${STREAMS.work}.${workConsumerName(7)}`),
    ).toBe(true);
    expect(mayPublish('metrics', `$JS.API.CONSUMER.INFO.${STREAMS.work}.${workConsumerName(7)}`)).toBe(true);
    expect(mayPublish('reconciler', `$JS.API.CONSUMER.DELETE.${STREAMS.work}.${workConsumerName(7)}`)).toBe(
      false,
    );
    expect(mayPublish('watcher', `$JS.API.CONSUMER.DELETE.${STREAMS.work}.${workConsumerName(7)}`)).toBe(
      false,
    );
    expect(mayPublish('reconciler', '$KV.streamspace-activity.a.b')).toBe(false);
    expect(mayPublish('idle-reaper', '$KV.streamspace-activity.a.b')).toBe(true);
    expect(mayPublish('idle-reaper', `$JS.ACK.${STREAMS.commands}.command-executor.1.2.3.4.5`)).toBe(true);
    expect(mayPublish('idle-reaper', `$JS.ACK.${STREAMS.work}.${workConsumerName(0)}.1.2.3.4.5`)).toBe(false);
    expect(maySubscribe('idle-reaper', subjects.activity('a', 'b'))).toBe(true);
    expect(natsPermissions('idle-reaper').allowResponses).toBe(true);
    expect(mayPublish('reconciler', subjects.reconcilersCensus)).toBe(true);
    expect(maySubscribe('reconciler', subjects.reconcilersHello)).toBe(true);
    expect(mayPublish('idle-reaper', subjects.reconcilersHello)).toBe(false);
    expect(mayPublish('reconciler', `$JS.API.CONSUMER.UNPIN.${STREAMS.work}.${workConsumerName(2)}`)).toBe(true);
    expect(mayPublish('watcher', `$JS.API.CONSUMER.UNPIN.${STREAMS.work}.${workConsumerName(2)}`)).toBe(false);
    expect(mayPublish(ACTIVITY_REPORTER, subjects.activity('a', 'b'))).toBe(true);
    expect(natsPermissions(ACTIVITY_REPORTER).publish).toEqual([subjects.activityAll]);
  });

  it('refuses an identity that cannot be a subject token', () => {
    expect(() => natsPermissions('Portal.Admin')).toThrow(/lower-case letters, digits and '-'/);
  });
});

describe('renderNatsAuthorization', () => {
  it('renders every user with its permissions, passwords from the environment unless given', () => {
    const text = renderNatsAuthorization(
      natsUsers({ passwords: { watcher: 'w"1' }, commandIssuers: ['portal'] }),
    );
    expect(text).toMatch(/^authorization \{\n {2}users = \[/);
    expect(text).toContain('user: "streamspace-watcher", password: "w\\"1"');
    expect(text).toContain(`user: "streamspace-metrics", password: $${passwordVariable('metrics')}`);
    expect(passwordVariable('idle-reaper')).toBe('STREAMSPACE_NATS_IDLE_REAPER_PASSWORD');
    expect(text).toContain('user: "streamspace-portal"');
    expect(text).toContain('publish: { allow: ["$JS.API.INFO", "streamspace.commands.portal.>"] }');
    // The idle reaper answers activity requests; the reconcilers answer each other's census.
    expect(text.match(/allow_responses: true/g)).toHaveLength(2);
    expect(text.match(/user: /g)).toHaveLength(6);
  });
});
