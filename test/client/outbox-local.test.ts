/**
 * The outbox within one process: appends pending when a log closes stay in the outbox and
 * are written once when it is opened again; its bounds and its option check. (Processes
 * that die: outbox.test.ts.)
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DgError, MemoryKeyStorage, type KeyStorage, type OutboxEvent, type RestoredEvent } from '../../src/client/index.js';
import { OUTBOX_MAX_ENTRIES, OutboxRecord } from '../../src/client/log-outbox.js';
import { blockableSockets, enc, makeClient, record, server, sharedSite, waitFor } from './harness.js';

test('appends pending when the log closed are written once, in order, when it opens again with the same outbox', async () => {
  const srv = await server();
  const net = blockableSockets();
  const writer = await makeClient(srv, {
    socket: net.socket,
  });
  const reader = await makeClient(srv);
  const site = await sharedSite(writer, [reader]);
  const outbox = new MemoryKeyStorage();
  try {
    const log = writer.client.openLog(site, 'chat', { outbox });
    await log.opened;
    await log.append([enc('before')]);
    net.blocked = true;
    writer.cut();
    await waitFor('the log notices', () => log.state === 'recovering');
    const pending = log.append(['a', 'b', 'c'].map(enc));
    const more = log.append([enc('d')]);
    await new Promise((r) => setTimeout(r, 300));
    await log.close();
    await assert.rejects(pending, (e: DgError) => e.code === 'UNAVAILABLE');
    await assert.rejects(more, (e: DgError) => e.code === 'UNAVAILABLE');

    net.blocked = false;
    const again = writer.client.openLog(site, 'chat', { outbox });
    const restored: RestoredEvent[] = [];
    const settled: OutboxEvent[] = [];
    again.on('restored', (r) => restored.push(r));
    again.on('outbox', (e) => settled.push(e));
    await again.opened;
    await waitFor('restored appends landed', () => settled.length === 4);
    assert.deepEqual(restored.map((r) => r.seqs), [[2, 3, 4, 5]]);
    assert.equal(restored[0]!.stream, log.writerStream, 'the stream they were made in');
    assert.notEqual(again.writerStream, log.writerStream);
    assert.deepEqual(settled.map((e) => ('index' in e ? [e.seq, e.index] : e.error.code)), [[2, 1], [3, 2], [4, 3], [5, 4]]);

    const r = reader.client.openLog(site, 'chat', { lead: false });
    const rec = record(r);
    await r.opened;
    assert.deepEqual(rec.text(), ['0:before', '1:a', '2:b', '3:c', '4:d']);
    assert.deepEqual(rec.seen.map((e) => e.origin?.stream), Array(5).fill(log.writerStream));
    // Settled: the outbox holds nothing more (the record and the index are gone).
    await again.close();
    const left = await outbox.load(`outbox:${site}/chat/${writer.client.device}`);
    assert.equal(left, null);
  } finally {
    await writer.client.close();
    await reader.client.close();
  }
});

test('restored appends reach the log through the leader when another device leads', async () => {
  const srv = await server();
  const net = blockableSockets();
  const writer = await makeClient(srv, {
    socket: net.socket,
  });
  const leader = await makeClient(srv);
  const site = await sharedSite(writer, [leader]);
  const outbox = new MemoryKeyStorage();
  try {
    const lead = leader.client.openLog(site, 'chat');
    const rec = record(lead);
    await lead.opened;
    assert.equal(lead.role, 'leader');
    const log = writer.client.openLog(site, 'chat', { outbox });
    await log.opened;
    assert.equal(log.role, 'follower');
    net.blocked = true;
    writer.cut();
    await waitFor('the log notices', () => log.state === 'recovering');
    const pending = log.append(['x', 'y'].map(enc));
    await new Promise((r) => setTimeout(r, 300));
    await log.close();
    await assert.rejects(pending);

    net.blocked = false;
    const again = writer.client.openLog(site, 'chat', { outbox });
    const settled: OutboxEvent[] = [];
    again.on('outbox', (e) => settled.push(e));
    await again.opened;
    assert.equal(again.role, 'follower');
    await waitFor('restored appends landed', () => settled.length === 2);
    assert.deepEqual(settled.map((e) => ('index' in e ? [e.seq, e.index] : e.error.code)), [[1, 0], [2, 1]]);
    await waitFor('the leader saw them', () => rec.seen.length === 2);
    assert.deepEqual(rec.text(), ['0:x', '1:y']);
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(rec.seen.length, 2);
  } finally {
    await writer.client.close();
    await leader.client.close();
  }
});

test('an open Log takes up the appends a Log of the same device, opened after it, left when it closed', async () => {
  const srv = await server();
  const keys = new MemoryKeyStorage();
  const first = await makeClient(srv, { storage: keys });
  const reader = await makeClient(srv);
  const site = await sharedSite(first, [reader]);
  // A second client of the same device (same keys and session), whose connections go nowhere.
  const net = blockableSockets();
  net.blocked = true;
  const second = await makeClient(srv, { storage: keys, socket: net.socket });
  assert.equal(second.client.device, first.client.device);
  const outbox = new MemoryKeyStorage();
  try {
    const open = first.client.openLog(site, 'chat', { outbox });
    const settled: OutboxEvent[] = [];
    const restored: RestoredEvent[] = [];
    open.on('outbox', (e) => settled.push(e));
    open.on('restored', (r) => restored.push(r));
    await open.opened;

    // Opened later, it keeps its appends in the outbox, cannot send them, and closes.
    const later = second.client.openLog(site, 'chat', { outbox });
    const pending = later.append(['x', 'y'].map(enc));
    const index = `outbox:${site}/chat/${first.client.device}`;
    for (let i = 0; i < 100 && (await outbox.load(index)) === null; i++) await new Promise((r) => setTimeout(r, 20));
    assert.notEqual(await outbox.load(index), null, 'the later Log lists its stream in the outbox');
    await new Promise((r) => setTimeout(r, 100));
    await later.close();
    await assert.rejects(pending, (e: DgError) => e.code === 'UNAVAILABLE');

    // The open Log finds the stream at its next read of the index and writes its entries.
    await waitFor('the open Log takes the appends up', () => settled.length === 2, 15_000);
    assert.deepEqual(restored.map((r) => [r.stream, r.seqs]), [[later.writerStream, [1, 2]]]);
    assert.deepEqual(settled.map((e) => ('index' in e ? [e.stream, e.seq, e.index] : e.error.code)), [[later.writerStream, 1, 0], [later.writerStream, 2, 1]]);
    const r = reader.client.openLog(site, 'chat', { lead: false });
    const rec = record(r);
    await r.opened;
    assert.deepEqual(rec.text(), ['0:x', '1:y']);
  } finally {
    await first.client.close();
    await second.client.close();
    await reader.client.close();
  }
});

test('an outbox record is bounded: over it, adding rejects with RATE_LIMITED and keeps nothing', async () => {
  const storage = new MemoryKeyStorage();
  const rec = new OutboxRecord(storage, 'r');
  const entries = Array.from({ length: OUTBOX_MAX_ENTRIES }, (_, i) => ({ seq: i + 1, bytes: new Uint8Array(1), from: 0 }));
  await rec.add(entries);
  await assert.rejects(rec.add([{ seq: OUTBOX_MAX_ENTRIES + 1, bytes: new Uint8Array(1), from: 0 }]), (e: DgError) => e.code === 'RATE_LIMITED');
  await assert.rejects(new OutboxRecord(storage, 'big').add([{ seq: 1, bytes: new Uint8Array(16 * 1024 * 1024 + 1), from: 0 }]), (e: DgError) => e.code === 'RATE_LIMITED');
  assert.equal((await OutboxRecord.load(storage, 'r')).length, OUTBOX_MAX_ENTRIES);
  rec.remove(1);
  await rec.flush();
  assert.equal((await OutboxRecord.load(storage, 'r')).length, OUTBOX_MAX_ENTRIES - 1);
});

test('openLog refuses an outbox that is not a KeyStorage with a lock', async () => {
  const srv = await server();
  const c = await makeClient(srv);
  try {
    await c.client.signup('u');
    const { site } = await c.client.createSite('t');
    const noLock: KeyStorage = { load: async () => null, save: async () => undefined, remove: async () => undefined };
    assert.throws(() => c.client.openLog(site, 'x', { outbox: noLock }), (e: DgError) => e.code === 'BAD_REQUEST');
    assert.throws(() => c.client.openLog(site, 'x', { outbox: 'file.json' as unknown as KeyStorage }), (e: DgError) => e.code === 'BAD_REQUEST');
  } finally {
    await c.client.close();
  }
});
