// The cost of the default cache serializer's check: jsonSerializer.encode against a bare JSON.stringify
// on plain data. Run `npm run build` first. Usage: node bench/serializer.mjs
import { jsonSerializer } from '../dist/index.js';

const users = {
  users: Array.from({ length: 100 }, (_, i) => ({
    id: i,
    name: `user ${i}`,
    email: `u${i}@example.com`,
    active: i % 2 === 0,
    score: i * 1.5,
    tags: ['a', 'b', 'c'],
    address: { city: 'Paris', zip: '75001' },
  })),
  total: 100,
  page: 1,
};
const small = { id: 42, name: 'Ada', roles: ['admin'], active: true };
const candidates = {
  'JSON.stringify': (value) => JSON.stringify(value),
  'jsonSerializer.encode': (value) => jsonSerializer.encode(value),
};

for (const [label, value, calls] of [
  [`100 users (${JSON.stringify(users).length} bytes)`, users, 2_000],
  ['small object', small, 200_000],
]) {
  const times = {};
  for (let round = 0; round < 7; round++) {
    for (const [name, encode] of Object.entries(candidates)) {
      const start = performance.now();
      for (let i = 0; i < calls; i++) encode(value);
      (times[name] ??= []).push(((performance.now() - start) / calls) * 1_000);
    }
  }
  const median = (xs) => xs.sort((a, b) => a - b)[xs.length >> 1];
  const bare = median(times['JSON.stringify']);
  for (const [name, xs] of Object.entries(times)) {
    const m = median(xs);
    console.log(
      `${label.padEnd(28)} ${name.padEnd(22)} ${m.toFixed(3)} µs  ${(m / bare).toFixed(2)}×`,
    );
  }
}
